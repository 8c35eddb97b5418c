"""MkDocs hook: the gallery's figures are served from where the benchmarks and studies write them.

``bench/results/*.png`` and ``artifacts/*/*.png`` live outside ``docs/``; copying them would let
the copies go stale. Each is added to the site as ``gallery/<folder>_<name>.png`` at build time
(a local file read, nothing downloaded); a missing one fails the strict build as a broken link.
"""

from __future__ import annotations

from pathlib import Path

from mkdocs.structure.files import File, Files

ROOT = Path(__file__).resolve().parents[1]
SOURCES = ("bench/results/*.png", "artifacts/*/*.png", "artifacts/campaigns/*/*.png")


def gallery_name(path: Path) -> str:
    """``gallery/<parent folder>_<file name>``: unique across the sources above."""
    return f"gallery/{path.parent.name}_{path.name}"


def on_files(files: Files, config) -> Files:
    for pattern in SOURCES:
        for path in sorted(ROOT.glob(pattern)):
            files.append(File.generated(config, gallery_name(path), abs_src_path=str(path)))
    return files
