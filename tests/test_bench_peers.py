"""The peer-speed benchmark (benchmarks/bench_peers.py) runs, and the registry declares every fold group.

No timing is asserted here: speed is the benchmark's to print (docs/design-choices.md, "Fold groups
sized by measurement"). These tests check that its modes run on a tiny piece of the synthetic set and
write their figures, and that every variant trains with the fold group its architecture declares."""

from __future__ import annotations

import importlib.util
import json
import re

import pytest
import torch

from am3f.models.registry import ARCHITECTURES, VARIANTS
from am3f.training.recipe import DEFAULT_TRAIN, resolve_variant

from conftest import REPO


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("bench_peers", REPO / "benchmarks" / "bench_peers.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_side_by_side_timing_of_the_plain_loop_and_the_engine(bench, tmp_path):
    out = tmp_path / "peers.json"
    assert bench.main(["--data", "", "--archs", "ststnet", "--recipes", "ours", "authors", "--folds", "0",
                       "--epochs", "1", "--workers", "1", "--out", str(out)]) == 0
    report = json.loads(out.read_text())
    assert report["mode"] == "compare" and report["synthetic"] and report["folds"] == [0]
    assert [r["variant"] for r in report["rows"]] == ["ststnet", "ststnet-authors"]
    for row in report["rows"]:
        assert row["plain_s"][0] > 0 and row["engine_s"][0] > 0 and row["engine_folds"] >= 1
        per_fold_ratio = (row["plain_s"][0] / 1) / (row["engine_s"][0] / row["engine_folds"])
        assert row["ratio"][0] == pytest.approx(per_fold_ratio)


def test_commands_mode_times_a_plain_script_and_am3f_loso_as_whole_programs(bench, tmp_path):
    out = tmp_path / "commands.json"
    assert bench.main(["--commands", "--data", "", "--archs", "ststnet", "--recipes", "authors", "--folds", "0",
                       "--epochs", "1", "--workers", "1", "--out", str(out)]) == 0
    report = json.loads(out.read_text())
    assert report["mode"] == "commands"
    (row,) = report["rows"]
    assert row["variant"] == "ststnet-authors" and row["script_s"][0] > 0 and row["am3f_loso_s"][0] > 0
    assert row["ratio"][0] == pytest.approx(row["script_s"][0] / row["am3f_loso_s"][0])


def test_the_plain_program_refuses_a_failing_command_in_one_line(bench):
    import sys

    from am3f.errors import AM3FError

    with pytest.raises(AM3FError, match="failed"):
        bench.run_timed([sys.executable, "-c", "raise SystemExit('boom')"])


def test_the_plain_loop_learns_the_recipe_it_is_given(bench):
    """The plain loop is a real training loop: after 5 epochs of our recipe its predictions differ from the
    untrained model's, and they are probabilities of the held-out subject's rows."""
    from am3f.data.dataset import load_dataset
    from am3f.protocol.folds import fold_rows

    data = load_dataset(None)
    model_cfg, train_cfg = resolve_variant("ststnet", epochs=1)
    test_rows = fold_rows(data, 0)[1]
    one = bench.plain_fold(data, 0, model_cfg, train_cfg, seed=0, device=torch.device("cpu"))
    five = bench.plain_fold(data, 0, model_cfg, resolve_variant("ststnet", epochs=5)[1], seed=0,
                            device=torch.device("cpu"))
    assert one.shape == five.shape == (len(test_rows), 3)
    assert abs(five.sum(1) - 1).max() < 1e-9 and abs(five - one).max() > 1e-3


def test_group_mode_times_each_size_and_names_the_fastest(bench, tmp_path):
    out = tmp_path / "groups.json"
    assert bench.main(["--data", "", "--archs", "rcn", "--recipes", "ours", "--folds", "0-1", "--epochs", "1",
                       "--groups", "1,2", "--out", str(out)]) == 0
    (row,) = json.loads(out.read_text())["rows"]
    assert set(row["per_fold_s"]) == {"1", "2"} and row["fastest"] in (1, 2)
    assert all(s > 0 for times in row["per_fold_s"].values() for s in times)


def test_a_missing_gpu_is_one_line_and_exit_2(bench, capsys):
    if torch.cuda.is_available():
        pytest.skip("CUDA is present here")
    assert bench.main(["--quick", "--device", "cuda"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("error:") and "CUDA" in err


def test_every_variant_trains_with_the_fold_group_its_architecture_declares():
    for spec in ARCHITECTURES.values():
        if not spec.peer:
            continue
        assert resolve_variant(spec.name)[1].fold_group == spec.fold_group, spec.name
        if f"{spec.name}-authors" in VARIANTS:
            assert resolve_variant(f"{spec.name}-authors")[1].fold_group == spec.authors_fold_group, spec.name
    # AM3F-FlowNet's default recipe, and so its results, are unchanged: batching pays for it
    assert resolve_variant("full")[1].fold_group == DEFAULT_TRAIN.fold_group == 17


def test_the_declared_groups_are_the_measured_ones_in_the_design_notes():
    """docs/design-choices.md's table of measured groups names, per variant, the group the registry declares."""
    text = (REPO / "docs" / "design-choices.md").read_text()
    section = text[text.index("## Fold groups sized by measurement"):]
    table = section[section.index("| variant | declared |"):].split("\n\n")[0]
    declared = {row[0]: int(row[1]) for row in re.findall(r"^\| `([\w-]+)` \| (\d+) \|", table, re.M)}
    expected = {v: resolve_variant(v)[1].fold_group for v in VARIANTS if VARIANTS[v][0].arch != "am3f"}
    expected["full"] = resolve_variant("full")[1].fold_group
    assert declared == expected
