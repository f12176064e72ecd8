"""Grad-CAM per branch on our models and the CAM-mass measure against known motion."""

import numpy as np
import pytest
import torch

from am3f import gradcam
from am3f.data import load_flow_dataset
from am3f.synth import true_motion_mask
from am3f.zoo import build_model


class TinyTwoBranch(torch.nn.Module):
    """A stand-in with the cam_target_layers() contract of our models."""

    def __init__(self):
        super().__init__()
        self.a = torch.nn.Conv2d(1, 4, 3, padding=1)
        self.b = torch.nn.Conv2d(1, 4, 3, padding=1)
        self.fc = torch.nn.Linear(8, 3)

    def forward(self, x):
        fa = torch.relu(self.a(x[:, :1])).mean((2, 3))
        fb = torch.relu(self.b(x[:, 1:2])).mean((2, 3))
        return self.fc(torch.cat([fa, fb], 1))

    def cam_target_layers(self):
        return [self.a, self.b]


def test_gradcam_maps_shapes_and_mass():
    torch.manual_seed(0)
    model = TinyTwoBranch()
    x = np.random.default_rng(0).random((5, 3, 12, 12), dtype=np.float32)
    maps = gradcam.all_branch_maps(model, x, target_classes=1)
    assert set(maps) == {"stream1", "stream2"} and maps["stream1"].shape == (5, 12, 12)
    assert np.nanmax(maps["stream1"]) <= 1.0 + 1e-6
    per_class = gradcam.per_class_maps(model, x)
    assert per_class["stream2"].shape == (5, 3, 12, 12)
    mask = np.zeros((12, 12), bool)
    mask[:6] = True
    cam = np.zeros((12, 12))
    cam[:6] = 1.0
    assert gradcam.cam_mass_in_mask(cam, mask) == 1.0
    assert gradcam.cam_mass_in_mask(np.ones((12, 12)), mask) == pytest.approx(0.5)


def test_gradcam_on_am3f_branches_and_true_motion_mask(tmp_path, fake_composite):

    torch.manual_seed(0)
    model = build_model("full")
    data = load_flow_dataset(fake_composite)
    assert gradcam.branch_names(model) == ["u", "v", "strain"]
    maps = gradcam.all_branch_maps(model, data.x[:2])
    assert set(maps) == {"u", "v", "strain"} and maps["v"].shape == (2, 28, 28)
    table, probs = gradcam.describe_branches(model, data.x[:1])
    assert list(table["branch"]) == ["u", "v", "strain"] and probs.shape == (1, 3)
    assert table["MOFRW flow weight"].sum() == pytest.approx(3.0, abs=1e-4)  # weights average 1
    models = {s: model for s in data.subject_ids}
    avg = gradcam.heldout_class_averaged_maps(models, data, max_per_class=2)
    assert avg["u"].shape == (3, 28, 28) and np.isfinite(avg["u"]).all()
    # ground truth: a moving blob in the top-left of a 40x40 frame, face box = whole frame
    yy, xx = np.mgrid[:40, :40]
    blob = 2.0 * np.exp(-((xx - 10) ** 2 + (yy - 10) ** 2) / 20.0)
    (tmp_path / "gt").mkdir()
    np.savez(tmp_path / "gt" / "s.npz", u=blob + 0.1, v=np.zeros_like(blob) + 0.1, box=np.array([0, 0, 40, 40]))
    mask = true_motion_mask(tmp_path, "s", size=20)
    assert mask.shape == (20, 20) and mask[5, 5] and not mask[15, 15]
