import numpy as np
import pytest
from scipy import ndimage

from mdesign.descriptors import (
    chord_lengths,
    lineal_path,
    specific_surface,
    two_point_correlation_radial,
)
from mdesign.grf import grf_microstructures
from mdesign.reconstruction.metrics import cluster_counts, reconstruction_errors


def test_identical_images_have_zero_error(two_phase):
    e = reconstruction_errors(
        two_phase, two_phase, phases=2, reconstruction_periodic=True, exemplar_periodic=True
    )
    assert e.s2_rmse == 0 and e.lineal_path_rmse == 0 and e.fraction_error == 0
    assert e.phases == (1,) and e.s2_exemplar.shape == (1, 13)  # R = 48 // 4


def test_errors_against_the_descriptors(two_phase, three_phase):
    rec = three_phase[:32, :36]
    ex = np.pad(two_phase, ((0, 0), (0, 4)))
    ex[:4, :4] = 2  # a third phase
    e = reconstruction_errors(ex, rec, phases=3)
    r = 8  # a quarter of the smaller side of the smaller image
    s2_ex = np.stack(
        [
            two_point_correlation_radial(ex[None], phase=j, max_distance=r, periodic=False)[0]
            for j in range(3)
        ]
    )
    s2_re = np.stack(
        [two_point_correlation_radial(rec[None], phase=j, max_distance=r)[0] for j in range(3)]
    )
    lp_re = np.stack([lineal_path(rec[None], phase=j, max_distance=r)[0] for j in range(3)])
    assert e.s2_rmse == pytest.approx(np.sqrt(((s2_ex - s2_re) ** 2).mean()))
    np.testing.assert_allclose(e.lineal_path_reconstruction, lp_re)
    fr_ex = np.bincount(ex.ravel(), minlength=3) / ex.size
    fr_re = np.bincount(rec.ravel(), minlength=3) / rec.size
    assert e.fraction_error == pytest.approx(np.abs(fr_ex - fr_re).max())
    assert e.fraction_error_pixels == pytest.approx(e.fraction_error * rec.size)


def test_two_phase_errors_are_phase_1s(two_phase):
    # phase 1's curves, as `characterize` reports them; on the torus phase 0's S2 error would be
    # the same (S2_0 = 1 - 2 phi + S2_1 at equal fractions), so nothing is lost
    rec = grf_microstructures(
        1, (48, 48), volume_fraction=0.35, correlation_length=6, seed=1
    ).images[0]
    assert rec.sum() == two_phase.sum()
    e = reconstruction_errors(two_phase, rec, phases=2, exemplar_periodic=True)
    s2 = [
        two_point_correlation_radial(im[None], phase=p, max_distance=12)[0]
        for im in (two_phase, rec)
        for p in (0, 1)
    ]
    assert e.s2_rmse > 1e-3
    assert e.s2_rmse == pytest.approx(np.sqrt(((s2[1] - s2[3]) ** 2).mean()))
    np.testing.assert_allclose(s2[0] - s2[2], s2[1] - s2[3], atol=1e-6)


def _flood_fill_count(mask: np.ndarray, *, periodic: bool) -> int:
    """Connected components of a boolean mask by breadth-first search (4-neighbours)."""
    h, w = mask.shape
    seen = np.zeros_like(mask, dtype=bool)
    count = 0
    for y0, x0 in zip(*np.nonzero(mask), strict=True):
        if seen[y0, x0]:
            continue
        count += 1
        seen[y0, x0] = True
        stack = [(y0, x0)]
        while stack:
            y, x = stack.pop()
            for dy, dx in ((1, 0), (-1, 0), (0, 1), (0, -1)):
                ny, nx = y + dy, x + dx
                if periodic:
                    ny, nx = ny % h, nx % w
                elif not (0 <= ny < h and 0 <= nx < w):
                    continue
                if mask[ny, nx] and not seen[ny, nx]:
                    seen[ny, nx] = True
                    stack.append((ny, nx))
    return count


@pytest.mark.parametrize("periodic", [False, True])
def test_cluster_counts_match_a_flood_fill(two_phase, three_phase, periodic):
    for image, k in ((two_phase, 2), (three_phase, 3)):
        counts = cluster_counts(image, phases=k, periodic=periodic)
        brute = [_flood_fill_count(image == j, periodic=periodic) for j in range(k)]
        assert counts.tolist() == brute
        if not periodic:  # scipy's own 4-connected labelling agrees
            assert counts.tolist() == [ndimage.label(image == j)[1] for j in range(k)]
    # a periodic GRF has clusters crossing the wrap-around: merging them lowers the count
    flat = cluster_counts(two_phase, phases=2).sum()
    assert cluster_counts(two_phase, phases=2, periodic=True).sum() < flat


def test_cluster_counts_of_a_checkerboard_and_isolated_pixels():
    board = np.indices((8, 8)).sum(0) % 2  # 4-connectivity: every pixel is its own cluster
    assert cluster_counts(board, phases=2).tolist() == [32, 32]
    speck = np.zeros((10, 10), dtype=np.uint8)
    speck[2, 2] = speck[5, 7] = speck[0, 0] = speck[9, 9] = 1
    assert cluster_counts(speck, phases=2).tolist() == [1, 4]
    # (0, 0) and (9, 9) are diagonal neighbours across the corner: still two clusters on the
    # torus with 4-connectivity, while a pixel at (0, 5) would join one at (9, 5)
    assert cluster_counts(speck, phases=2, periodic=True).tolist() == [1, 4]
    speck[0, 5] = speck[9, 5] = 1
    assert cluster_counts(speck, phases=2, periodic=True).tolist() == [1, 5]
    assert cluster_counts(speck, phases=3).tolist() == [1, 6, 0]


def test_morphology_reuses_the_descriptors_and_reports_relative_errors(two_phase):
    rec = grf_microstructures(
        1, (48, 48), volume_fraction=0.35, correlation_length=6, seed=1
    ).images[0]
    e = reconstruction_errors(two_phase, rec, phases=2)
    m = e.morphology_reconstruction
    for j in (0, 1):
        assert m.specific_surface[j] == pytest.approx(
            specific_surface(rec[None], phase=j, periodic=True)[0]
        )
        assert m.mean_chord_length[j] == pytest.approx(
            chord_lengths(rec[None], phase=j, periodic=False).mean
        )
    # two phases share one interface; the lineal path of phase 1 is the contract's curve
    assert m.specific_surface[0] == pytest.approx(m.specific_surface[1])
    np.testing.assert_allclose(m.lineal_path[1], e.lineal_path_reconstruction[0])
    rep = e.morphology_report()
    mx = e.morphology_exemplar
    for key in ("clusters", "specific_surface", "mean_chord_length"):
        ex, re, rel = (rep[f"{key}_{s}"] for s in ("exemplar", "reconstruction", "relative_error"))
        assert len(ex) == len(re) == len(rel) == 2
        assert rel == pytest.approx([r / x - 1 for r, x in zip(re, ex, strict=True)])
    assert rep["clusters_exemplar"] == cluster_counts(two_phase, phases=2).tolist()
    # a coarser field (correlation length 6 against 3) has less interface and longer chords
    assert rep["specific_surface_relative_error"][1] < 0
    assert min(rep["mean_chord_length_relative_error"]) > 0
    assert mx.clusters.sum() > m.clusters.sum()
    lp1 = np.sqrt(((m.lineal_path[1] - mx.lineal_path[1]) ** 2).mean())
    assert rep["lineal_path_rmse_per_phase"][1] == pytest.approx(lp1)
    assert lp1 == pytest.approx(e.lineal_path_rmse)


def test_clusters_of_different_sizes_are_counted_in_equal_windows():
    """A periodic exemplar tiled 2 x 2: four times the clusters in all, about as many per
    exemplar-sized window (each window is a cyclic shift of the exemplar)."""
    ex = grf_microstructures(1, (64, 64), volume_fraction=0.3, correlation_length=2, seed=5).images[
        0
    ]
    big = np.tile(ex, (2, 2))
    e = reconstruction_errors(ex, big, phases=2)
    raw = cluster_counts(big, phases=2) / cluster_counts(ex, phases=2) - 1
    assert raw[1] > 2  # what the report compared before
    assert e.morphology_exemplar.clusters.tolist() == cluster_counts(ex, phases=2).tolist()
    errs = e.morphology_report()["clusters_relative_error"]
    assert all(abs(x) < 0.1 for x in errs), errs
    # the 9 windows by a flood fill here
    wins = [big[y : y + 64, x : x + 64] for y in (0, 32, 64) for x in (0, 32, 64)]
    mean = [np.mean([ndimage.label(w == j)[1] for w in wins]) for j in (0, 1)]
    np.testing.assert_allclose(e.morphology_reconstruction.clusters, mean)


def test_directional_ratio_sees_bands_and_stripes():
    from mdesign.reconstruction.metrics import s2_directional_ratio

    bands = np.zeros((64, 64), np.uint8)
    bands[(np.arange(64) // 6) % 2 == 1] = 1  # horizontal bands, 6 px thick
    stripes = bands.T.copy()
    iso = grf_microstructures(4, (64, 64), volume_fraction=0.4, correlation_length=4, seed=3).images
    for periodic in (True, False):
        r_bands = s2_directional_ratio(bands, phase=1, periodic=periodic)
        assert r_bands > 1.3  # along a band S2 stays at the fraction
        # transposing swaps rows and columns
        r_stripes = s2_directional_ratio(stripes, phase=1, periodic=periodic)
        assert r_stripes == pytest.approx(1 / r_bands)
        assert abs(s2_directional_ratio(iso, phase=1, periodic=periodic) - 1) < 0.1
    assert np.isnan(s2_directional_ratio(np.zeros((8, 8), np.uint8), phase=1, periodic=True))


def test_quadrant_deviation_sees_a_phase_on_one_side():
    from mdesign.reconstruction.metrics import quadrant_fraction_deviation

    even = np.indices((32, 32)).sum(0) % 2  # a checkerboard: every quadrant at 1/2
    assert quadrant_fraction_deviation(even, phase=1) == 0
    left = np.zeros((32, 32), np.uint8)
    left[:, :8] = 1  # all in the left half: the right quadrants are empty
    assert quadrant_fraction_deviation(left, phase=1) == pytest.approx(1.0)
    corner = np.zeros((8, 8, 8), np.uint8)
    corner[:4, :4, :4] = 1  # one octant of a volume holds the phase: 8 times the fraction
    assert quadrant_fraction_deviation(corner[None], phase=1) == pytest.approx(7.0)


def test_report_has_the_shape_keys(two_phase):
    from mdesign.descriptors import local_thickness

    rec = grf_microstructures(
        1, (48, 48), volume_fraction=0.35, correlation_length=6, seed=1
    ).images[0]
    e = reconstruction_errors(two_phase, rec, phases=2)
    rep = e.morphology_report()
    for key in (
        "local_thickness_mean",
        "local_thickness_p90",
        "s2_directional_ratio",
        "quadrant_fraction_deviation",
    ):
        ex, re, rel = (rep[f"{key}_{s}"] for s in ("exemplar", "reconstruction", "relative_error"))
        assert len(ex) == len(re) == len(rel) == 2
    for j in (0, 1):
        lt = local_thickness(rec, phase=j)
        assert rep["local_thickness_mean_reconstruction"][j] == pytest.approx(lt.mean)
        assert rep["local_thickness_p90_reconstruction"][j] == lt.quantile(0.9)
    # a coarser field (correlation length 6 against 3) is thicker
    assert min(rep["local_thickness_mean_relative_error"]) > 0
    # the slices of a volume carry the same keys
    from mdesign.reconstruction.metrics import slice_errors

    vol = np.repeat(rec[:, :, None], 8, axis=2)
    s = slice_errors(two_phase, vol, axis=2, phases=2).morphology_report()
    assert s["local_thickness_mean_reconstruction"] == pytest.approx(
        rep["local_thickness_mean_reconstruction"]
    )
