"""Helpers shared by the peer architectures: plain-data configs and input conversion.

Every peer takes what AM3F-FlowNet takes, ONE tensor (N, 3, H, W) in (u, v, strain) order with
values in [0, 1] (flow PNG / 255, see :mod:`am3f.data.dataset`), and converts it internally to what its
authors' model was fed. The helpers here are written so that they work unchanged under
``torch.func.vmap`` (no in-place ops on inputs, no data-dependent Python control flow).
"""

from __future__ import annotations

from dataclasses import asdict

import torch
import torch.nn.functional as F
from torch import nn

from am3f.utils import config_from_dict


class PeerConfigMixin:
    """``to_dict`` / ``from_dict`` like :class:`am3f.models.am3f_flownet.ModelConfig` (the dict is what a run's
    config.json records; its ``"arch"`` key tells :func:`am3f.models.registry.build_model` what to build)."""

    def to_dict(self) -> dict:
        return asdict(self)  # type: ignore[call-overload]

    @classmethod
    def from_dict(cls, d: dict):
        return config_from_dict(cls, d, "model")


def resize_to(x: torch.Tensor, size: int) -> torch.Tensor:
    """The authors' input side (their fully connected layers fix it): area-resample when our images
    have another size; a no-op at the common 28x28 (the shape test is static, so vmap-safe)."""
    if x.shape[-2:] == (size, size):
        return x
    return F.interpolate(x, size=(size, size), mode="area")


def keras_init_(module: nn.Module) -> None:
    """Keras defaults, for peers whose public code is Keras: glorot-uniform kernels, zero biases."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            nn.init.xavier_uniform_(m.weight)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
