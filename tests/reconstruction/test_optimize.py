import numpy as np
import torch

from mdesign.reconstruction.loss import LossTerms
from mdesign.reconstruction.optimize import optimize_pixels


def _terms(total):
    return LossTerms(total=total, gram=total, s2=total * 0, tv=total * 0)


def test_lbfgs_minimises_a_quadratic():
    target = torch.linspace(0, 1, 64).reshape(1, 1, 8, 8)

    def loss(x):
        return _terms(((x - target) ** 2).sum() * 1e-3)

    res = optimize_pixels(loss, torch.zeros(1, 1, 8, 8), iterations=20)
    assert res.converged and not res.stalled
    torch.testing.assert_close(res.pixels, target, atol=1e-4, rtol=0)
    assert res.losses[0] > 1e3 * res.losses[-1]
    assert res.evaluations == len(res.losses) == len(res.gram_losses)


def test_a_flat_start_is_detected_and_not_called_converged():
    # zero gradient at the start: L-BFGS cannot move, Adam cannot either
    def loss(x):
        return _terms(((x - 5).clamp_min(0) ** 2).sum() + 1.0)

    res = optimize_pixels(loss, torch.rand(1, 1, 4, 4), iterations=30, adam_warmup=5)
    assert res.stalled and not res.converged
    assert np.all(res.losses == 1.0)
