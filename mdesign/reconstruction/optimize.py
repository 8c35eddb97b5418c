"""Pixel optimisation: L-BFGS on the reconstruction's pixels, with stall detection.

Following Gatys et al. (2015) and Li et al. (2018), the pixels themselves are the variables and
:class:`torch.optim.LBFGS` minimises the loss from a seeded random start. The line search is the
strong-Wolfe search (without it L-BFGS takes unit steps whose length depends on the loss's scale,
which is how a run "stalls at noise"), and the gradient and change tolerances are set so low that
only the iteration budget stops it: the per-pixel gradients of a loss of order one on ``128 x 128``
pixels are around ``1e-6``, below torch's default ``tolerance_grad`` of ``1e-7`` after a few
iterations.

Non-convergence
    After ``stall_iterations`` L-BFGS iterations (or when L-BFGS stops by itself earlier) the
    loss must have fallen below ``(1 - stall_decrease)`` of its start. If not, the run has
    stalled: ``adam_warmup`` Adam
    steps move the pixels out of the flat region and L-BFGS restarts with a fresh history (once).
    At the end, ``converged`` says whether the loss fell to ``convergence_ratio`` of its start or
    below; callers report a run that did not.

References
----------
Liu, D. C. & Nocedal, J. "On the limited memory BFGS method for large scale optimization",
Math. Program. 45, 503 (1989).
Gatys, L. A., Ecker, A. S. & Bethge, M. "Texture synthesis using convolutional neural networks",
NeurIPS (2015).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from tqdm.auto import tqdm

from mdesign.config import RECONSTRUCTION_DEFAULTS
from mdesign.reconstruction.loss import LossTerms

__all__ = ["OptimizationResult", "optimize_pixels"]

_CHUNK = 10  # L-BFGS iterations per step() call: the stall check and the progress bar's grain
_MAX_EVAL = 4  # evaluation cap per iteration (strong Wolfe needs 1-2, rarely more)


@dataclass(frozen=True)
class OptimizationResult:
    """Optimised pixels and the course of the loss.

    Attributes
    ----------
    pixels : Tensor, ``batch x C x H x W``
        Detached, on the input's device.
    losses : ndarray
        Total loss at every evaluation (line-search trials included), in order.
    gram_losses, s2_losses : ndarray
        Its parts at the same evaluations.
    iterations : int
        L-BFGS iterations done.
    evaluations : int
        Loss evaluations (forward and backward passes), Adam steps included; L-BFGS asking
        again at the point it last evaluated is answered from that evaluation.
    stalled : bool
        The stall check fired and the Adam warm-up was used.
    converged : bool
        The final loss is at most ``convergence_ratio`` times the first.
    """

    pixels: torch.Tensor
    losses: np.ndarray
    gram_losses: np.ndarray
    s2_losses: np.ndarray
    iterations: int
    evaluations: int
    stalled: bool
    converged: bool

    @property
    def loss_ratio(self) -> float:
        """Final over initial loss."""
        return float(self.losses[-1] / self.losses[0]) if self.losses[0] > 0 else 0.0


def optimize_pixels(
    loss_fn: Callable[[torch.Tensor], LossTerms],
    init: torch.Tensor,
    *,
    iterations: int,
    history_size: int = RECONSTRUCTION_DEFAULTS.optimiser.history_size,
    stall_iterations: int = RECONSTRUCTION_DEFAULTS.optimiser.stall_iterations,
    stall_decrease: float = RECONSTRUCTION_DEFAULTS.optimiser.stall_decrease,
    adam_warmup: int = RECONSTRUCTION_DEFAULTS.optimiser.adam_warmup,
    adam_lr: float = RECONSTRUCTION_DEFAULTS.optimiser.adam_lr,
    convergence_ratio: float = RECONSTRUCTION_DEFAULTS.optimiser.convergence_ratio,
    progress: bool = False,
    desc: str = "L-BFGS",
) -> OptimizationResult:
    """Minimise ``loss_fn`` over the pixels with L-BFGS from ``init``.

    Parameters
    ----------
    loss_fn : callable
        Pixels ``batch x C x H x W`` to :class:`~mdesign.reconstruction.loss.LossTerms`.
    init : Tensor, ``batch x C x H x W``
        Starting pixels (not modified).
    iterations : int
        L-BFGS iterations.
    history_size : int
        L-BFGS memory.
    stall_iterations, stall_decrease, adam_warmup, adam_lr
        The stall check and its remedy (module docstring); ``adam_warmup = 0`` disables it.
    convergence_ratio : float
        The loss must end at or below this fraction of its start to count as converged.
    progress : bool
        Show a progress bar over the iterations.
    desc : str
        The bar's label.

    Returns
    -------
    OptimizationResult
    """
    x = init.detach().clone().requires_grad_(True)
    losses: list[tuple[float, float, float]] = []

    def evaluate() -> torch.Tensor:
        terms = loss_fn(x)
        losses.append((terms.total.item(), float(terms.gram.detach()), float(terms.s2.detach())))
        return terms.total

    def make_lbfgs() -> torch.optim.LBFGS:
        return torch.optim.LBFGS(
            [x],
            lr=1.0,
            max_iter=_CHUNK,
            max_eval=_MAX_EVAL * _CHUNK,
            history_size=history_size,
            tolerance_grad=1e-12,
            tolerance_change=1e-14,
            line_search_fn="strong_wolfe",
        )

    # the point, loss and gradient of the last evaluation: torch's L-BFGS evaluates at the start
    # of every step() call, mostly where the previous call's last evaluation was
    last: dict[str, torch.Tensor] = {}

    def closure() -> torch.Tensor:
        if last and torch.equal(x, last["x"]):
            x.grad = last["grad"].clone()
            return last["loss"]
        opt.zero_grad(set_to_none=True)
        loss = evaluate()
        loss.backward()
        last.update(x=x.detach().clone(), grad=x.grad.detach().clone(), loss=loss.detach())
        return loss

    opt = make_lbfgs()
    done = 0
    stalled = False
    bar = tqdm(total=iterations, desc=desc, unit="it", disable=not progress, leave=False)
    while done < iterations:
        n = min(_CHUNK, iterations - done)
        opt.param_groups[0]["max_iter"] = n
        opt.param_groups[0]["max_eval"] = _MAX_EVAL * n
        state = opt.state[x] if x in opt.state else {}
        before, evals = state.get("n_iter", 0), state.get("func_evals", 0)
        opt.step(closure)
        ran = opt.state[x]["n_iter"] - before
        # fewer iterations than asked without hitting the evaluation cap: L-BFGS stopped itself
        stopped = ran < n and opt.state[x]["func_evals"] - evals < _MAX_EVAL * n
        done += ran
        bar.update(ran)
        bar.set_postfix(loss=f"{losses[-1][0]:.3g}")
        no_progress = min(loss[0] for loss in losses) > (1 - stall_decrease) * losses[0][0]
        if (
            not stalled
            and adam_warmup > 0
            and no_progress
            and (done >= stall_iterations or stopped)
        ):
            # stalled: Adam moves out of the flat start, then L-BFGS begins afresh
            stalled = True
            adam = torch.optim.Adam([x], lr=adam_lr)
            for _ in range(adam_warmup):
                adam.zero_grad(set_to_none=True)
                evaluate().backward()
                adam.step()
            last.clear()
            opt = make_lbfgs()
            continue
        if stopped:
            break  # no further progress is possible (a zero gradient or a failed line search)
    bar.close()
    arr = np.array(losses)
    best = float(arr[:, 0].min())
    return OptimizationResult(
        pixels=x.detach(),
        losses=arr[:, 0],
        gram_losses=arr[:, 1],
        s2_losses=arr[:, 2],
        iterations=done,
        evaluations=len(losses),
        stalled=stalled,
        converged=bool(best <= convergence_ratio * arr[0, 0]),
    )
