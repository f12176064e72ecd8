"""OFF-ApexNet (Gan, Liong, Yau, Huang & Tan, "OFF-ApexNet on micro-expression recognition system",
Signal Processing: Image Communication 74, 2019; arXiv 1805.08699), re-implemented in PyTorch.

Source: we found NO public code by the authors (GitHub index searched for the name; the account
christy1206 with the co-author Liong's STSTNet and Bi-WOOF code has none). The architecture is the
paper's two-stream network as re-implemented by a third party,
github.com/ECNU-Cross-Innovation-Lab/PRICAI2021-Off-TANet ``models/off_apexnet.py`` (its README
lists OFF-ApexNet at 2.66M parameters), whose layer sizes we follow:

* two streams, one over the horizontal flow u and one over the vertical flow v, each a single
  28x28 map: Conv 5x5 (6 filters, 'same') -> MaxPool 2x2 -> Conv 5x5 (16 filters, 'same') ->
  MaxPool 2x2, i.e. 16 x 7 x 7 = 784 features per stream;
* concatenation (1568) -> FC 1024 -> FC 1024 -> 3 classes (softmax in the loss).

Parameters for 3 classes at 28x28: **2,664,475** (counted layer by layer; equals the 2.66M of the
Off-TANet README).

What is ours:

* ReLU after each conv and each hidden FC layer (the paper's LeNet-style design; the third-party
  code leaves the convs linear) and dropout 0.5 after each hidden FC layer (as the third-party
  code). Neither changes the parameter count. PyTorch default initialisation;
* input conversion: u -> stream 1, v -> stream 2, each one channel, values in [0, 1] as they are
  (strain is not used); other input sizes are area-resampled to 28x28.

The "authors' recipe" here is the best public stand-in, NOT the authors' code: Adam, learning rate
1e-4, 3000 epochs, batch 64, plain cross-entropy, no augmentation, as the Off-TANet
re-implementation trains OFF-ApexNet (``train_arg.py``: ``optim.Adam``, ``lr 1e-4``,
``n_epochs = 3000``, ``batch_size = 64``, a StepLR with step 9999 i.e. constant). We could not
read the paper's training section in this work; see docs/peers.md.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from am3f.data.dataset import CHANNELS

from .common import PeerConfigMixin, resize_to


@dataclass(frozen=True)
class OFFApexNetConfig(PeerConfigMixin):
    arch: str = "offapexnet"
    n_classes: int = 3
    widths: tuple[int, ...] = (6, 16)  # filters of the two conv layers of a stream
    kernel: int = 5
    hidden: tuple[int, ...] = (1024, 1024)  # the fully connected layers after the concatenation
    dropout: float = 0.5
    conv_relu: bool = True
    input_size: int = 28


class ApexStream(nn.Module):
    def __init__(self, widths: tuple[int, ...], kernel: int, relu: bool):
        super().__init__()
        chans = (1,) + tuple(widths)
        self.convs = nn.ModuleList(nn.Conv2d(chans[i], chans[i + 1], kernel, padding=kernel // 2)
                                   for i in range(len(widths)))
        self.relu = relu

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for conv in self.convs:
            x = conv(x)
            x = F.max_pool2d(F.relu(x) if self.relu else x, 2)
        return x.flatten(1)


class OFFApexNet(nn.Module):
    def __init__(self, cfg: OFFApexNetConfig = OFFApexNetConfig(), image_size: int = 28):
        super().__init__()
        self.cfg = cfg
        self.streams = nn.ModuleDict({f: ApexStream(cfg.widths, cfg.kernel, cfg.conv_relu) for f in ("u", "v")})
        side = cfg.input_size // 2 ** len(cfg.widths)
        dims = (2 * cfg.widths[-1] * side * side,) + tuple(cfg.hidden)
        self.fcs = nn.ModuleList(nn.Linear(dims[i], dims[i + 1]) for i in range(len(cfg.hidden)))
        self.drop = nn.Dropout(cfg.dropout)
        self.out = nn.Linear(dims[-1], cfg.n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = resize_to(x, self.cfg.input_size)
        h = torch.cat([self.streams[f](x[:, CHANNELS.index(f):CHANNELS.index(f) + 1]) for f in ("u", "v")], dim=1)
        for fc in self.fcs:
            h = self.drop(F.relu(fc(h)))
        return self.out(h)

    def cam_target_layers(self) -> list[nn.Module]:
        """The last conv of each stream (u, v)."""
        return [self.streams[f].convs[-1] for f in ("u", "v")]
