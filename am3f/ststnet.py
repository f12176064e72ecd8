"""STSTNet (Liong et al., 2019), the peer whose per-subject weights are published.

Three shallow streams over the whole flow image (3, 5 and 8 channels), each
conv -> ReLU -> BatchNorm -> MaxPool(3, stride 3, pad 1) -> dropout; concatenated, AvgPool(2), fc.
The published models take the PNG as ``cv2.imread`` returns it: BGR = (strain, v, u), raw 0..255.
Our models all take (u, v, strain) in [0, 1], so :class:`STSTNet` converts internally and the
same datasets, LOSO engine and Grad-CAM code serve both.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
from torch import nn

from .data import FlowDataset
from .errors import DataError
from .rundir import FoldOutput


class STSTNet(nn.Module):
    def __init__(self, in_channels: int = 3, n_classes: int = 3, dropout: float = 0.5, image_size: int = 28):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, 3, kernel_size=3, padding=2)
        self.conv2 = nn.Conv2d(in_channels, 5, kernel_size=3, padding=2)
        self.conv3 = nn.Conv2d(in_channels, 8, kernel_size=3, padding=2)
        self.relu = nn.ReLU()
        self.bn1, self.bn2, self.bn3 = nn.BatchNorm2d(3), nn.BatchNorm2d(5), nn.BatchNorm2d(8)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=3, padding=1)
        self.avgpool = nn.AvgPool2d(kernel_size=2, stride=2)
        self.dropout = nn.Dropout(dropout)
        side = ((image_size + 2 * 2 - 2) + 2 - 3) // 3 + 1  # conv (pad 2) then maxpool
        self.fc = nn.Linear(16 * (side // 2) ** 2, n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # (u, v, strain) in [0, 1]  ->  the BGR 0..255 image the published weights expect
        x = torch.round(x.flip(1) * 255.0)
        streams = []
        for conv, bn in ((self.conv1, self.bn1), (self.conv2, self.bn2), (self.conv3, self.bn3)):
            streams.append(self.dropout(self.maxpool(bn(self.relu(conv(x))))))
        x = self.avgpool(torch.cat(streams, dim=1))
        return self.fc(torch.flatten(x, 1))


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


class PublishedWeightsRunner:
    """LOSO fold runner that trains nothing: fold k's published model predicts subject k."""

    def __init__(self, weights_dir: str | os.PathLike, device: torch.device | str = "cpu"):
        self.weights_dir = Path(weights_dir)
        self.device = torch.device(device)

    def __call__(self, train: FlowDataset, test: FlowDataset, *, seed: int, fold: int) -> FoldOutput:
        subject = str(test.subjects[0])
        model = load_published(weights_path(self.weights_dir, subject), test.image_size[0]).to(self.device)
        with torch.no_grad():
            logits = model(torch.from_numpy(test.x).to(self.device))
        probs = torch.softmax(logits.double(), dim=1).cpu().numpy()
        return FoldOutput(scores=np.asarray(probs), info={"weights": weights_path(self.weights_dir, subject).name})


def evaluate_published_weights(weights_dir: str | os.PathLike, data: FlowDataset, out: str | os.PathLike, *,
                               device: torch.device | str = "cpu", folds: list[int] | None = None,
                               show_progress: bool = True) -> Path:
    """Each subject's published model predicts that subject's samples; the result is an ordinary
    run directory ``out`` (what ``am3f evaluate-weights`` writes). Returns ``out``."""
    from .loso import run_loso

    weights = check_weights_dir(weights_dir, data.subject_ids)
    config = {"kind": "evaluate-weights", "model": "ststnet", "weights": str(Path(weights).resolve())}
    return run_loso(data, PublishedWeightsRunner(weights, device), out, seeds=[0], config=config,
                    device=str(device), folds=folds, show_progress=show_progress)
