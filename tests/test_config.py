from pathlib import Path

import pytest

from mdesign.config import (
    GAN_DEFAULTS,
    GRF_DEFAULTS,
    GANConfig,
    GRFConfig,
    dump_config,
    load_config,
)
from mdesign.errors import InputError
from mdesign.runs import config_differences

CONFIGS = Path(__file__).resolve().parents[1] / "configs"


def test_shipped_grf_config_is_the_default():
    # configs/grf.yaml documents the defaults; it must not drift from the typed config
    assert load_config(GRFConfig, CONFIGS / "grf.yaml") == GRF_DEFAULTS


def test_round_trip_and_overrides(tmp_path):
    cfg = load_config(GRFConfig, None, phases=3, covariance=None)
    assert cfg.phases == 3 and cfg.covariance == GRF_DEFAULTS.covariance
    path = tmp_path / "c.yaml"
    path.write_text(dump_config(cfg))
    assert load_config(GRFConfig, path) == cfg


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("phases: 9\n", "phases"),
        ("covariance: cubic\n", "covariance"),
        ("anisotropy: -1\n", "anisotropy"),
        ("phasse: 3\n", "phasse: unknown key"),
        ("- a\n- b\n", "mapping"),
        ("phases: [1\n", "not valid YAML"),
    ],
)
def test_bad_configs_name_the_key(tmp_path, text, needle):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(InputError, match=needle) as info:
        load_config(GRFConfig, path)
    assert str(path) in str(info.value)


@pytest.mark.parametrize(
    ("payload", "needle"),
    [
        (b"phases: 3\n\xff\xfe\n", "not UTF-8"),
        (b"PK\x03\x04\x00\x00binary", "binary file"),  # an .npz given as a config
        (b"# " + b"x" * (1 << 20) + b"\n", "not a config file"),
    ],
)
def test_non_text_config_files_are_refused_by_name(tmp_path, payload, needle):
    path = tmp_path / "bad.yaml"
    path.write_bytes(payload)
    with pytest.raises(InputError, match=needle) as info:
        load_config(GRFConfig, path)
    assert str(info.value).startswith(f"{path}: ")


def test_missing_config_file(tmp_path):
    with pytest.raises(InputError, match="no such config file"):
        load_config(GRFConfig, tmp_path / "nope.yaml")


def test_gan_yaml_is_the_shipped_models_recipe_and_differs_from_the_paper_where_it_says():
    # configs/gan.yaml is what the shipped model was trained with (its checkpoint's config);
    # the typed defaults stay the paper's network (artifacts/gan_paper), and the file marks the
    # keys that differ from them as "shipped"
    cfg = load_config(GANConfig, CONFIGS / "gan.yaml")
    shipped = load_config(GANConfig, CONFIGS.parent / "artifacts" / "gan" / "config.yaml")
    paper = load_config(GANConfig, CONFIGS.parent / "artifacts" / "gan_paper" / "config.yaml")
    # sample.batch_size is a decoding setting, not the recipe: the checkpoints record 256
    decoding = {"sample": {"batch_size"}}
    assert cfg.model_dump(exclude=decoding) == shipped.model_dump(exclude=decoding)
    assert paper.model_dump(exclude=decoding) == GAN_DEFAULTS.model_dump(exclude=decoding)
    changed = set(config_differences(GAN_DEFAULTS.model_dump(), cfg.model_dump()))
    assert changed == {
        "generator.global_channels",
        "generator.upsample",
        "discriminator.pool",
        "train.lr_steps",
        "train.epochs",
        "train.ema_decay",
    }
    lines = (CONFIGS / "gan.yaml").read_text().splitlines()
    marked = [line for line in lines if "# shipped" in line]
    assert len(marked) == len(changed)
    assert {line.split(":")[0].strip() for line in marked} == {k.split(".")[-1] for k in changed}


def test_gan_config_names_nested_keys(tmp_path):
    path = tmp_path / "gan.yaml"
    path.write_text("train:\n  lr: -1\n")
    with pytest.raises(InputError, match=r"train\.lr"):
        load_config(GANConfig, path)
    path.write_text("generator:\n  widths: [128, 0]\n")
    with pytest.raises(InputError, match=r"generator\.widths\.1"):
        load_config(GANConfig, path)
    path.write_text("train:\n  loss: wgan-gp\n")
    with pytest.raises(InputError, match=r"discriminator\.norm instance or none"):
        load_config(GANConfig, path)
    assert GAN_DEFAULTS.scale == 32


# ---------------------------------------------------------------------------------------------
# Each default in one place: a public keyword default is its config's field, never a copy.
#
# The rule: the functions and methods of each module below take the defaults of one config
# section; a keyword whose name (after the module's renames) is a field of that section must
# default to the field itself, written as the field (``_D.refinement``,
# ``RECONSTRUCTION_DEFAULTS.adam_lr``), not as a literal with the same value. ``None`` stands for
# "from the config given elsewhere in the call" (``train(epochs=None)``) and is allowed.


def _sections():
    from mdesign.config import (
        BO_DEFAULTS,
        CONDUCTIVITY_DEFAULTS,
        ELASTICITY_DEFAULTS,
        OPTICAL_ABSORPTION_DEFAULTS,
        RECONSTRUCTION_DEFAULTS,
        SURROGATE_DEFAULTS,
        TORTUOSITY_DEFAULTS,
    )

    rec = RECONSTRUCTION_DEFAULTS
    anneal = {"final_temperature_ratio": "final_temperature"}
    gan = GAN_DEFAULTS
    # (module, qualified-name prefix or "" for all, config section, {parameter: field})
    return [
        ("mdesign.grf", "", GRF_DEFAULTS, {"nu": "matern_nu"}),
        ("mdesign.evaluators.conductivity", "", CONDUCTIVITY_DEFAULTS, {}),
        ("mdesign.evaluators.optics", "", OPTICAL_ABSORPTION_DEFAULTS, {}),
        ("mdesign.evaluators.elasticity", "", ELASTICITY_DEFAULTS, {}),
        ("mdesign.evaluators.tortuosity", "", TORTUOSITY_DEFAULTS, {}),
        ("mdesign.reconstruction.pipeline", "", rec, {}),
        ("mdesign.reconstruction.pipeline", "", rec.slices, {}),
        ("mdesign.reconstruction.optimize", "", rec, {}),
        ("mdesign.reconstruction.optimize", "", rec.optimiser, {}),
        ("mdesign.reconstruction.loss", "", rec, {}),
        ("mdesign.reconstruction.loss", "", rec.texture, {}),
        ("mdesign.reconstruction.vgg", "", rec, {}),
        ("mdesign.reconstruction.vgg", "", rec.texture, {}),
        ("mdesign.reconstruction.decoding", "", rec, {}),
        # the metrics' `periodic` is how clusters are counted (in-image), not the output's
        ("mdesign.reconstruction.metrics", "", rec, {"periodic": None}),
        ("mdesign.reconstruction.baseline", "", rec, {}),
        ("mdesign.reconstruction.annealing", "", rec, {}),
        ("mdesign.reconstruction.annealing", "", rec.anneal, anneal),
        ("mdesign.reconstruction.lags", "", rec, {}),
        ("mdesign.gan.networks", "Generator", gan.generator, {}),
        ("mdesign.gan.networks", "Discriminator", gan.discriminator, {}),
        ("mdesign.gan.sampling", "", gan.sample, {}),
        ("mdesign.gan.training", "", gan.train, {}),
        ("mdesign.gan.validation", "", gan.validation, {}),
        ("mdesign.optimization.problem", "", gan.sample, {}),
        ("mdesign.optimization.bo", "", BO_DEFAULTS, {"feature_inputs": "fraction_input"}),
        ("mdesign.surrogates.models", "", SURROGATE_DEFAULTS.network, {}),
        ("mdesign.surrogates.networks", "", SURROGATE_DEFAULTS.network, {}),
        ("mdesign.surrogates.screening", "", SURROGATE_DEFAULTS.screen, {}),
    ]


def _public_callables(module):
    import inspect

    for name, obj in vars(module).items():
        if name.startswith("_") or getattr(obj, "__module__", None) != module.__name__:
            continue
        if inspect.isfunction(obj):
            yield name, obj
        elif inspect.isclass(obj):
            for attr, fn in vars(obj).items():
                if inspect.isfunction(fn) and (attr == "__init__" or not attr.startswith("_")):
                    yield f"{name}.{attr}", fn


def _literal_defaults(fn) -> set[str]:
    """Parameters of ``fn`` whose default is written as a literal in its source."""
    import ast
    import inspect
    import textwrap

    node = ast.parse(textwrap.dedent(inspect.getsource(fn))).body[0]
    args = node.args
    pairs = list(zip(args.args[len(args.args) - len(args.defaults) :], args.defaults, strict=True))
    pairs += [(a, d) for a, d in zip(args.kwonlyargs, args.kw_defaults, strict=True) if d]
    out = set()
    for arg, default in pairs:
        if isinstance(default, ast.Constant) and default.value is None:
            continue  # None restates nothing: "no value" is the same everywhere
        try:
            ast.literal_eval(default)
        except ValueError:
            continue
        out.add(arg.arg)
    return out


def default_drifts() -> list[str]:
    """Every public keyword default that differs from, or restates, its config field."""
    import importlib
    import inspect

    problems = []
    checked = 0
    for module_name, prefix, section, renames in _sections():
        module = importlib.import_module(module_name)
        fields = type(section).model_fields
        for qualname, fn in _public_callables(module):
            if prefix and not qualname.startswith(prefix + "."):
                continue
            literal = None
            for p in inspect.signature(fn).parameters.values():
                field = renames.get(p.name, p.name)
                if p.default is inspect.Parameter.empty or field not in fields:
                    continue
                want = getattr(section, field)
                if p.default is None and want is not None:
                    continue
                checked += 1
                where = f"{module_name}.{qualname}({p.name}=...)"
                if p.default != want:
                    problems.append(f"{where}: default {p.default!r}, config {field} = {want!r}")
                    continue
                literal = _literal_defaults(fn) if literal is None else literal
                if p.name in literal:
                    problems.append(f"{where}: restates config field {field} as a literal")
    assert checked > 50, f"only {checked} defaults checked: is the table above stale?"
    return problems


def test_every_public_keyword_default_is_its_config_field():
    problems = default_drifts()
    assert not problems, "\n".join(problems)


def test_a_bad_override_names_its_keyword_and_a_bad_file_value_names_the_file(tmp_path):
    with pytest.raises(InputError, match=r"^phases: Input should be less than or equal to 8$") as e:
        load_config(GRFConfig, phases=9)
    assert e.value.param == "phases"
    path = tmp_path / "g.yaml"
    path.write_text("phases: 9\n")
    with pytest.raises(InputError, match="phases") as e:
        load_config(GRFConfig, path, covariance="exponential")
    assert e.value.param is None and str(e.value).startswith(f"{path}: phases: ")
    # the override wins over the file, and is the one named when it is wrong
    with pytest.raises(InputError) as e:
        load_config(GRFConfig, path, phases=1)
    assert e.value.param == "phases"
