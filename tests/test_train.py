"""Training: flow-aware augmentation, determinism, training-fold priors, tiny LOSO runs (API and CLI)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from am3f.app.cli import main
from am3f.data.dataset import FlowDataset
from am3f.protocol.checkpoint import load_checkpoint, train_final
from am3f.protocol.development import dev_subjects, holdout_subjects
from am3f.protocol.engine import QUIET, run_loso
from am3f.protocol.fold_runner import TrainRunner
from am3f.protocol.metrics import summarize
from am3f.training.augment import augment, hflip_flow, shift_images
from am3f.training.fit import fit, predict
from am3f.training.losses import class_priors
from am3f.training.recipe import TrainConfig, resolve_variant

TINY = dict(epochs=2, batch_size=16, warmup_epochs=1)


def make_data(n_subjects=4, per_subject=6, size=28, seed=0) -> FlowDataset:
    """Random flow images with a weak class signal; subjects s0.. in datasets a / b."""
    rng = np.random.default_rng(seed)
    n = n_subjects * per_subject
    labels = np.tile(np.arange(3), n // 3 + 1)[:n]
    rng.shuffle(labels)
    x = rng.random((n, 3, size, size), dtype=np.float32)
    x[:, 0] += 0.2 * (labels[:, None, None] - 1)
    x = np.clip(x, 0, 1).astype(np.float32)
    subjects = np.repeat([f"s{i}" for i in range(n_subjects)], per_subject)
    datasets = np.where(np.arange(n_subjects) % 2 == 0, "a", "b")[np.repeat(np.arange(n_subjects), per_subject)]
    return FlowDataset(x=x, labels=labels.astype(np.int64), subjects=subjects, datasets=datasets,
                       sample_ids=np.array([f"id{i}" for i in range(n)]), name="tiny")


def write_composite(data: FlowDataset, root: Path) -> Path:
    (root / "flows").mkdir(parents=True)
    rows = ["dataset,sub,filename_o,label"]
    for i in range(len(data)):
        img = (data.x[i].transpose(1, 2, 0) * 255).round().astype(np.uint8)
        Image.fromarray(img, "RGB").save(root / "flows" / f"{data.subjects[i]}_clip{i} .png")
        rows.append(f"{data.datasets[i]},{data.subjects[i]},clip{i},{data.labels[i]}")
    (root / "labels.csv").write_text("\n".join(rows) + "\n")
    return root


# ----------------------------------------------------------------------------- augmentation
def test_hflip_negates_u_and_mirrors_every_map():
    x = torch.rand(2, 3, 5, 7)
    y = hflip_flow(x)
    assert torch.allclose(y[:, 0], 1.0 - x[:, 0].flip(-1))  # u mirrored and negated (1 - u in [0,1] units)
    assert torch.allclose(y[:, 1], x[:, 1].flip(-1))  # v mirrored only
    assert torch.allclose(y[:, 2], x[:, 2].flip(-1))  # strain mirrored only
    assert torch.allclose(hflip_flow(y), x)  # an involution


def test_hflip_in_model_units_is_negation():
    """Inside the model u is centred at 0.5, so the flipped u is exactly minus the mirrored u."""
    from am3f.models.am3f_flownet import ModelConfig

    cfg = ModelConfig()
    x = torch.rand(1, 3, 4, 4)
    u = (x[:, 0] - cfg.mean[0]) / cfg.std[0]
    u_flip = (hflip_flow(x)[:, 0] - cfg.mean[0]) / cfg.std[0]
    assert torch.allclose(u_flip, -u.flip(-1), atol=1e-6)


def test_augment_flip_probability_one_and_shift():
    cfg = TrainConfig(hflip=1.0, max_shift=0.0)
    x = torch.rand(3, 3, 28, 28)
    assert torch.allclose(augment(x, cfg, torch.Generator().manual_seed(0)), hflip_flow(x))
    shifted = shift_images(x, torch.tensor([0, 2, 4]), torch.tensor([2, 2, 1]), 2)
    assert shifted.shape == x.shape
    assert torch.equal(shifted[1], x[1])  # offset (2, 2) - 2 = no move
    assert torch.equal(shifted[0, :, 2:, :], x[0, :, :-2, :])  # 2 px down, edge replicated above
    assert torch.equal(shifted[0, :, :2, :], x[0, :, :1, :].expand(-1, 2, -1))


# ----------------------------------------------------------------------------- fitting
def test_same_seed_same_predictions_on_cpu():
    data = make_data()
    mc, tc = resolve_variant("full", **TINY)
    m1, _ = fit(data, mc, tc, seed=3)
    m2, _ = fit(data, mc, tc, seed=3)
    p1, p2 = predict(m1, data.x[:5]), predict(m2, data.x[:5])
    assert np.array_equal(p1, p2)
    assert np.allclose(p1.sum(1), 1.0)


def test_priors_come_from_the_training_fold_only():
    data = make_data(n_subjects=3)
    # make the held-out subject all class 2: the recorded training priors must not see it
    data.labels[data.subjects == "s2"] = 2
    mc, tc = resolve_variant("full", **TINY)
    seen = {}

    class Spy(TrainRunner):
        def run_fold(self, train, test, *, seed, fold):
            seen[fold] = (set(train.subjects.tolist()), set(test.subjects.tolist()))
            return super().run_fold(train, test, seed=seed, fold=fold)

    from am3f.protocol.folds import fold_of, split_fold

    train, test = split_fold(data, fold_of(data, "s2"))
    out = Spy(mc, tc).run_fold(train, test, seed=0, fold=2)
    assert np.allclose(out.info["train_priors"], class_priors(train.labels, 3).numpy(), atol=1e-4)
    assert not np.allclose(out.info["train_priors"], class_priors(data.labels, 3).numpy(), atol=1e-3)
    assert "s2" not in seen[2][0]


def test_tiny_loso_through_run_loso(tmp_path):
    data = make_data()
    mc, tc = resolve_variant("full", **TINY)
    run = run_loso(data, TrainRunner(mc, tc), tmp_path / "run", seeds=[0], folds=[0, 1],
                   config={"model_config": mc.to_dict(), "train_config": tc.to_dict()}, execution=QUIET)
    preds = __import__("pandas").read_csv(run / "predictions.csv")
    assert len(preds) == 12 and set(preds["fold"]) == {0, 1}
    ep = np.load(run / "folds" / "s0_f000.npz")["epoch_scores"]
    assert ep.shape == (2, 6, 3)  # epochs x test samples x classes (audit only)
    assert summarize(preds)["subsets"]["composite"]["n"] == 12


def test_ststnet_trains_from_scratch():
    data = make_data()
    mc, tc = resolve_variant("ststnet", **TINY)
    model, _ = fit(data, mc, tc, seed=0)
    assert predict(model, data.x[:3]).shape == (3, 3)


def test_dev_half_is_every_second_subject_per_dataset():
    data = make_data(n_subjects=8)
    dev, rest = dev_subjects(data), holdout_subjects(data)
    assert set(dev).isdisjoint(rest) and sorted(dev + rest) == data.subject_ids
    for ds in ("a", "b"):
        subs = sorted(set(data.subjects[data.datasets == ds].tolist()))
        assert [s for s in dev if s in subs] == subs[0::2]


def test_checkpoint_round_trip(tmp_path):
    data = make_data()
    mc, tc = resolve_variant("uv", **TINY)
    path = train_final(data, mc, tc, tmp_path / "m.pt", seed=0, variant="uv", show_progress=False)
    model, meta = load_checkpoint(path)
    assert meta["class_names"] == list(data.class_names) and meta["variant"] == "uv"
    assert meta["normalisation"]["mean"] == list(mc.mean)
    assert predict(model, data.x[:2]).shape == (2, 3)


# ----------------------------------------------------------------------------- CLI
def test_cli_loso_train_predict(tmp_path, capsys):
    data = make_data(n_subjects=4, per_subject=3)
    root = write_composite(data, tmp_path / "data")
    run = tmp_path / "run"
    assert main(["loso", "--data", str(root), "--out", str(run), "--folds", "0-1", "--seeds", "0", "1",
                 "--epochs", "2", "--batch-size", "4", "--device", "cpu"]) == 0
    cfg = json.loads((run / "config.json").read_text())
    assert cfg["variant"] == "full" and cfg["train_config"]["epochs"] == 2
    assert cfg["model_config"]["flows"] == ["u", "v", "strain"]
    assert main(["score", str(run)]) == 0
    assert main(["loso", "--model", "ststnet", "--data", str(root), "--out", str(tmp_path / "st"), "--folds", "0",
                 "--epochs", "1", "--batch-size", "4", "--device", "cpu"]) == 0
    assert main(["train", "--data", str(root), "--out", str(tmp_path / "m.pt"), "--epochs", "1",
                 "--batch-size", "4", "--device", "cpu"]) == 0
    capsys.readouterr()
    img = sorted((root / "flows").glob("*.png"))[0]
    assert main(["predict", "--checkpoint", str(tmp_path / "m.pt"), str(img), "--device", "cpu"]) == 0
    out = capsys.readouterr().out
    assert "negative" in out and img.name in out
    assert main(["variants"]) == 0
    assert "no_mofrw" in capsys.readouterr().out


def test_cli_errors_are_one_line(tmp_path, capsys):
    assert main(["predict", "--checkpoint", str(tmp_path / "nope.pt"), "x.png", "--device", "cpu"]) == 2
    assert main(["loso", "--variant", "bogus", "--out", str(tmp_path / "r"), "--data", str(tmp_path)]) == 2


def test_same_class_blend_partners_share_the_label():
    from am3f.training.augment import same_class_partner

    y = torch.tensor([0, 1, 0, 2, 1, 0, 2, 2, 1])
    for seed in range(5):
        partner = same_class_partner(y, torch.Generator().manual_seed(seed))
        assert torch.equal(y[partner], y)
        assert sorted(partner.tolist()) == list(range(len(y)))  # a permutation


# ----------------------------------------------------------------------------- the batched trainer
def test_a_group_trains_each_model_as_it_would_train_alone():
    """fit_group over several training sets = each set trained on its own (float rounding aside)."""
    from am3f.training.fit import fit_group

    data = make_data(n_subjects=4)
    mc, tc = resolve_variant("full", epochs=2, batch_size=8)
    sets = [np.flatnonzero(data.subjects != s) for s in data.subject_ids[:3]]
    evals = [np.flatnonzero(data.subjects == s) for s in data.subject_ids[:3]]
    together, ep_together = fit_group(data, sets, mc, tc, seed=5, eval_sets=evals)
    for m, (train_rows, test_rows) in enumerate(zip(sets, evals)):
        alone, ep_alone = fit_group(data, [train_rows], mc, tc, seed=5, eval_sets=[test_rows])
        np.testing.assert_allclose(predict(together[m], data.x[test_rows]), predict(alone[0], data.x[test_rows]),
                                   atol=2e-4)
        np.testing.assert_allclose(ep_together[m], ep_alone[0], atol=2e-4)


def test_augmentation_stacked_equals_one_batch_at_a_time():
    from am3f.training.augment import apply_augmentation, draw_augmentation

    tc = TrainConfig()
    x = torch.rand(3, 8, 3, 28, 28)
    y = torch.randint(0, 3, (3, 8))
    choices = [draw_augmentation(y[m], tc, torch.Generator().manual_seed(m), 28) for m in range(3)]
    stacked = apply_augmentation(x, {k: torch.stack([c[k] for c in choices]) for k in choices[0]}, tc)
    for m in range(3):
        assert torch.equal(stacked[m], apply_augmentation(x[m], choices[m], tc))
        assert torch.equal(stacked[m], augment(x[m], tc, torch.Generator().manual_seed(m), y[m]))


def test_augmentation_is_blend_then_mirror_then_shift_bit_for_bit():
    """The one-gather implementation gives exactly the numbers of the three steps done one by one."""
    import torch.nn.functional as F

    from am3f.training.augment import apply_augmentation, draw_augmentation

    tc = TrainConfig(max_shift=0.1)  # 3 px at 28
    x, y = torch.rand(2, 16, 3, 28, 28), torch.randint(0, 3, (2, 16))
    for m in range(2):
        c = draw_augmentation(y[m], tc, torch.Generator().manual_seed(m), 28)
        assert c["flip"].any() and not c["flip"].all() and (c["dy"] != 3).any()
        lam = c["lam"][:, None, None, None]
        step = lam * x[m] + (1 - lam) * x[m][c["partner"]]
        step = torch.where(c["flip"][:, None, None, None], hflip_flow(step), step)
        padded = F.pad(step, (3, 3, 3, 3), mode="replicate")
        step = torch.stack([padded[i, :, dy:dy + 28, dx:dx + 28] for i, (dy, dx) in enumerate(zip(c["dy"], c["dx"]))])
        before = x[m].clone()
        assert torch.equal(apply_augmentation(x[m], c, tc), step)
        assert torch.equal(x[m], before)  # the caller's batch is left as it was (the blend and u work in place)
