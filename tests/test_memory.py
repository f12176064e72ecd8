"""The memory-safe engine (am3f.protocol.memory): groups capped by a declared budget, workers by the memory here,
and a model that cannot fit refused in one line before anything trains."""

from __future__ import annotations

import pytest

from am3f.app.cli import main
from am3f.errors import AM3FError
from am3f.models.registry import ARCHITECTURES
from am3f.protocol import memory
from am3f.training.recipe import resolve_variant


def test_activations_grow_with_the_batch_and_the_fixed_part_with_the_optimizer():
    m, t = resolve_variant("ststnet")
    small, big = memory.estimate(m, t.__class__(**{**t.__dict__, "batch_size": 16})), memory.estimate(m, t)
    assert big.per_model - small.per_model == big.per_sample * (64 - 16) and big.fixed == small.fixed
    sgd = memory.estimate(m, t.__class__(**{**t.__dict__, "optimizer": "sgd"}))
    assert sgd.fixed < big.fixed  # one momentum buffer instead of Adam's two moments
    assert memory.estimate(m, t, n_train=10).batch_size == 10  # a small training set bounds the batch


@pytest.mark.slow
def test_the_declared_cap_keeps_every_model_but_htnet_at_17_and_the_declared_groups_as_declared():
    for name, spec in ARCHITECTURES.items():
        m, t = resolve_variant(spec.default_variant)
        assert memory.group_size(m, t.__class__(**{**t.__dict__, "fold_group": 17})) == (1 if name == "htnet" else 17)
        assert memory.group_size(m, t) == t.fold_group, name  # the groups sized for speed (am3f.models.registry) fit


def test_the_plan_lowers_workers_to_what_fits_and_refuses_a_model_that_cannot_fit():
    m, t = resolve_variant("full")
    need = memory.plan(m, t, workers=1, available=64 * memory.GIB).per_worker
    assert memory.plan(m, t, workers=4, available=int(2.5 * need)).workers == 2
    assert memory.plan(m, t, workers=4, available=100 * need).workers == 4
    with pytest.raises(AM3FError, match=r"cannot train here: .* GiB .*parameters.*available") as exc:
        memory.plan(m, t, workers=1, available=need // 2)
    assert "\n" not in str(exc.value)


def test_loso_refuses_before_training_in_one_line(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(memory, "available_bytes", lambda device="cpu": 1 * memory.GIB)
    out = tmp_path / "run"
    assert main(["loso", "--model", "dualinception", "--folds", "0", "--epochs", "1", "--workers", "1",
                 "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "dualinception cannot train here" in err and "GiB" in err
    # refused before training: no fold result and no predictions were written
    assert not list(out.glob("folds/*")) and not (out / "predictions.csv").exists()


@pytest.mark.slow
def test_the_full_htnet_trains_one_fold_on_this_machine(composite_dir, tmp_path):
    """Issue 21's check: the full HTNet (139.6 M parameters) was killed at 24 GB in a group of 17."""
    out = tmp_path / "htnet"
    assert main(["loso", "--model", "htnet", "--folds", "0", "--seeds", "0", "--epochs", "1",
                 "--data", str(composite_dir), "--out", str(out)]) == 0
    assert len(list((out / "folds").glob("*.json"))) == 1
