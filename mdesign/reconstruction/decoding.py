"""Optimised pixels back to phase labels: k-means in the encoding's colour space.

After the optimisation the pixels cluster around the phase colours but are not exactly on them.
k-means with k = the number of phases (scikit-learn's :class:`~sklearn.cluster.KMeans`, k-means++
starts, seeded) finds the k colour clusters; each cluster then takes the phase of the nearest
encoding colour (:func:`~mdesign.reconstruction.encoding.encoding_colours`), one cluster per phase:
when two cluster centres are nearest the same colour, the assignment that minimises the total
squared distance (:func:`scipy.optimize.linear_sum_assignment`) decides, so no phase disappears
(Li et al. 2018 decode by k-means; the one-to-one rule is ours).

References
----------
Li, X. et al. "A transfer learning approach for microstructure reconstruction and
structure-property predictions", Sci. Rep. 8, 13461 (2018).
Arthur, D. & Vassilvitskii, S. "k-means++: the advantages of careful seeding", SODA (2007).
"""

from __future__ import annotations

import warnings

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment

from mdesign.reconstruction.encoding import encoding_colours
from mdesign.seeds import SeedLike, seed_int

__all__ = ["decode_kmeans"]


def decode_kmeans(pixels: torch.Tensor | np.ndarray, phases: int, *, seed: SeedLike) -> np.ndarray:
    """Phase labels of optimised pixels by k-means.

    Parameters
    ----------
    pixels : Tensor or ndarray, ``C x H x W`` (or ``C x H x W x D``)
        Pixels in the encoding's colour space (``C = 1`` for two phases, else 3).
    phases : int
        k, the number of clusters and phases.
    seed : int, Generator or SeedSequence
        Seed of the k-means++ initialisation (an int is used as given).

    Returns
    -------
    ndarray of uint8, ``H x W`` (or ``H x W x D``)
        Labels ``0..k-1``.
    """
    from sklearn.cluster import KMeans
    from sklearn.exceptions import ConvergenceWarning

    arr = pixels.detach().cpu().numpy() if isinstance(pixels, torch.Tensor) else np.asarray(pixels)
    c, spatial = arr.shape[0], arr.shape[1:]
    points = arr.reshape(c, -1).T.astype(np.float64)
    with warnings.catch_warnings():
        # fewer distinct colours than k (a flat image) is legal: some clusters are then empty
        warnings.simplefilter("ignore", ConvergenceWarning)
        km = KMeans(n_clusters=phases, n_init=3, random_state=seed_int(seed)).fit(points)
    colours = encoding_colours(phases, dtype=torch.float64).numpy()
    cost = ((km.cluster_centers_[:, None, :] - colours[None, :, :]) ** 2).sum(-1)
    clusters, phase_of = linear_sum_assignment(cost)
    mapping = np.empty(phases, dtype=np.uint8)
    mapping[clusters] = phase_of
    return mapping[km.labels_].reshape(spatial)
