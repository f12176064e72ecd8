"""Shared fixtures: the licence-restricted real data (skipped when absent) and tiny fake datasets."""

from __future__ import annotations

import csv
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

REPO = Path(__file__).resolve().parents[1]


def shared_data_dir() -> Path:
    """$AM3F_SHARED, else the ../shared/data that sits beside the repository (as in CI)."""
    return Path(os.environ.get("AM3F_SHARED", REPO.parent / "shared" / "data"))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    root = shared_data_dir()
    if not (root / "megc2019-composite").is_dir():
        pytest.skip(f"real data not found at {root} (set AM3F_SHARED)")
    return root


@pytest.fixture(scope="session")
def composite_dir(shared_data: Path) -> Path:
    return shared_data / "megc2019-composite"


def write_fake_composite(root: Path, subjects: dict[str, list[int]], size: int = 28, seed: int = 0,
                         dataset: str = "casme2") -> Path:
    """A composite-layout dataset: labels CSV + random RGB flow PNGs (with the community space)."""
    rng = np.random.default_rng(seed)
    (root / "flows").mkdir(parents=True, exist_ok=True)
    with open(root / "combined_3_class2_for_optical_flow.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["dataset", "sub", "filename_o", "label", "apex", "imagename", "sub_filename"])
        for sub, labels in subjects.items():
            for i, label in enumerate(labels):
                name = f"EP{i:02d}_{label}"
                w.writerow([dataset, sub, name, label, "", f"{sub}_{name}.jpg", ""])
                img = rng.integers(0, 256, size=(size, size, 3), dtype=np.uint8)
                Image.fromarray(img).save(root / "flows" / f"{sub}_{name} .png")
    return root


@pytest.fixture
def fake_composite(tmp_path: Path) -> Path:
    return write_fake_composite(tmp_path / "fake", {"sub01": [0, 1, 2], "sub02": [0, 0, 1], "sub03": [2, 1, 0, 0]})
