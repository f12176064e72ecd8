"""RCN, the recurrent convolutional network of Xia, Peng, Khor, Feng & Zhao, "Revealing the invisible
with model and data shrinking for composite-database micro-expression recognition", IEEE TIP 29,
2020 (arXiv 2006.09674) -- its base variant, re-implemented in PyTorch.

Source: the authors' PyTorch code, github.com/xiazhaoqiang/ParameterFreeRCNs-MicroExpressionRec
(commit 0c516cb): ``RCNs.py`` classes ``RecConv`` and ``RecNet`` (the base RCN; the parameter-free
modules RCN-A/S/W/P/C/F are in ``MeNets.py``), trained by ``ModelTrain_Final.py``.

Architecture (``RecNet(num_input=3, featuremaps=F, num_classes=3, num_layers=1)``):

* conv1: Conv 5x5 (no padding) -> BatchNorm -> ReLU -> MaxPool 2x2 -> Dropout(0.5);
* ``num_layers`` recurrent convolutional layers (``RecConv``): y = ffconv(x) (1x1 conv -> BN ->
  ReLU), then twice y = rrconv(x + y) with ONE shared 3x3 conv -> BN -> ReLU (the recurrence, two
  unrolled steps, BatchNorm statistics updated at each step), then MaxPool 2x2 -> Dropout(0.5);
* AdaptiveAvgPool to 5x5 -> flatten -> Linear(25 F, 3).
* initialisation as in the code: Kaiming-normal (fan_out) convs, BN weight 1 / bias 0,
  Linear N(0, 0.01) with zero bias.

Configuration: F = 32 feature maps, one recurrent layer, 5x5 pooling -- the README's published
command (``--featuremap 32 --poolsize 5``; ``RecNet`` hard-codes the 5x5 pooling).
Parameters: **15,331**, equal to the authors' ``RecNet(3, 32, 3, 1)`` counted by running their
code (and to their ``RCN_A`` with the same settings, whose attention unit is parameter-free). The
count does not depend on the input size (adaptive pooling).

What is ours: the input conversion is the identity. The authors read a 3-channel flow PNG with PIL
(``Datasets.py``: ``Image.open(...).convert('RGB')``) and ``transforms.ToTensor()`` (values / 255,
R, G, B order) -- exactly our (u, v, strain) in [0, 1] when the PNG is the composite set's
(R = u, G = v, B = strain). Their preprocessed flow folders (``data/MEGC2019/v_<version>``) are not
public, so the resolution they fed is not known from the code; the paper argues for LOW input
resolution, and we feed our 28x28 as it is (any size >= 14 works: 28 -> conv 24 -> pool 12 ->
RCL 6 -> adaptive 5x5).

The authors' recipe (``ModelTrain_Final.py`` + the README command): ``optim.SGD(lr, momentum=0.9)``
(no Nesterov, no weight decay; line 174), ``nn.CrossEntropyLoss()`` (line 177), lr 0.0005, 20 epochs,
batch 64, shuffled (line 158; README command ``--epochs 20 --learningrate 0.0005 --batchsize 64``; the script's
defaults are 100 epochs, lr 0.0005, batch 64). A ``StepLR(10, 0.5)`` is created in ``train_model`` (line 32)
but ``scheduler.step()`` is never called, so the rate is constant. No augmentation
(``transforms.ToTensor()`` only). The model after the last epoch is tested (no selection).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from .common import PeerConfigMixin


@dataclass(frozen=True)
class RCNConfig(PeerConfigMixin):
    arch: str = "rcn"
    n_classes: int = 3
    featuremaps: int = 32
    num_layers: int = 1  # recurrent convolutional layers
    pool_size: int = 5  # adaptive average pooling before the classifier
    dropout: float = 0.5  # nn.Dropout() in the authors' code


class RecurrentConv(nn.Module):
    """One recurrent convolutional layer: a 1x1 feed-forward conv, then two recurrent steps through
    ONE shared 3x3 conv, then 2x2 max pooling and dropout."""

    def __init__(self, planes: int, dropout: float):
        super().__init__()
        self.ffconv = nn.Sequential(nn.Conv2d(planes, planes, 1), nn.BatchNorm2d(planes), nn.ReLU())
        self.rrconv = nn.Sequential(nn.Conv2d(planes, planes, 3, padding=1), nn.BatchNorm2d(planes), nn.ReLU())
        self.downsample = nn.Sequential(nn.MaxPool2d(2, 2), nn.Dropout(dropout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.ffconv(x)
        y = self.rrconv(x + y)
        y = self.rrconv(x + y)
        return self.downsample(y)


class RCN(nn.Module):
    def __init__(self, cfg: RCNConfig = RCNConfig(), image_size: int = 28):
        super().__init__()
        self.cfg = cfg
        f = cfg.featuremaps
        self.conv1 = nn.Sequential(nn.Conv2d(3, f, 5), nn.BatchNorm2d(f), nn.ReLU(), nn.MaxPool2d(2, 2),
                                   nn.Dropout(cfg.dropout))
        self.rcls = nn.Sequential(*[RecurrentConv(f, cfg.dropout) for _ in range(cfg.num_layers)])
        self.avgpool = nn.AdaptiveAvgPool2d(cfg.pool_size)
        self.classifier = nn.Linear(cfg.pool_size * cfg.pool_size * f, cfg.n_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, 0.0, 0.01)
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.rcls(self.conv1(x))  # (u, v, strain) in [0, 1] = the authors' ToTensor() RGB
        return self.classifier(torch.flatten(self.avgpool(x), 1))

    def cam_target_layers(self) -> list[nn.Module]:
        """The last recurrent convolutional layer (RCN has a single stream)."""
        return [self.rcls[-1]]
