"""``python -m mdesign_flows reconstruct FOLDER OUT_DIR``: the flows without an ``mdesign`` command.

``reconstruct`` runs the Prefect flow :func:`mdesign_flows.reconstruct.reconstruct_folder`
through :func:`~mdesign_flows.reconstruct.run_reconstruct_folder`: one task per exemplar
(``OUT_DIR/STEM.npz``, ``.json`` report, ``.png`` figure, ``STEM_grf.npz`` baseline) and one
table, ``OUT_DIR/reconstructions.csv``. Prefect runs embedded (a temporary local server) with
its state in ``OUT_DIR/.prefect`` and analytics off, unless ``PREFECT_API_URL`` points at a
server; these are set here before prefect is imported, which is when it reads them.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from mdesign.cli import _Parser, guarded
from mdesign.cli._common import SEED_HELP, add_phases, seed_type

from ._prefect_env import configure_prefect

FLAGS = {
    "out_dir": "OUT_DIR",
    "config": "--config",
    "weights": "--weights",
    "iterations": "--iterations",
    "seed": "--seed",
    "size": "--size",
    "phases": "--phases",
}


def main(argv: list[str] | None = None) -> int:
    """Parse, then run the flow under the ``mdesign`` contract (:func:`mdesign.cli.guarded`):
    one ``error:`` line and exit code 2 for bad input, found before Prefect starts; 130 for
    an interrupt."""
    top = _Parser(prog="python -m mdesign_flows", description=__doc__)
    sub = top.add_subparsers(dest="flow", required=True, parser_class=_Parser)
    parser = sub.add_parser("reconstruct", help="reconstruct a folder of exemplars")
    parser.add_argument("folder", help="folder of exemplars (.npy, .npz, .png, .tif)")
    parser.add_argument("out_dir", help="folder for the reconstructions and the table")
    parser.add_argument("--config", help="reconstruction settings (YAML)")
    parser.add_argument("--weights", help="normalized (default) | imagenet | random | PATH")
    parser.add_argument("--iterations", type=int)
    parser.add_argument("--seed", type=seed_type, help=SEED_HELP)
    parser.add_argument("--size", type=int, nargs=2, metavar=("H", "W"))
    parser.add_argument("--no-baseline", dest="baseline", action="store_false")
    add_phases(parser)
    args = top.parse_args(argv)
    return guarded(lambda: _reconstruct(args), flags=lambda: FLAGS)


def _reconstruct(args: argparse.Namespace) -> int:
    from mdesign.config import ReconstructionConfig, load_config, override
    from mdesign.reconstruction.batch import check_folder
    from mdesign.runs import run_lock

    out_dir = Path(args.out_dir)
    cfg = override(
        load_config(ReconstructionConfig, args.config, seed=args.seed),
        {
            "texture.weights": (args.weights, "weights"),
            "optimiser.iterations": (args.iterations, "iterations"),
        },
    )
    config = cfg.model_dump(mode="json")
    size = tuple(args.size) if args.size else None
    # bad input is one error line before Prefect starts (seconds) and before out_dir exists
    check_folder(
        args.folder,
        out_dir,
        config=config,
        size=size,
        baseline=args.baseline,
        phases=args.phases,
        inputs={"--config": args.config},
    )
    with run_lock(out_dir, name="out_dir", what="folder reconstruction"):
        configure_prefect(out_dir / ".prefect")
        from .reconstruct import run_reconstruct_folder

        table = run_reconstruct_folder(
            args.folder, str(out_dir), config, size, args.baseline, phases=args.phases, check=False
        )
    print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
