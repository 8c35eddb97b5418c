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

from mdesign.cli._common import SEED_HELP, seed_type

from ._prefect_env import configure_prefect


def main(argv: list[str] | None = None) -> int:
    top = argparse.ArgumentParser(prog="python -m mdesign_flows", description=__doc__)
    sub = top.add_subparsers(dest="flow", required=True)
    parser = sub.add_parser("reconstruct", help="reconstruct a folder of exemplars")
    parser.add_argument("folder", help="folder of exemplars (.npy, .npz, .png, .tif)")
    parser.add_argument("out_dir", help="folder for the reconstructions and the table")
    parser.add_argument("--config", help="reconstruction settings (YAML)")
    parser.add_argument("--weights", help="normalized (default) | imagenet | random | PATH")
    parser.add_argument("--iterations", type=int)
    parser.add_argument("--seed", type=seed_type, help=SEED_HELP)
    parser.add_argument("--size", type=int, nargs=2, metavar=("H", "W"))
    parser.add_argument("--no-baseline", dest="baseline", action="store_false")
    args = top.parse_args(argv)
    out_dir = Path(args.out_dir)

    from mdesign.config import ReconstructionConfig, load_config, override
    from mdesign.errors import InputError
    from mdesign.io import check_output_dir
    from mdesign.reconstruction.batch import exemplar_files

    try:
        # bad input is one error line before Prefect starts (6-14 s) and before out_dir exists
        cfg = override(
            load_config(ReconstructionConfig, args.config, seed=args.seed),
            {
                "texture.weights": (args.weights, "weights"),
                "optimiser.iterations": (args.iterations, "iterations"),
            },
        )
        exemplar_files(args.folder)
        check_output_dir(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        configure_prefect(out_dir / ".prefect")
        from .reconstruct import run_reconstruct_folder

        table = run_reconstruct_folder(
            args.folder,
            str(out_dir),
            cfg.model_dump(mode="json"),
            tuple(args.size) if args.size else None,
            args.baseline,
        )
    except InputError as exc:
        sys.stderr.write(f"error: {exc}\n")
        return 2
    print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
