"""Shared fixtures: the licence-restricted real data (skipped when absent) and tiny fake datasets."""

from __future__ import annotations

import csv
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from am3f.protocol.engine import FoldRunner

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


class EpochRunner(FoldRunner):
    """Deterministic toy fold runner with per-epoch scores; the last epoch is the 'fixed schedule' output."""

    def __init__(self, n_epochs: int = 4):
        self.n_epochs = n_epochs

    def run_fold(self, train, test, *, seed, fold):
        from am3f.protocol.run_folder import FoldOutput

        rng = np.random.default_rng([seed, fold])
        epochs = rng.dirichlet(np.ones(3), size=(self.n_epochs, len(test)))
        return FoldOutput(scores=epochs[-1], epoch_scores=epochs)


@pytest.fixture
def two_dataset_root(tmp_path: Path) -> Path:
    """Fake composite set with two source datasets (casme2: 3 subjects, smic: 2 subjects)."""
    root = tmp_path / "data"
    write_fake_composite(root, {"sub01": [0, 1, 2, 0], "sub02": [0, 0, 1, 2], "sub03": [2, 1, 0, 0]}, seed=1)
    extra = tmp_path / "extra"
    write_fake_composite(extra, {"s01": [0, 1, 2], "s02": [1, 0, 2]}, seed=2, dataset="smic")
    lines = (extra / "combined_3_class2_for_optical_flow.csv").read_text().splitlines()[1:]
    with open(root / "combined_3_class2_for_optical_flow.csv", "a") as fh:
        fh.write("\n".join(lines) + "\n")
    for p in (extra / "flows").iterdir():
        p.rename(root / "flows" / p.name)
    return root


@pytest.fixture
def run_dir(two_dataset_root: Path, tmp_path: Path) -> Path:
    """A finished two-seed toy LOSO run with per-epoch scores."""
    from am3f.data.dataset import load_flow_dataset
    from am3f.protocol.engine import QUIET, run_loso

    data = load_flow_dataset(two_dataset_root)
    return run_loso(data, EpochRunner(), tmp_path / "run", seeds=[0, 1], config={"model": "toy", "variant": "full"},
                    execution=QUIET)
