"""The directional term of the image annealing (``anneal.directional_weight``)."""

import numpy as np
import pytest

from mdesign.errors import InputError
from mdesign.reconstruction.annealing import anneal_fractions, directional_target
from mdesign.reconstruction.lags import ImageLags
from mdesign.reconstruction.loss import s2_window
from mdesign.reconstruction.metrics import s2_directional_ratio


def _bands(shape, seed, phases=2):
    """Labels with bands along the rows (an anisotropic exemplar), noise on top."""
    rng = np.random.default_rng(seed)
    y = np.arange(shape[0])[:, None] + rng.normal(0, 2, shape)
    lab = (np.floor(y / 5) % phases).astype(np.uint8)
    flip = rng.random(shape) < 0.15
    lab[flip] = rng.integers(0, phases, flip.sum())
    return lab


def _state(labels, ex, phases, *, periodic=True, exemplar_periodic=False, r=16, tol=0.0):
    import torch

    tracked = [1] if phases == 2 else list(range(phases))
    onehot = torch.as_tensor(np.stack([ex == ph for ph in tracked]), dtype=torch.float64)
    win = s2_window(onehot[None], r, periodic=exemplar_periodic)[0]
    state = ImageLags(labels, win.reshape(len(tracked), -1).numpy(), tracked, r, periodic, True, 16)
    op, target, weight = directional_target(state, ex, phases, exemplar_periodic=exemplar_periodic)
    state.set_directional(op, target, np.sqrt(weight), 1e-3, tol)
    return state


@pytest.mark.parametrize(("phases", "tol"), [(2, 0.0), (3, 0.0), (2, 0.05), (3, 0.05)])
def test_incremental_change_equals_a_full_recount(phases, tol):
    # after random swaps applied move by move, the predicted energy changes add up to the
    # energy of a state built afresh on the result, and the tracked S2 to an exact recount
    ex = _bands((48, 48), 0, phases)
    rng = np.random.default_rng(1)
    labels = rng.integers(0, phases, (40, 40)).astype(np.uint8)
    state = _state(labels, ex, phases, tol=tol)
    e = state.energy()
    for _ in range(30):
        p, q = rng.integers(0, labels.size, 2)
        lp, lq = state.flat[p], state.flat[q]
        if lp == lq:
            continue
        ds = state.delta(np.array([p]), np.array([lq]), np.array([q]), np.array([lp]))
        dc = state.compare(ds)
        de = float(state.energy_change(dc)[0])
        state.set_label(p, lq)
        state.set_label(q, lp)
        state.add_s2(ds[0], dc[0])
        assert state.energy() == pytest.approx(e + de, rel=1e-9, abs=1e-15)
        e = state.energy()
    fresh = _state(state.labels.copy(), ex, phases, tol=tol)
    np.testing.assert_allclose(state.s2, fresh.s2, atol=1e-12)
    assert fresh.energy() == pytest.approx(e, rel=1e-9)
    dir_part = state._dir_energy(state.s2)
    assert dir_part > 0  # the term is in the energy


def test_target_is_the_exemplars_ratio_and_transposes():
    # per phase, 1 + D / c is the metric's directional ratio of the exemplar (an independent
    # estimator), and the transposed exemplar's is its inverse; with two phases the one
    # target changes sign
    labels = np.zeros((40, 40), np.uint8)
    labels[:, ::2] = 1
    for phases in (2, 3):
        ex = _bands((64, 64), 2, phases)
        ratios = np.array(
            [s2_directional_ratio(ex, phase=j, periodic=False) for j in range(phases)]
        )
        assert (np.abs(ratios - 1) > 0.05).any()  # anisotropic
        got = []
        for image in (ex, ex.T.copy()):
            state = _state(labels, image, phases)
            _, target, weight = directional_target(state, image, phases, exemplar_periodic=False)
            got.append(target)
            if phases == 3:
                want = ratios if image is ex else 1 / ratios
                np.testing.assert_allclose(1 + target * np.sqrt(weight), want, rtol=1e-6)
        if phases == 2:
            assert got[0][0] * got[1][0] < 0


def test_two_phase_target_weighs_each_phases_ratio_error():
    # with two phases the one term equals the sum of both phases' squared relative errors,
    # up to a constant: check on two states with different S2
    ex = _bands((64, 64), 3, 2)
    rng = np.random.default_rng(4)
    r = [s2_directional_ratio(ex, phase=j, periodic=False) for j in range(2)]
    energies, sums = [], []
    for seed in range(3):
        lab = (rng.random((40, 40)) < 0.3 + 0.1 * seed).astype(np.uint8)
        lab = np.where(rng.random((40, 40)) < 0.5, lab, np.roll(lab, 1, axis=1))
        state = _state(lab, ex, 2)
        w = state.dir_scale**2
        n = lab.size
        s2_1 = state.s2[0]
        d = s2_1 @ state.dir_op
        _, cols = state.directional_lags(4, 16)
        c_ex = []
        import torch

        for ph in range(2):
            win = s2_window(
                torch.as_tensor((ex == ph)[None, None], dtype=torch.float64), 16, periodic=False
            )[0, 0]
            c_ex.append(float(win.reshape(-1).numpy()[state.keep][cols].mean()))
        c_ex = np.array(c_ex)
        energies.append(float(w[0] * (d - state.dir_target[0]) ** 2))
        sums.append(float((((d - (np.array(r) - 1) * c_ex) / c_ex) ** 2).sum()))
        assert n > 0
    # differences between states agree (the constant cancels)
    np.testing.assert_allclose(np.diff(energies), np.diff(sums), rtol=1e-6, atol=1e-12)


def test_term_is_zero_on_an_exact_match():
    # the labels equal to a periodic exemplar: no directional error (both phase counts)
    for phases in (2, 3):
        ex = _bands((40, 40), 5, phases)
        state = _state(ex.copy(), ex, phases, exemplar_periodic=True)
        assert state._dir_energy(state.s2) == pytest.approx(0.0, abs=1e-20)


def test_annealing_moves_the_ratio_towards_the_exemplars_and_refuses_volumes():
    ex = _bands((64, 64), 6, 2)
    rng = np.random.default_rng(7)
    start = (rng.random((48, 48)) < (ex == 1).mean()).astype(np.uint8)
    kw = dict(phases=2, max_lag=12, steps=4000, seed=0, keep_clusters=False, surface=False)
    off = anneal_fractions(start, ex, directional_weight=0.0, **kw)
    on = anneal_fractions(start, ex, directional_weight=10.0, directional_tolerance=0.0, **kw)
    target = s2_directional_ratio(ex, phase=1, periodic=False)
    got = [s2_directional_ratio(a.labels, phase=1, periodic=True) for a in (off, on)]
    assert abs(got[1] - target) < abs(got[0] - target)
    assert (on.labels == 1).sum() == on.target_counts[1]
    with pytest.raises(InputError):
        anneal_fractions(
            np.zeros((8, 8, 8), np.uint8),
            [ex[:8, :8]] * 3,
            directional_weight=1.0,
            phases=2,
            max_lag=3,
            steps=0,
            seed=0,
        )


def test_a_tolerance_beyond_the_error_leaves_the_annealing_as_without_the_term():
    # relu(|u| - tol): with a tolerance no error reaches, every change of the term is 0, so the
    # annealing is the plain one label for label; a small tolerance changes it
    ex = _bands((64, 64), 6, 2)
    rng = np.random.default_rng(7)
    start = (rng.random((48, 48)) < (ex == 1).mean()).astype(np.uint8)
    kw = dict(phases=2, max_lag=12, steps=1500, seed=0, keep_clusters=False, surface=False)
    off = anneal_fractions(start, ex, directional_weight=0.0, **kw)
    far = anneal_fractions(start, ex, directional_weight=10.0, directional_tolerance=1e6, **kw)
    near = anneal_fractions(start, ex, directional_weight=10.0, directional_tolerance=0.01, **kw)
    np.testing.assert_array_equal(far.labels, off.labels)
    assert (near.labels != off.labels).any()
