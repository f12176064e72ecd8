"""Progress a person can follow: a bar on a terminal, timed lines elsewhere (a log file, a notebook, a
cluster job), per epoch from the training loop, off with --quiet."""

from __future__ import annotations

import time

from am3f.app.cli import main
from am3f.data.dataset import load_flow_dataset
from am3f.protocol.engine import Execution, run_loso
from am3f.protocol.fold_runner import TrainRunner
from am3f.training.recipe import resolve_variant
from am3f.utils import progress


def test_off_a_terminal_progress_prints_timed_lines_with_eta(monkeypatch, capsys):
    from am3f.utils import ProgressLines

    monkeypatch.delenv("AM3F_PROGRESS", raising=False)
    assert isinstance(progress(total=4), ProgressLines)  # pytest's captured streams are no terminal
    bar = ProgressLines(total=4, desc="work", unit="item", every_s=0.2)  # as progress() makes it, 30 s -> 0.2 s
    bar.update(1)  # the first advance is news: one line at once
    bar.set_postfix_str("item 2 of 4")
    time.sleep(0.5)  # nothing advances: a line still comes after every_s (a long epoch, a slow candidate)
    bar.update(1)
    bar.close()
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("work: 1/4 item; elapsed 0:00, ETA")
    assert any("(item 2 of 4)" in line for line in lines[1:-1])
    assert lines[-1].startswith("work: 2/4 item (item 2 of 4)")


def _tiny_runner():
    model_cfg, train_cfg = resolve_variant("u", epochs=2, fold_group=1)
    return TrainRunner(model_cfg, train_cfg, record_epochs=False)


def test_loso_in_a_log_file_shows_epoch_lines(fake_composite, tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("AM3F_PROGRESS", raising=False)
    data = load_flow_dataset(fake_composite)
    run_loso(data, _tiny_runner(), tmp_path / "run", folds=[0])
    out = capsys.readouterr().out
    assert "LOSO: 1/2 epoch (seed 0, group 1/1 of 1 fold(s): epoch 1/2); elapsed" in out


def test_worker_processes_report_their_epochs(fake_composite, tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("AM3F_PROGRESS", raising=False)
    data = load_flow_dataset(fake_composite)
    # 3 groups of one fold on 2 workers
    run_loso(data, _tiny_runner(), tmp_path / "run", execution=Execution(workers=2))
    out = capsys.readouterr().out
    assert "epoch 1/2)" in out  # an epoch inside a worker, not only finished groups
    assert "6/6 epoch" in out and "3 of 3 group(s)" in out


def test_quiet_turns_progress_off(tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("AM3F_PROGRESS", raising=False)
    argv = ["loso", "--variant", "u", "--epochs", "1", "--folds", "0", "--fold-group", "1", "--workers", "1",
            "--device", "cpu", "--out", str(tmp_path / "run")]
    assert main(argv + ["--quiet"]) == 0
    assert "LOSO:" not in capsys.readouterr().out
    assert main(argv[:-1] + [str(tmp_path / "again")]) == 0
    assert "LOSO: 1/1 epoch" in capsys.readouterr().out
