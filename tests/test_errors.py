"""InputError names the Python parameter; the CLI renders it as its flag."""

import pickle

from mdesign.errors import InputError


def test_param_prefixes_the_message_and_render_maps_it():
    err = InputError("must be at least 1, got 0", param="size")
    assert str(err) == "size: must be at least 1, got 0"
    assert err.render({"size": "--latent-size"}) == "--latent-size: must be at least 1, got 0"
    assert err.render({}) == str(err)  # unknown to the CLI: the parameter's own name
    plain = InputError("x.npz: no such file")
    assert plain.param is None and plain.render({"size": "--size"}) == "x.npz: no such file"


def test_survives_pickling_with_its_parameter():
    # errors cross process boundaries (Dask workers, Prefect tasks)
    err = pickle.loads(pickle.dumps(InputError("bad", param="n")))
    assert isinstance(err, InputError) and isinstance(err, ValueError)
    assert (err.param, err.message, str(err)) == ("n", "bad", "n: bad")


def test_cli_flag_names_come_from_each_commands_options():
    from mdesign.cli import _build, flag_names

    parser, commands = _build()
    argv = ["grf", "-n", "1", "--size", "8", "--volume-fraction", "0.5"]
    argv += ["--correlation-length", "2", "--seed", "0", "-o", "x.npz"]
    grf = flag_names(commands["grf"], parser.parse_args(argv))
    assert grf["n"] == "-n" and grf["seed"] == "--seed" and grf["output"] == "-o"
    assert grf["shape"] == "--size" and grf["correlation_length"] == "--correlation-length"
