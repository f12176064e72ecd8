import json

import numpy as np
import pandas as pd
import pytest

from am3f.data.dataset import load_flow_dataset
from am3f.errors import AM3FError
from am3f.protocol.engine import QUIET, FoldOutput, FoldRunner, run_loso
from am3f.protocol.folds import fold_of, split_fold
from am3f.protocol.metrics import summarize
from am3f.protocol.run_folder import merge_run


class MeanColourRunner(FoldRunner):
    """A deterministic toy runner: scores from the test images, noise from (seed, fold)."""

    def __init__(self, crash_after: int | None = None):
        self.calls: list[tuple[int, int]] = []
        self.crash_after = crash_after

    def run_fold(self, train, test, *, seed, fold):
        assert not set(test.subjects) & set(train.subjects)
        if self.crash_after is not None and len(self.calls) >= self.crash_after:
            raise KeyboardInterrupt("simulated kill")
        self.calls.append((seed, fold))
        rng = np.random.default_rng([seed, fold])
        scores = test.x.mean(axis=(2, 3)) + rng.normal(0, 0.01, size=(len(test), 3))
        scores = np.exp(scores) / np.exp(scores).sum(axis=1, keepdims=True)
        return FoldOutput(scores=scores, epoch_scores=np.stack([scores, scores]))


def test_split_fold_keeps_subject_out(fake_composite):
    data = load_flow_dataset(fake_composite)
    train, test = split_fold(data, fold_of(data, "sub02"))
    assert set(test.subjects) == {"sub02"} and "sub02" not in set(train.subjects)
    assert len(train) + len(test) == len(data)


def test_run_writes_predictions_and_metadata(fake_composite, tmp_path):
    data = load_flow_dataset(fake_composite)
    out = run_loso(data, MeanColourRunner(), tmp_path / "run", seeds=[0, 1], config={"model": "toy"},
                   execution=QUIET)
    preds = pd.read_csv(out / "predictions.csv")
    assert len(preds) == 2 * len(data)
    for col in ("sample_id", "dataset", "subject", "label", "pred", "fold", "seed",
                "score_negative", "score_positive", "score_surprise"):
        assert col in preds.columns
    assert sorted(preds[preds.seed == 0].sample_id) == sorted(data.sample_ids)
    run = json.loads((out / "run.json").read_text())
    assert run["complete"] and run["config"]["model"] == "toy"
    assert run["am3f_version"] and "core_s_per_seed" in run and len(run["folds"]) == 6
    assert {"seed", "fold", "subject", "wall_s", "device"} <= set(run["folds"][0])
    assert (out / "folds" / "s0_f000.npz").exists()


def test_resume_after_kill_runs_only_missing_folds(fake_composite, tmp_path):
    data = load_flow_dataset(fake_composite)
    reference = run_loso(data, MeanColourRunner(), tmp_path / "ref", seeds=[0], execution=QUIET)
    killed = MeanColourRunner(crash_after=2)
    with pytest.raises(KeyboardInterrupt):
        run_loso(data, killed, tmp_path / "run", seeds=[0], execution=QUIET)
    assert killed.calls == [(0, 0), (0, 1)]
    resumed = MeanColourRunner()
    run_loso(data, resumed, tmp_path / "run", seeds=[0], execution=QUIET)
    assert resumed.calls == [(0, 2)]
    assert (tmp_path / "run" / "predictions.csv").read_text() == (reference / "predictions.csv").read_text()


def test_fold_subsets_from_separate_processes_merge(fake_composite, tmp_path):
    data = load_flow_dataset(fake_composite)
    run_loso(data, MeanColourRunner(), tmp_path / "whole", seeds=[0], execution=QUIET)
    run_loso(data, MeanColourRunner(), tmp_path / "parts", seeds=[0], folds=[0, 2], execution=QUIET)
    assert not json.loads((tmp_path / "parts" / "run.json").read_text())["complete"]
    run_loso(data, MeanColourRunner(), tmp_path / "parts", seeds=[0], folds=[1], execution=QUIET)
    merged = merge_run(tmp_path / "parts")
    assert json.loads((tmp_path / "parts" / "run.json").read_text())["complete"]
    assert (tmp_path / "parts" / "predictions.csv").read_text() == (tmp_path / "whole" / "predictions.csv").read_text()
    assert summarize(merged)["subsets"]["composite"]["n"] == len(data)


def test_rerun_with_other_config_is_refused(fake_composite, tmp_path):
    data = load_flow_dataset(fake_composite)
    run_loso(data, MeanColourRunner(), tmp_path / "run", config={"lr": 1}, execution=QUIET)
    with pytest.raises(AM3FError, match="different configuration.*lr"):
        run_loso(data, MeanColourRunner(), tmp_path / "run", config={"lr": 2}, execution=QUIET)


def test_runner_that_leaks_the_test_subject_is_caught(fake_composite, tmp_path, monkeypatch):
    import am3f.protocol.folds as folds

    data = load_flow_dataset(fake_composite)
    # a split that trains on every row, the held-out subject's included
    leaky = lambda d, k: (np.arange(len(d)), np.flatnonzero(d.subjects == d.subject_ids[k]))
    monkeypatch.setattr(folds, "fold_rows", leaky)
    runner = MeanColourRunner()
    with pytest.raises(AssertionError, match="LOSO violated"):
        run_loso(data, runner, tmp_path / "run", execution=QUIET)
    assert runner.calls == []


def test_rerun_with_tuples_in_config_resumes(fake_composite, tmp_path):
    data = load_flow_dataset(fake_composite)
    run_loso(data, MeanColourRunner(), tmp_path / "run", config={"widths": (8, 16)}, execution=QUIET)
    resumed = MeanColourRunner()
    run_loso(data, resumed, tmp_path / "run", config={"widths": (8, 16)}, execution=QUIET)
    assert resumed.calls == []


def test_run_json_keeps_the_training_commit_when_merged_later(fake_composite, tmp_path, monkeypatch):
    import am3f.protocol.run_folder as rundir

    data = load_flow_dataset(fake_composite)
    monkeypatch.setattr(rundir, "git_commit", lambda: "abc123")
    run_loso(data, MeanColourRunner(), tmp_path / "run", execution=QUIET)
    monkeypatch.setattr(rundir, "git_commit", lambda: "later")
    merge_run(tmp_path / "run")
    run = json.loads((tmp_path / "run" / "run.json").read_text())
    assert run["git_commit"] == "abc123" and run["folds"][0]["git_commit"] == "abc123"


def test_a_plain_function_is_a_fold_runner_and_anything_else_is_refused(fake_composite, tmp_path):
    data = load_flow_dataset(fake_composite)
    by_class = run_loso(data, MeanColourRunner(), tmp_path / "class", seeds=[0], execution=QUIET)
    runner = MeanColourRunner()
    by_function = run_loso(data, runner.run_fold, tmp_path / "function", seeds=[0], execution=QUIET)
    assert merge_run(by_function).equals(merge_run(by_class))
    with pytest.raises(AM3FError, match="a fold runner is a FoldRunner or a function"):
        run_loso(data, "ststnet", tmp_path / "other", execution=QUIET)


def test_the_base_runner_says_what_a_runner_must_provide(fake_composite):
    from am3f.protocol.engine import FoldRunner

    data = load_flow_dataset(fake_composite)
    base = FoldRunner()
    assert base.groups(data) == [[0], [1], [2]] and base.groups(data, [2]) == [[2]]
    assert base.fold_epochs(data, 0) == 1 and base.recipes() == []
    with pytest.raises(NotImplementedError, match="overrides neither run_fold nor run_group"):
        base.run_group(data, [0], seed=0)


def test_execution_settings_never_change_a_fold(fake_composite, tmp_path):
    from am3f.protocol.engine import Execution

    data = load_flow_dataset(fake_composite)
    one = run_loso(data, MeanColourRunner(), tmp_path / "one", seeds=[0], execution=QUIET)
    two = run_loso(data, MeanColourRunner(), tmp_path / "two", seeds=[0],
                   execution=QUIET.but(workers=2, threads=2))
    assert QUIET.but(workers=2) == Execution(workers=2, show_progress=False, say=None) and QUIET.workers == 1
    assert merge_run(one).drop(columns="wall_s", errors="ignore").equals(
        merge_run(two).drop(columns="wall_s", errors="ignore"))
