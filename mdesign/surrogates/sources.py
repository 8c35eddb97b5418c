"""Where a transfer surrogate's pretrained trunk comes from: a GAN or another surrogate.

A ``frozen`` or ``finetune`` surrogate starts from a convolutional trunk: the trained GAN
discriminator's (Yang et al. 2018), or that of a network surrogate of another property
(cross-property transfer, Gupta et al. 2021). :func:`load_transfer_source` reads either from
one path, telling them apart by the file's ``format`` record.
"""

from __future__ import annotations

import os

from mdesign.errors import InputError

__all__ = ["load_transfer_source"]


def load_transfer_source(path: str | os.PathLike):
    """A GAN checkpoint or a network surrogate, whichever ``path`` holds.

    Parameters
    ----------
    path : path-like
        A GAN checkpoint (``mdesign train``) or a surrogate model (``mdesign surrogate-train``).

    Returns
    -------
    mdesign.gan.checkpoint.GANCheckpoint or mdesign.surrogates.NetworkSurrogate
        On the CPU; :func:`mdesign.surrogates.make_surrogate` takes either as ``gan``.

    Raises
    ------
    InputError
        ``path`` is an S2 + GP surrogate (it has no trunk), or not a readable GAN checkpoint.
    """
    import torch

    from mdesign.gan import load_checkpoint
    from mdesign.surrogates.models import NetworkSurrogate
    from mdesign.surrogates.persistence import FORMAT, load_surrogate

    try:
        head = torch.load(path, map_location="cpu", weights_only=True)
    except Exception:  # not a torch file: load_checkpoint says what is wrong with it
        head = None
    if isinstance(head, dict) and head.get("format") == FORMAT:
        model = load_surrogate(path)
        if not isinstance(model, NetworkSurrogate):
            raise InputError(f"{path}: an S2 + GP surrogate has no trunk to transfer", param="path")
        return model
    return load_checkpoint(path, device="cpu")
