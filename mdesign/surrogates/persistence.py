"""Saving and loading surrogates: state dicts plus config, read with ``weights_only=True``.

A surrogate file is a plain dictionary written with :func:`torch.save` (atomically) and read with
``torch.load(..., weights_only=True)``, so loading runs no pickled code, like the GAN's
checkpoints:

* ``format``: ``"mdesign.surrogate/1"``; ``version``; ``kind``: ``network`` or ``s2_gp``;
* ``target``: what the model predicts (task name, evaluator, its parameters), and ``fit``: how
  it was fitted (images, seconds, per-member early-stopping record);
* network: ``mode``, ``architecture`` (the trunk's :class:`~mdesign.config.DiscriminatorConfig`),
  ``config`` (:class:`~mdesign.config.SurrogateNetworkConfig`), ``pretrained`` (provenance),
  ``y_mean``, ``y_std``, ``std_scale`` (the spread's calibration factor), ``trunks`` (one
  state dict, shared, for ``frozen``; else one per member) and ``heads`` (one per member);
* S2 + GP: ``config`` (:class:`~mdesign.config.SurrogateS2Config`), ``pca_mean``,
  ``pca_components``, ``train_x`` (the training images' principal components), ``train_y`` and
  ``gp`` (the GP's state dict: hyperparameters and transforms).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mdesign.config import (
    DiscriminatorConfig,
    SurrogateNetworkConfig,
    SurrogateS2Config,
    config_from_dict,
)
from mdesign.errors import InputError
from mdesign.io import save_torch
from mdesign.surrogates.models import FitInfo, NetworkSurrogate, S2Surrogate, build_gp
from mdesign.surrogates.networks import ImageRegressor, RegressionHead, build_trunk

__all__ = ["FORMAT", "load_surrogate", "save_surrogate"]

FORMAT = "mdesign.surrogate/1"


def _cpu(sd: dict) -> dict:
    return {k: v.detach().cpu().clone() for k, v in sd.items()}


def save_surrogate(model: NetworkSurrogate | S2Surrogate, path: str | os.PathLike) -> Path:
    """Write a fitted surrogate to ``path`` atomically (a failed write leaves the old file).

    Parameters
    ----------
    model : NetworkSurrogate or S2Surrogate
        Fitted.
    path : path-like
        The file, conventionally ``.pt``.

    Returns
    -------
    Path
    """
    from mdesign import __version__

    if not model.is_fitted:
        raise InputError("the surrogate is not fitted: call fit(images, values) first")
    state: dict[str, Any] = {
        "format": FORMAT,
        "version": __version__,
        "kind": model.kind,
        "target": _plain(model.target),
        "fit": _plain(model.fit_info.as_dict() if model.fit_info else {}),
        "config": model.config.model_dump(mode="json"),
    }
    if isinstance(model, NetworkSurrogate):
        shared = model.mode == "frozen"
        trunks = [model.members[0].trunk] if shared else [m.trunk for m in model.members]
        state.update(
            mode=model.mode,
            architecture=model.architecture.model_dump(mode="json"),
            pretrained=model.pretrained,
            y_mean=float(model.y_mean),
            y_std=float(model.y_std),
            std_scale=float(model.std_scale),
            trunks=[_cpu(t.state_dict()) for t in trunks],
            heads=[_cpu(m.head.state_dict()) for m in model.members],
        )
    else:
        state.update(
            pca_mean=torch.as_tensor(model.pca_mean),
            pca_components=torch.as_tensor(model.pca_components),
            train_x=model.train_x.detach().clone(),
            train_y=model.train_y.detach().clone(),
            gp=_cpu(model.gp.state_dict()),
        )
    return save_torch(state, path)


def _plain(obj: Any) -> Any:
    """JSON-like values only (what ``weights_only`` loading accepts)."""
    if isinstance(obj, dict):
        return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    if isinstance(obj, (np.floating, np.integer)):
        return obj.item()
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    return str(obj)


def load_surrogate(
    path: str | os.PathLike, *, device: torch.device | str | None = None
) -> NetworkSurrogate | S2Surrogate:
    """Load a surrogate written by :func:`save_surrogate` (``mdesign surrogate-train``).

    Parameters
    ----------
    path : path-like
    device : torch.device or str, optional
        Where a network surrogate runs (CUDA when present by default); the GP runs on the CPU.

    Returns
    -------
    NetworkSurrogate or S2Surrogate
        Fitted, giving the same predictions as the model that was saved.

    Raises
    ------
    InputError
        A missing, corrupted or foreign file, or weights that do not fit the stored config.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such surrogate model file")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # truncated archive, foreign pickle: not ours to read
        first = (str(exc).strip() or type(exc).__name__).splitlines()[0][:200]
        raise InputError(f"{path}: not a readable surrogate model ({first})") from None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise InputError(f"{path}: not an mdesign surrogate model (no format {FORMAT!r})")
    try:
        if state["kind"] == "network":
            model = _load_network(state, path, device)
        elif state["kind"] == "s2_gp":
            model = _load_s2(state, path)
        else:
            raise InputError(f"{path}: unknown surrogate kind {state['kind']!r}")
    except KeyError as exc:
        raise InputError(f"{path}: incomplete surrogate model, missing {exc}") from None
    except (RuntimeError, TypeError, ValueError, AttributeError) as exc:
        if isinstance(exc, InputError):
            raise
        first = (str(exc).strip() or type(exc).__name__).splitlines()[0][:200]
        raise InputError(f"{path}: the weights do not fit the stored config ({first})") from None
    model.target = dict(state.get("target") or {})
    fit = state.get("fit") or {}
    if fit:
        model.fit_info = FitInfo(
            int(fit.get("n_images", 0)), float(fit.get("seconds", 0.0)), list(fit["members"])
        )
    return model


def _load_network(state: dict, path: Path, device) -> NetworkSurrogate:
    src = str(path)
    arch = config_from_dict(DiscriminatorConfig, state["architecture"], source=f"{src}: arch")
    cfg = config_from_dict(SurrogateNetworkConfig, state["config"], source=f"{src}: config")
    model = NetworkSurrogate(
        "scratch", architecture=arch, config=cfg, device=device
    )  # the mode is set below; "scratch" needs no pretrained trunk to construct
    model.mode = state["mode"]
    model.pretrained = state.get("pretrained", "")
    model.y_mean, model.y_std = float(state["y_mean"]), float(state["y_std"])
    model.std_scale = float(state.get("std_scale", 1.0))  # absent before calibration existed
    trunks = []
    for sd in state["trunks"]:
        t = build_trunk(arch)
        t.load_state_dict(sd)
        trunks.append(t.to(model.device).eval())
    heads = state["heads"]
    if len(trunks) not in (1, len(heads)):
        raise InputError(f"{src}: {len(trunks)} trunks for {len(heads)} heads")
    for k, sd in enumerate(heads):
        head = RegressionHead(sd["hidden.weight"].shape[1], sd["hidden.weight"].shape[0])
        head.load_state_dict(sd)
        trunk = trunks[0] if len(trunks) == 1 else trunks[k]
        member = ImageRegressor(trunk, head.to(model.device), pool=cfg.pool).eval()
        for p in member.parameters():
            p.requires_grad_(False)
        model.members.append(member)
    return model


def _load_s2(state: dict, path: Path) -> S2Surrogate:
    cfg = config_from_dict(SurrogateS2Config, state["config"], source=f"{path}: config")
    model = S2Surrogate(cfg)
    model.pca_mean = state["pca_mean"].numpy()
    model.pca_components = state["pca_components"].numpy()
    # rebuilding on the same training data and loading the fitted state reproduces the GP's
    # posterior exactly (the transforms' statistics are in the state dict)
    gp = build_gp(state["train_x"], state["train_y"])
    gp.load_state_dict(state["gp"])
    model.gp = gp.eval()
    model.train_x, model.train_y = state["train_x"], state["train_y"]
    return model
