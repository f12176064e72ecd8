"""Dual-Inception (Zhou, Mao & Xue, "Dual-Inception Network for Cross-Database Micro-Expression
Recognition", IEEE FG 2019, the MEGC 2019 entry), re-implemented in PyTorch.

Source: the authors' Keras code, github.com/xly135846/MEGC2019 (the paper's abstract links it),
``dual_inception.py`` at commit 2dc306a (the files were deleted from the repository in Dec 2019;
they live in its history): ``create_inception_model()`` lines 103-185, the training call lines
199-219; the input loader ``image_process.py`` ``read_file_directly()`` lines 54-141.

Architecture (as in ``create_inception_model``): two identical streams, one fed the horizontal flow
image ("inputs_x") and one the vertical ("inputs_y"), each ``Input(shape=[28, 28, 3])``. A stream is
two Inception blocks, each of four parallel branches with ``padding='same'`` and ReLU after every
conv: 1x1; 1x1 -> 3x3; 1x1 -> 5x5; MaxPool 3x3 (stride 1) -> 1x1; concatenated and max-pooled 2x2.
Block widths 6 (-> 24 channels, 14x14) and 16 (-> 64 channels, 7x7). The two flattened streams
(2 x 3136) are concatenated -> Dense(1024, ReLU) -> Dense(3, softmax). No BatchNorm, no dropout.
Parameters for 3 classes at 28x28: **6,449,963** (counted layer by layer from the Keras
definition; see tests/test_peers.py and docs/peers.md).

What is ours:

* input conversion: the authors read each flow component as an image with ``cv2.imread`` (3
  channels; a one-component image gives three equal channels) and divide by 255. We give the u
  stream our u map repeated on 3 channels and the v stream our v map repeated, values in [0, 1]
  as they are (our maps are already PNG / 255); strain is not used. Other input sizes are
  area-resampled to 28x28 (the authors ``cv2.resize`` to 28x28 too; their Dense layer fixes it);
* the framework: PyTorch layers with the Keras initialisation (glorot-uniform kernels, zero
  biases) and logits out (the softmax lives in the loss); the flatten order differs from Keras'
  NHWC, a fixed permutation of the Dense weights, immaterial when training from scratch.

The authors' recipe (``dual_inception.py``): ``Adam(lr=0.0001, beta_1=0.9, beta_2=0.999,
epsilon=1e-08)`` (line 180), categorical cross-entropy (line 183), ``batch_size=3, epochs=40,
shuffle=True`` (line 219); ``class_weight='auto'`` is a no-op in Keras 2.x (only a dict is
applied). No augmentation. NB their protocol differs from plain LOSO: the training set holds only the
OTHER two databases, the test subject's own database (minus the test subject) is a validation set,
and the checkpoint with the best validation loss is restored before testing (``image_process.py``
lines 36-51, ``dual_inception.py`` lines 210-227).
Selection is by a validation set, never by the test subject; we do not reproduce it (our runs
are scored at the last epoch on all other subjects), see docs/peers.md.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from am3f.data.dataset import CHANNELS

from .common import PeerConfigMixin, keras_init_, resize_to


@dataclass(frozen=True)
class DualInceptionConfig(PeerConfigMixin):
    arch: str = "dualinception"
    n_classes: int = 3
    widths: tuple[int, ...] = (6, 16)  # branch width of each Inception block
    hidden: int = 1024  # the Dense layer after the concatenated streams
    input_size: int = 28  # the authors' image side (their Dense layer fixes it)
    in_channels: int = 3  # the authors' Input(shape=[28, 28, 3]); one flow component repeated
    keras_init: bool = True


class InceptionBlock(nn.Module):
    """Four 'same'-padded branches, ReLU after every conv, concatenated (output before the 2x2 pool,
    so it can be a Grad-CAM target)."""

    def __init__(self, c_in: int, width: int):
        super().__init__()
        self.b1 = nn.Conv2d(c_in, width, 1)
        self.b2_reduce, self.b2 = nn.Conv2d(c_in, width, 1), nn.Conv2d(width, width, 3, padding=1)
        self.b3_reduce, self.b3 = nn.Conv2d(c_in, width, 1), nn.Conv2d(width, width, 5, padding=2)
        self.b4 = nn.Conv2d(c_in, width, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y1 = F.relu(self.b1(x))
        y2 = F.relu(self.b2(F.relu(self.b2_reduce(x))))
        y3 = F.relu(self.b3(F.relu(self.b3_reduce(x))))
        y4 = F.relu(self.b4(F.max_pool2d(x, 3, stride=1, padding=1)))
        return torch.cat([y1, y2, y3, y4], dim=1)


class InceptionStream(nn.Module):
    def __init__(self, c_in: int, widths: tuple[int, ...]):
        super().__init__()
        chans = [c_in] + [4 * w for w in widths[:-1]]
        self.blocks = nn.ModuleList(InceptionBlock(c, w) for c, w in zip(chans, widths))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for block in self.blocks:
            x = F.max_pool2d(block(x), 2)
        return x.flatten(1)


class DualInception(nn.Module):
    def __init__(self, cfg: DualInceptionConfig = DualInceptionConfig(), image_size: int = 28):
        super().__init__()
        self.cfg = cfg
        self.streams = nn.ModuleDict({f: InceptionStream(cfg.in_channels, cfg.widths) for f in ("u", "v")})
        side = cfg.input_size // 2 ** len(cfg.widths)
        self.fc = nn.Linear(2 * 4 * cfg.widths[-1] * side * side, cfg.hidden)
        self.out = nn.Linear(cfg.hidden, cfg.n_classes)
        if cfg.keras_init:
            keras_init_(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = resize_to(x, self.cfg.input_size)
        reps = self.cfg.in_channels
        feats = [self.streams[f](x[:, CHANNELS.index(f):CHANNELS.index(f) + 1].expand(-1, reps, -1, -1))
                 for f in ("u", "v")]
        return self.out(F.relu(self.fc(torch.cat(feats, dim=1))))

    def cam_target_layers(self) -> list[nn.Module]:
        """The last Inception block of each stream (u, v)."""
        return [self.streams[f].blocks[-1] for f in ("u", "v")]
