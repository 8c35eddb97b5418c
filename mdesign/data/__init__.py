"""Real exemplar microstructures shipped with mdesign.

The seven test images of Li et al. (2018), CC BY 4.0; see ``li2018/README.md`` for the source and
attribution.

References
----------
X. Li, Y. Zhang, H. Zhao, C. Burkhart, L. C. Brinson, W. Chen, "A transfer learning approach for
microstructure reconstruction and structure-property predictions", Sci. Rep. 8, 13461 (2018).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

LI2018_DIR = Path(__file__).resolve().parent / "li2018"
#: The exemplar names, in the order of Li et al. (2018)'s benchmark.
LI2018_MATERIALS = ("alloy", "carbonate", "ceramics", "copolymer", "pmma", "sandstone", "composite")
#: The sides each exemplar is shipped at.
LI2018_SIZES = (64, 256)


def li2018_exemplar(name: str, size: int = 256) -> np.ndarray:
    """One Li et al. (2018) exemplar as phase labels.

    Parameters
    ----------
    name : str
        One of ``LI2018_MATERIALS``. ``composite`` has three phases, the others two.
    size : int
        64 or 256: the side of the shipped image.

    Returns
    -------
    numpy.ndarray
        ``size x size`` uint8 labels ``0..k-1``.
    """
    if name not in LI2018_MATERIALS:
        raise ValueError(f"unknown exemplar {name!r}; known: {', '.join(LI2018_MATERIALS)}")
    if size not in LI2018_SIZES:
        raise ValueError(f"size should be one of {LI2018_SIZES}, got {size}")
    return np.load(LI2018_DIR / f"{name}_{size}.npy", allow_pickle=False)
