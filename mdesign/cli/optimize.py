"""``mdesign optimize``: a Bayesian-optimisation design campaign, run as a Prefect flow."""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import sys
import threading
from pathlib import Path

from mdesign.cli._common import SEED_HELP, add_quiet, check_outputs, note, seed_type

# seconds a campaign may take to wind down after Ctrl-C (flow marked crashed, Dask cluster and
# Prefect server stopped; measured: the docs' performance page) before it is ended outright
INTERRUPT_GRACE = 5.0


def add_parser(sub) -> None:
    p = sub.add_parser(
        "optimize",
        help="Bayesian optimisation of the GAN latent against a property (a Prefect flow)",
        description=(
            "A design campaign: BO (BoTorch) over the GAN's latent box against the configured "
            "evaluator(s), and the same budget of random latents and of random GRF images (a "
            "GAN trained on mdesign grf images) or random training images (any other) as "
            "baselines. Every evaluation is stored durably in DIR as it completes; rerunning "
            "on the same DIR resumes (also after Ctrl-C, exit code 130), and a DIR in use by "
            "another running campaign is refused. Writes DIR/evaluations.csv, best.npz, "
            "report.md and report.png. Prefect runs embedded (a temporary server that lives "
            "and dies with the campaign) unless PREFECT_API_URL is set. "
            "Trust: the config's generator.factory and any module:function evaluator are "
            "imported and run, so a campaign config is as trusted as a Python script; modules in "
            "the current directory are found (after the installed packages; `python -m "
            "mdesign` looks there first)."
        ),
    )
    p.add_argument("--config", required=True, metavar="CAMPAIGN.yaml")
    p.add_argument("--out", metavar="DIR", help="campaign folder (default: runs/<name>)")
    p.add_argument(
        "--budget",
        type=int,
        metavar="N",
        help="evaluations for BO (initial design included) and for each baseline",
    )
    p.add_argument("--seed", type=seed_type, metavar="S", help=f"random seed, {SEED_HELP}")
    p.add_argument(
        "--checkpoint",
        metavar="CKPT",
        help="the GAN to search (generator.checkpoint), e.g. the model.pt of `mdesign train`",
    )
    p.add_argument(
        "--data",
        metavar="TRAIN.npz",
        help="the GAN's training set where it has moved to (generator.data; the 'training' "
        "baseline draws from it)",
    )
    p.add_argument(
        "--workers", type=int, metavar="N", help="evaluate on a local Dask cluster of N workers"
    )
    p.add_argument(
        "--scheduler",
        metavar="ADDRESS",
        help="evaluate on the running Dask scheduler at ADDRESS (tcp://host:port)",
    )
    add_quiet(p)
    p.set_defaults(run=run, param_flags={"out_dir": "--out"})


def load_campaign(
    path: str | Path,
    *,
    budget=None,
    seed=None,
    workers=None,
    scheduler=None,
    checkpoint=None,
    training_data=None,
):
    """The campaign config from YAML with the command line's overrides applied and validated
    (paths given on the command line are taken from the working directory)."""
    from mdesign.config import CampaignConfig, config_from_dict, read_yaml

    data = read_yaml(path)
    for key, value in (("checkpoint", checkpoint), ("data", training_data)):
        if value is not None:
            given = Path(value).expanduser()
            if not given.is_file():
                from mdesign.errors import InputError

                raise InputError(f"--{key} {value}: no such file")
            data["generator"] = {**(data.get("generator") or {}), key: str(given.resolve())}
    if budget is not None:
        data["bo"] = {**(data.get("bo") or {}), "budget": budget}
    if seed is not None:
        data["seed"] = seed
    if workers is not None or scheduler is not None:
        data["dask"] = {
            **(data.get("dask") or {}),
            **({"workers": workers} if workers is not None else {}),
            **({"address": scheduler} if scheduler is not None else {}),
        }
    return config_from_dict(CampaignConfig, data, source=str(path))


def run(args: argparse.Namespace) -> int:
    from mdesign.errors import InputError

    for opt, val in (("--budget", args.budget), ("--workers", args.workers)):
        if val is not None and val < (2 if opt == "--budget" else 1):
            raise InputError(f"{opt}: must be at least {2 if opt == '--budget' else 1}, got {val}")
    cfg = load_campaign(
        args.config,
        budget=args.budget,
        seed=args.seed,
        workers=args.workers,
        scheduler=args.scheduler,
        checkpoint=args.checkpoint,
        training_data=args.data,
    )
    out = Path(args.out or Path("runs") / cfg.name)
    config_dir = Path(args.config).resolve().parent
    if out.exists() and not out.is_dir():
        raise InputError(f"--out {out}: exists and is not a directory")

    from mdesign.optimization.cluster import check_dask_address
    from mdesign.optimization.lock import CAMPAIGN_FILES, campaign_lock

    check_outputs(
        [("--out", out, None)], inputs=[("--config", args.config)], writes={"--out": CAMPAIGN_FILES}
    )

    if args.scheduler:
        check_dask_address(args.scheduler, name="--scheduler")
    with contextlib.ExitStack() as held:
        if out.is_dir():  # refuse a folder in use at once, before the slow imports
            held.enter_context(campaign_lock(out, name="--out"))
        # check everything before the flow starts: bad input is one error line, not a crash
        from mdesign.optimization.campaign import prepare_campaign

        prepare_campaign(cfg, out, config_dir=config_dir)  # errors name out_dir: shown as --out
        held.enter_context(campaign_lock(out, name="--out"))

        from mdesign_flows._prefect_env import configure_prefect

        configure_prefect(out / ".prefect", quiet=args.quiet)
        from mdesign_flows.design import run_design_campaign

        try:
            with _prompt_interrupt(INTERRUPT_GRACE):
                result = run_design_campaign(cfg, out, config_dir=config_dir)
        except KeyboardInterrupt:
            _exit_interrupted()
    _note_bests(args, "", cfg.objectives[0].name, result["best"], result["improvement_percent"])
    if result.get("confirmed_best") is not None:
        from mdesign.optimization.campaign import target_confirm

        _note_bests(
            args,
            "confirmed ",
            target_confirm(cfg).confirm.name,  # a fidelity campaign's default confirmation
            result["confirmed_best"],
            result["confirmed_improvement_percent"],
        )
    print(f"report: {result['report']}")
    return 0


def _note_bests(args, prefix: str, name: str, best: dict, improvement: dict) -> None:
    """BO's best and its improvement over each baseline (as found, or as confirmed)."""
    bo = best.get("bo")
    note(
        args,
        f"{prefix}best BO design: {name} = {bo}"
        if bo is not None
        else f"no {prefix}feasible BO design was found",
    )
    for m, imp in improvement.items():
        if imp is not None:
            note(args, f"{prefix}BO vs {m}: {imp:+.1f}%")


_exiting = threading.Lock()


def _exit_interrupted() -> None:
    """Print the contract's line and end the process at once, exit code 130.

    Safe at any point of a campaign: every completed evaluation is already committed (the
    store survives SIGKILL), the lock is the kernel's, and the Prefect server and the Dask
    workers end with this process. Skips the interpreter's shutdown, which can wait on
    evaluations still running in other threads.
    """
    _exiting.acquire()  # once: the deadline timer and the main thread may both get here
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    with contextlib.suppress(Exception):
        os.write(2, b"error: interrupted\n")
    os._exit(130)


@contextlib.contextmanager
def _prompt_interrupt(grace: float):
    """Ctrl-C winds the campaign down as usual (KeyboardInterrupt), but the process ends within
    ``grace`` seconds of it whatever the teardown waits on; a second Ctrl-C ends it at once."""

    def on_sigint(signum, frame):
        signal.signal(signal.SIGINT, lambda *_: _exit_interrupted())
        deadline = threading.Timer(grace, _exit_interrupted)
        deadline.daemon = True
        deadline.start()
        raise KeyboardInterrupt

    if threading.current_thread() is not threading.main_thread():
        yield  # signal handlers can only be set from the main thread
        return
    previous = signal.signal(signal.SIGINT, on_sigint)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
