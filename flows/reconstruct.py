"""``python -m flows.reconstruct FOLDER OUT_DIR``: reconstruct a folder of exemplars.

Runs the Prefect flow :func:`flows.reconstruct_flow.reconstruct_folder`: one task per exemplar
(``OUT_DIR/STEM.npz``, ``.json`` report, ``.png`` figure, ``STEM_grf.npz`` baseline) and one
table, ``OUT_DIR/reconstructions.csv``. Prefect runs embedded (a temporary local server) with
its state in ``OUT_DIR/.prefect`` and analytics off, unless ``PREFECT_API_URL`` points at a
server; these are set here before prefect is imported, which is when it reads them.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from flows._prefect_env import configure_prefect


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m flows.reconstruct", description=__doc__)
    parser.add_argument("folder", help="folder of exemplars (.npy, .npz, .png, .tif)")
    parser.add_argument("out_dir", help="folder for the reconstructions and the table")
    parser.add_argument("--config", help="reconstruction settings (YAML)")
    parser.add_argument("--weights", help="imagenet | random | PATH")
    parser.add_argument("--iterations", type=int)
    parser.add_argument("--seed", type=int)
    parser.add_argument("--size", type=int, nargs=2, metavar=("H", "W"))
    parser.add_argument("--no-baseline", dest="baseline", action="store_false")
    args = parser.parse_args(argv)
    out_dir = Path(args.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    configure_prefect(out_dir / ".prefect")

    from mdesign.config import ReconstructionConfig, load_config
    from mdesign.errors import InputError

    try:
        cfg = load_config(
            ReconstructionConfig,
            args.config,
            weights=args.weights,
            iterations=args.iterations,
            seed=args.seed,
        )
        from flows.reconstruct_flow import reconstruct_folder

        table = reconstruct_folder(
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
