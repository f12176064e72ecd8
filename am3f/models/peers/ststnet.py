"""STSTNet (Liong, See, Wong & Phan, "Shallow triple stream three-dimensional CNN (STSTNet) for
micro-expression recognition", FG 2019), the peer whose per-subject weights are published, and the
reader of those weights.

Three shallow streams over the whole flow image (3, 5 and 8 channels), each
conv -> ReLU -> BatchNorm -> MaxPool(3, stride 3, pad 1) -> dropout; concatenated, AvgPool(2), fc.
The layer names are the published ones (conv1..3, bn1..3, fc), so the published weights load as
they are. The published models take the PNG as ``cv2.imread`` returns it: BGR = (strain, v, u),
raw 0..255. Our models all take (u, v, strain) in [0, 1], so :class:`STSTNet` converts internally
and the same datasets, LOSO engine and Grad-CAM code serve the published and the re-trained models.
A run of the published weights (``am3f evaluate-weights``) is :func:`am3f.protocol.launch.evaluate_published_weights`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from am3f.errors import DataError

from .common import PeerConfigMixin


@dataclass(frozen=True)
class STSTNetConfig(PeerConfigMixin):
    arch: str = "ststnet"
    n_classes: int = 3
    dropout: float = 0.5


class STSTNet(nn.Module):
    def __init__(self, cfg: STSTNetConfig = STSTNetConfig(), image_size: int = 28):
        super().__init__()
        self.cfg = cfg
        self.conv1 = nn.Conv2d(3, 3, kernel_size=3, padding=2)
        self.conv2 = nn.Conv2d(3, 5, kernel_size=3, padding=2)
        self.conv3 = nn.Conv2d(3, 8, kernel_size=3, padding=2)
        self.relu = nn.ReLU()
        self.bn1, self.bn2, self.bn3 = nn.BatchNorm2d(3), nn.BatchNorm2d(5), nn.BatchNorm2d(8)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=3, padding=1)
        self.avgpool = nn.AvgPool2d(kernel_size=2, stride=2)
        self.dropout = nn.Dropout(cfg.dropout)
        side = ((image_size + 2 * 2 - 2) + 2 - 3) // 3 + 1  # conv (pad 2) then maxpool
        self.fc = nn.Linear(16 * (side // 2) ** 2, cfg.n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # (u, v, strain) in [0, 1]  ->  the BGR 0..255 image the published weights expect
        x = torch.round(x.flip(1) * 255.0)
        if self._layers_observed() or not self._joined_is_bit_exact(x, self.conv1.weight):
            streams = [self.maxpool(bn(self.relu(conv(x)))) for conv, bn in self._streams()]
        else:
            streams = self._pooled_streams_together(x).split(self.STREAM_WIDTHS, dim=1)
        x = self.avgpool(torch.cat([self.dropout(s) for s in streams], dim=1))
        return self.fc(torch.flatten(x, 1))

    # The three streams differ only in their width and every layer after the convolution acts channel by
    # channel, so one convolution of 3 + 5 + 8 = 16 channels, one batch norm and one max pool compute
    # them together: bit for bit the same outputs, gradients and running statistics as stream by stream
    # (tests/test_peers.py), in about 10 % less time per training step (few large kernels instead of many
    # small ones; docs/design-choices.md, "Where a peer's step goes"). Bit for bit only where the
    # convolution's weight gradient is summed in one order: on one CPU thread, how the engine's workers
    # train one fold at a time. With several threads, on a GPU or in a vmapped fold group the streams run
    # one by one, as they always did. Dropout
    # stays per stream: its masks are drawn in the same order as before. Grad-CAM hooks the batch-norm
    # layers, so with a hook attached the streams also run one by one, through the layers themselves.
    STREAM_WIDTHS = (3, 5, 8)

    def _streams(self):
        return ((self.conv1, self.bn1), (self.conv2, self.bn2), (self.conv3, self.bn3))

    @staticmethod
    def _joined_is_bit_exact(x: torch.Tensor, weight: torch.Tensor) -> bool:
        from torch._C._functorch import is_batchedtensor

        if is_batchedtensor(x) or is_batchedtensor(weight):  # vmapped fold groups: a grouped convolution
            return False
        return x.device.type == "cpu" and (torch.get_num_threads() == 1 or not torch.is_grad_enabled())

    def _layers_observed(self) -> bool:
        return any(m._forward_hooks or m._forward_pre_hooks or m._backward_hooks or m._backward_pre_hooks
                   for m in self.modules() if m is not self)

    def _pooled_streams_together(self, x: torch.Tensor) -> torch.Tensor:
        convs, bns = zip(*self._streams())
        joined = lambda tensors: torch.cat(list(tensors))  # noqa: E731
        h = self.relu(F.conv2d(x, joined(c.weight for c in convs), joined(c.bias for c in convs),
                               padding=self.conv1.padding))
        updating = self.training and self.bn1.track_running_stats
        mean, var = joined(b.running_mean for b in bns), joined(b.running_var for b in bns)
        h = F.batch_norm(h, mean, var, joined(b.weight for b in bns), joined(b.bias for b in bns),
                         training=self.training, momentum=self.bn1.momentum, eps=self.bn1.eps)
        if updating:  # F.batch_norm updated the joined copies: hand each stream its part
            with torch.no_grad():
                for b, m, v in zip(bns, mean.split(self.STREAM_WIDTHS), var.split(self.STREAM_WIDTHS)):
                    b.running_mean.copy_(m)
                    b.running_var.copy_(v)
                    b.num_batches_tracked.add_(1)
        return self.maxpool(h)

    def cam_target_layers(self) -> list[nn.Module]:
        return [self.bn1, self.bn2, self.bn3]


# ----------------------------------------------------------------------------- the published weights
def weights_path(weights_dir: Path, subject: str) -> Path:
    return weights_dir / f"{subject}.pth"


def check_weights_dir(weights_dir: str | os.PathLike, subjects: list[str]) -> Path:
    """The weights folder must hold one ``<subject>.pth`` per subject; else name the missing ones."""
    weights_dir = Path(weights_dir)
    if not weights_dir.is_dir():
        raise DataError(f"{weights_dir}: weights directory does not exist")
    missing = [s for s in subjects if not weights_path(weights_dir, s).is_file()]
    if missing:
        shown = ", ".join(missing[:8]) + (" ..." if len(missing) > 8 else "")
        raise DataError(f"{weights_dir}: no weights for {len(missing)} subject(s): {shown} "
                        f"(expected files like {weights_path(weights_dir, missing[0]).name})")
    return weights_dir


def load_published(path: Path, image_size: int = 28) -> STSTNet:
    model = STSTNet(image_size=image_size)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
        model.load_state_dict(state)
    except (RuntimeError, OSError, KeyError, ValueError, EOFError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise DataError(f"{path}: cannot load STSTNet weights ({first})") from None
    return model.eval()
