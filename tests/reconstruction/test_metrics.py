import numpy as np
import pytest

from mdesign.descriptors import lineal_path, two_point_correlation_radial
from mdesign.grf import grf_microstructures
from mdesign.reconstruction.metrics import reconstruction_errors


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
