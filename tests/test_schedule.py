"""The warm-up cap: a short recipe leaves its warm-up and decays; declared schedules are unchanged."""

from __future__ import annotations

import pytest

from am3f.training.optim import Schedule
from am3f.training.recipe import DEFAULT_TRAIN, TrainConfig, resolve_variant


@pytest.mark.parametrize("epochs", [1, 2, 3, 5, 10])
def test_short_runs_leave_warm_up_and_decay(epochs):
    steps = 7
    _, cfg = resolve_variant("full", epochs=epochs)
    assert cfg.warmup_epochs == pytest.approx(0.15 * epochs)  # recorded as trained: config.json says it
    schedule = Schedule(cfg, steps)
    lrs = [schedule(s) for s in range(steps * epochs)]
    peak = max(lrs)
    assert peak == pytest.approx(DEFAULT_TRAIN.lr)
    assert lrs.index(peak) <= max(0, int(0.15 * epochs * steps))  # the peak within the first 15 % of the run
    if steps * epochs > 1:
        assert lrs[-1] < 0.5 * peak  # and the cosine decay reached


@pytest.mark.parametrize("epochs", [20, 40, 60, 800])
@pytest.mark.parametrize("variant", ["full", "ststnet", "ststnet-authors", "rcn"])
def test_declared_schedules_are_unchanged(epochs, variant):
    """20 epochs and more: the recipe is the variant's own, warm-up included (every committed result)."""
    from am3f.models.registry import get_variant

    _, cfg = resolve_variant(variant, epochs=epochs)
    assert cfg.warmup_epochs == TrainConfig(**{**DEFAULT_TRAIN.__dict__, **get_variant(variant)[1]}).warmup_epochs


def test_a_recipe_read_back_keeps_its_recorded_warm_up():
    """A run made before the cap resumes with the warm-up its config.json records (its folds stay comparable)."""
    old = TrainConfig(epochs=1, warmup_epochs=3.0)
    assert TrainConfig.from_dict(old.to_dict()).warmup_epochs == 3.0
