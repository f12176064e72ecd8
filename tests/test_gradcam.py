"""Class activation maps per branch, and how they are measured (known motion, deletion)."""

import numpy as np
import pytest
import torch

from am3f.data.dataset import load_flow_dataset
from am3f.flow.synth import remove_rigid_motion, true_motion_mask
from am3f.models.am3f_flownet import VARIANTS
from am3f.models.registry import build_model
from am3f.results import cam_eval, gradcam


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


class LooksAtRegion(torch.nn.Module):
    """Class 0's score is the u channel's deviation from 0.5 inside ``region`` only: the ideal map of
    its one branch is the region itself."""

    def __init__(self, region: np.ndarray, gain: float = 10.0):
        super().__init__()
        self.feat = torch.nn.Conv2d(1, 1, 1, bias=False)  # identity on (u - 0.5)
        torch.nn.init.ones_(self.feat.weight)
        self.register_buffer("region", torch.as_tensor(region, dtype=torch.float32))
        self.gain = gain

    def forward(self, x):
        f = torch.relu(self.feat(x[:, :1] - 0.5))
        score = self.gain * (f[:, 0] * self.region).sum((1, 2)) / self.region.sum()
        return torch.stack([score, torch.zeros_like(score)], 1)

    def cam_target_layers(self):
        return [self.feat]


def region_and_input(size: int = 12):
    region = np.zeros((size, size), bool)
    region[3:7, 2:size - 2] = True  # left-right symmetric, so the mirrored view agrees
    x = np.full((1, 3, size, size), 0.5, np.float32)
    x[0, 0][region] = 1.0  # u moves inside the region only; v and strain are still
    x[0, 2] = 0.0
    return region, x


def test_gradcam_maps_shapes_and_options():
    torch.manual_seed(0)
    model = TinyTwoBranch()
    x = np.random.default_rng(0).random((5, 3, 12, 12), dtype=np.float32)
    maps = gradcam.all_branch_maps(model, x, target_classes=1)
    assert set(maps) == {"stream1", "stream2"} and maps["stream1"].shape == (5, 12, 12)
    assert np.nanmax(maps["stream1"]) <= 1.0 + 1e-6
    per_class = gradcam.per_class_maps(model, x, method="gradcam", flip=False)
    assert per_class["stream2"].shape == (5, 3, 12, 12)
    with pytest.raises(ValueError, match="unknown CAM method"):
        gradcam.gradcam_maps(model, x, 0, method="nope")
    assert "LayerCAM" in gradcam.method_label()


def test_mass_ratio_uniform_is_chance_and_exact_is_maximal():
    mask = np.zeros((12, 12), bool)
    mask[:3] = True  # a quarter of the image
    assert cam_eval.mass_ratio(np.ones((12, 12)), mask) == pytest.approx(1.0)
    assert cam_eval.mass_ratio(mask.astype(float), mask) == pytest.approx(4.0)  # 1 / area: the best possible
    assert cam_eval.cam_mass_in_mask(mask.astype(float), mask) == 1.0
    assert np.isnan(cam_eval.mass_ratio(np.zeros((12, 12)), mask))  # no map, no ratio (not a zero)
    assert cam_eval.rank_auc(mask.astype(float), mask) == pytest.approx(1.0)
    assert cam_eval.rank_auc(np.ones((12, 12)), mask) == pytest.approx(0.5)  # ties everywhere = chance
    sharp = np.random.default_rng(0).random((12, 12))
    assert cam_eval.rank_auc(sharp ** 3, mask) == pytest.approx(cam_eval.rank_auc(sharp, mask))
    mean, lo, hi, n = cam_eval.mean_interval([1.0, 2.0, 3.0, np.nan])
    assert mean == pytest.approx(2.0) and lo <= mean <= hi and n == 3


def test_a_model_that_looks_at_a_region_scores_the_maximal_ratio():
    region, x = region_and_input()
    model = LooksAtRegion(region)
    for method in ("layercam", "hirescam", "gradcam"):
        cam = gradcam.gradcam_maps(model, x, 0, "stream1", method=method)[0]  # default layers and mirror
        assert cam_eval.mass_ratio(cam, region) == pytest.approx(1 / region.mean(), rel=1e-3), method


def test_deletion_of_a_perfect_attribution_falls_faster_than_random():
    region, x = region_and_input()
    model = LooksAtRegion(region, gain=4.0)
    curves = cam_eval.perturbation_curves(model, x, region[None].astype(float), "u", [0], steps=12, n_random=6)
    auc = {k: float(cam_eval.curve_area(v)[0]) for k, v in curves.items()}
    assert auc["deletion"] < auc["deletion random"] - 0.05
    assert auc["insertion"] > auc["insertion random"] + 0.05
    assert curves["deletion"][0, 0] == pytest.approx(curves["deletion"][0, 0].max())
    # everything deleted = the no-motion image, whatever the order
    assert curves["deletion"][0, -1] == pytest.approx(curves["deletion random"][0, -1], abs=1e-6)
    assert curves["deletion"][0, -1] == pytest.approx(0.5, abs=1e-6)  # no evidence left: 2 classes at 0.5


def test_no_motion_values_are_median_for_flow_and_zero_for_strain():
    x = np.zeros((1, 3, 4, 4), np.float32)
    x[0, 0] = 0.3
    x[0, 0, 0, 0] = 1.0
    x[0, 1] = 0.7
    x[0, 2] = 0.4
    assert cam_eval.no_motion_values(x)[0].tolist() == pytest.approx([0.3, 0.7, 0.0])


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_default_method_on_every_variant(variant):
    torch.manual_seed(0)
    model = build_model(variant)
    x = np.random.default_rng(1).random((2, 3, 28, 28), dtype=np.float32)
    maps = gradcam.all_branch_maps(model, x)
    names = gradcam.branch_names(model)
    assert list(maps) == names and len(names) == len(model.cam_target_layers())
    for m in maps.values():
        assert m.shape == (2, 28, 28) and np.isfinite(m).all() and m.min() >= 0 and m.max() <= 1 + 1e-6
    if variant == "ststnet":  # one block per stream: "first" and "last" are one layer, used once
        assert names == ["stream1", "stream2", "stream3"]
        assert len(gradcam.branch_layers(model, 0, "first")) == 1


def test_measurements_on_am3f(tmp_path, fake_composite):
    torch.manual_seed(0)
    model = build_model("full")
    data = load_flow_dataset(fake_composite)
    assert gradcam.branch_names(model) == ["u", "v", "strain"]
    assert len(gradcam.branch_layers(model, "v", "all")) == 3
    att = gradcam.gradcam_maps(model, data.x[:2], None, "u", method="attention", layers="stage1")
    assert att.shape == (2, 28, 28)
    table, probs = gradcam.describe_branches(model, data.x[:1])
    assert list(table["branch"]) == ["u", "v", "strain"] and probs.shape == (1, 3)
    assert table["MOFRW flow weight"].sum() == pytest.approx(3.0, abs=1e-4)  # weights average 1
    assert cam_eval.branch_weights(model, data.x[:4]).shape == (4, 3)
    models = {s: model for s in data.subject_ids}
    avg = gradcam.heldout_class_averaged_maps(models, data, max_per_class=2)
    assert avg["u"].shape == (3, 28, 28) and np.isfinite(avg["u"]).all()
    rows, curves = cam_eval.faithfulness({data.subject_ids[0]: model}, data, steps=4, n_random=1)
    summary = cam_eval.faithfulness_summary(rows)
    assert list(summary["branch"]) == ["u", "v", "strain"] and curves["u"]["deletion"].shape[1] == 5
    with pytest.raises(ValueError, match="ground truth"):
        cam_eval.cam_mass_report(model, data)


def test_true_motion_mask_removes_head_rotation(tmp_path):
    # ground truth: a moving blob in the top-left of a 40x40 frame, on top of a rigid turn + shift
    yy, xx = np.mgrid[:40, :40].astype(float)
    blob = 2.0 * np.exp(-((xx - 10) ** 2 + (yy - 10) ** 2) / 20.0)
    theta = 0.02  # radians: 0.4 px at the frame's corners, as large as the blob's rim
    u = blob + 0.1 - theta * (yy - 19.5)
    v = 0.3 + theta * (xx - 19.5)
    ru, rv = remove_rigid_motion(u.astype(np.float32), v.astype(np.float32))
    assert np.abs(ru - blob).max() < 0.05 and np.abs(rv).max() < 0.05
    (tmp_path / "gt").mkdir()
    np.savez(tmp_path / "gt" / "s.npz", u=u, v=v, box=np.array([0, 0, 40, 40]))
    mask = true_motion_mask(tmp_path, "s", size=20)
    assert mask.shape == (20, 20) and mask[5, 5] and not mask[15, 15] and not mask[0, 19] and not mask[19, 0]
