"""``mdesign optimize``: a Bayesian-optimisation design campaign, run as a Prefect flow."""

from __future__ import annotations

import argparse
from pathlib import Path

from mdesign.cli._common import add_quiet, note


def add_parser(sub) -> None:
    p = sub.add_parser(
        "optimize",
        help="Bayesian optimisation of the GAN latent against a property (a Prefect flow)",
        description=(
            "A design campaign: BO (BoTorch) over the GAN's latent box against the configured "
            "evaluator(s), and the same budget of random latents and random GRF images as "
            "baselines. Every evaluation is stored durably in DIR as it completes; rerunning "
            "on the same DIR resumes. Writes DIR/evaluations.csv, best.npz, report.md and "
            "report.png. Prefect runs embedded (no server) unless PREFECT_API_URL is set."
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
    p.add_argument("--seed", type=int, metavar="S", help="random seed")
    p.add_argument(
        "--workers", type=int, metavar="N", help="evaluate on a local Dask cluster of N workers"
    )
    p.add_argument(
        "--scheduler",
        metavar="ADDRESS",
        help="evaluate on the running Dask scheduler at ADDRESS (tcp://host:port)",
    )
    add_quiet(p)
    p.set_defaults(run=run)


def load_campaign(path: str | Path, *, budget=None, seed=None, workers=None, scheduler=None):
    """The campaign config from YAML with the command line's overrides applied and validated."""
    from mdesign.config import CampaignConfig, config_from_dict, read_yaml

    data = read_yaml(path)
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
    )
    out = Path(args.out or Path("runs") / cfg.name)
    config_dir = Path(args.config).resolve().parent

    # check everything before the flow starts, so bad input is one error line, not a flow crash
    from mdesign.optimization.campaign import prepare_campaign

    prepare_campaign(cfg, out, config_dir=config_dir)

    from mdesign_flows._prefect_env import configure_prefect

    configure_prefect(out / ".prefect", quiet=args.quiet)
    from mdesign_flows.design import run_design_campaign

    result = run_design_campaign(cfg, out, config_dir=config_dir)
    best = result["best"].get("bo")
    name = cfg.objectives[0].name
    note(
        args,
        f"best BO design: {name} = {best}"
        if best is not None
        else "no feasible BO design was found",
    )
    for m, imp in result["improvement_percent"].items():
        if imp is not None:
            note(args, f"BO vs {m}: {imp:+.1f}%")
    print(f"report: {result['report']}")
    return 0
