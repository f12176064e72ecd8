"""The synthetic set: composite layout, deterministic, labelled synthetic, cached atomically."""

from __future__ import annotations

import csv

import numpy as np
import pytest

import am3f.flow.synth as synth
from am3f.data.dataset import load_flow_dataset
from am3f.errors import AM3FError
from am3f.flow.optical_flow import compute_flow, endpoint_error


@pytest.fixture(scope="module")
def small_set(tmp_path_factory):
    out = tmp_path_factory.mktemp("syn") / "s"
    synth.generate_synthetic(out, n_subjects=3, seed=5, samples_per_subject=(4, 5), frame_size=96,
                             progress_bar=False)
    return out


def test_loads_as_a_synthetic_composite_dataset(small_set):
    data = load_flow_dataset(small_set)
    assert data.synthetic and set(data.datasets) == {"synthetic"}
    assert data.x.shape[1:] == (3, 28, 28) and len(data.subject_ids) == 3
    assert 12 <= len(data) <= 15
    assert "SYNTHETIC" in (small_set / "README.txt").read_text()
    with open(small_set / "labels.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert {r["dataset"] for r in rows} == {"synthetic"}
    # each channel min-max stretched like the community images
    assert np.allclose(data.x.min(axis=(2, 3)), 0) and np.allclose(data.x.max(axis=(2, 3)), 1)


def test_frames_and_ground_truth_match(small_set):
    rows = list(csv.DictReader(open(small_set / "labels.csv")))
    sid = f"{rows[0]['sub']}_{rows[0]['filename_o']}"
    from am3f.flow.frames import read_frame

    onset = read_frame(small_set / "frames" / f"{sid}_onset.png")
    apex = read_frame(small_set / "frames" / f"{sid}_apex.png")
    gt = np.load(small_set / "gt" / f"{sid}.npz")
    assert gt["u"].shape == onset.shape == apex.shape == (96, 96)
    x, y, w, h = gt["box"]
    flow = compute_flow(onset[y:y + h, x:x + w], apex[y:y + h, x:x + w])
    # frames carry noise and 8-bit quantisation, so a little looser than the clean-pair test
    assert endpoint_error(flow, gt["u"][y:y + h, x:x + w], gt["v"][y:y + h, x:x + w], border=6) <= 0.25


def test_same_seed_same_set(small_set, tmp_path):
    again = synth.generate_synthetic(tmp_path / "again", n_subjects=3, seed=5, samples_per_subject=(4, 5),
                                     frame_size=96, progress_bar=False)
    assert (again / "labels.csv").read_bytes() == (small_set / "labels.csv").read_bytes()
    name = sorted(p.name for p in (again / "flows").iterdir())[0]
    assert (again / "flows" / name).read_bytes() == (small_set / "flows" / name).read_bytes()


def test_class_mix_and_motion_size_follow_the_spec():
    rng = np.random.default_rng(0)
    labels = rng.choice(3, size=4000, p=synth.CLASS_PROBS)
    frac = np.bincount(labels) / len(labels)
    assert frac == pytest.approx([0.57, 0.25, 0.18], abs=0.03)
    ident = synth.make_identity(rng)
    face = synth.render_face(ident)
    peaks = []
    for label in (0, 1, 2) * 4:
        _, _, u, v, aus, a, shown = synth.sample_pair(ident, face, label, rng)
        assert 0.5 <= a <= 2.0 and aus
        peaks.append(np.hypot(u, v).max())
    assert 0.3 < np.median(peaks) < 3.0


def test_refuses_a_non_empty_output(tmp_path):
    (tmp_path / "x").write_text("keep me")
    with pytest.raises(AM3FError, match="not empty"):
        synth.generate_synthetic(tmp_path, n_subjects=2)


def test_default_root_is_generated_once_and_atomically(tmp_path, monkeypatch):
    monkeypatch.setenv("AM3F_CACHE", str(tmp_path / "cache"))
    real = synth.generate_synthetic

    def killed(out, **kw):
        (out / "flows").mkdir(parents=True)
        raise KeyboardInterrupt  # e.g. Ctrl-C half way

    monkeypatch.setattr(synth, "generate_synthetic", killed)
    with pytest.raises(KeyboardInterrupt):
        synth.default_synthetic_root()
    assert not any((tmp_path / "cache").iterdir())  # no half set, no temp dir left behind

    calls = []

    def small(out, **kw):
        calls.append(out)
        return real(out, n_subjects=2, seed=0, samples_per_subject=(2, 2), frame_size=64, progress_bar=False)

    monkeypatch.setattr(synth, "generate_synthetic", small)
    root = synth.default_synthetic_root()
    assert root.name == f"synthetic-v{synth.SYNTH_VERSION}" and (root / "labels.csv").is_file()
    assert synth.default_synthetic_root() == root and len(calls) == 1
    assert load_flow_dataset(root).synthetic


def test_cli_synth(tmp_path, capsys):
    from am3f.app.cli import main

    assert main(["synth", "--out", str(tmp_path / "s"), "--subjects", "2", "--seed", "1", "--frame-size", "80"]) == 0
    assert "SYNTHETIC" in capsys.readouterr().out
    assert load_flow_dataset(tmp_path / "s").synthetic
