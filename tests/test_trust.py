"""A result never outlives its inputs, and a user's mistake is one line (issue 29, items 2-6).

Runs and tunings are refused when resumed or reused with other data, model code, seeds or halves;
recipes.json files are checked against the data; non-finite models and damaged run folders are named,
never scored; hostile command lines give one line and exit 2, never a traceback."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from am3f.app.cli import build_parser, main
from am3f.errors import AM3FError
from am3f.protocol import launch as runs
from am3f.protocol.engine import QUIET, run_loso
from am3f.protocol.tuning import halves, read_recipes, tune

from conftest import EpochRunner, write_fake_composite

LOSO = ["loso", "--epochs", "1", "--workers", "1", "--device", "cpu"]
NAN_MODEL = '''
from pathlib import Path

import torch
from torch import nn


def nan_logits(num_classes=3):
    class NaNNet(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(3 * 28 * 28, num_classes)

        def forward(self, x):
            return self.fc(x.flatten(1)) * float("nan")
    return NaNNet()


def large(num_classes=3):
    """20 million parameters; leaves a mark when it is built for real (not on the meta device)."""
    model = nn.Sequential(nn.Flatten(), nn.Linear(3 * 28 * 28, 8500), nn.Linear(8500, num_classes))
    if next(model.parameters()).device.type != "meta":
        (Path(__file__).parent / "built-for-real").touch()
    return model
'''


def small_set():
    """10 subjects of the embedded synthetic set (5 per half)."""
    from am3f.app.notebook import synthetic_data

    data = synthetic_data()
    return data.subset(np.isin(data.subjects, data.subject_ids[:10]))


def relabelled(data):
    labels = data.labels.copy()
    labels[0] = (labels[0] + 1) % 3
    return replace(data, labels=labels)


def one_line_error(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "error:" in err[0], err
    return err[0]


# ----------------------------------------------------------------------------- 2. identity of runs and tunings
def test_a_run_folder_refuses_data_with_other_labels(tmp_path):
    data = small_set()
    out = run_loso(data, EpochRunner(), tmp_path / "run", folds=[0], execution=QUIET)
    with pytest.raises(AM3FError, match="made on other data"):
        run_loso(relabelled(data), EpochRunner(), out, folds=[1], execution=QUIET)
    assert len(list((out / "folds").glob("*.json"))) == 1  # nothing of the new labels was mixed in
    run_loso(data, EpochRunner(), out, folds=[1], execution=QUIET)  # the same data resumes


def test_ensure_run_never_shows_a_run_made_on_other_data(tmp_path):
    data = small_set()
    made = run_loso(data, EpochRunner(), tmp_path / "toy", folds=[0], config={"model": "toy"}, execution=QUIET)
    assert runs.ensure_run(data, made, model="ststnet", show_progress=False) == made  # as it is: other config
    with pytest.raises(AM3FError, match="made on other data"):
        runs.ensure_run(relabelled(data), made, model="ststnet", show_progress=False)


@pytest.fixture
def package(tmp_path, monkeypatch):
    """An importable package `trustmodels` (module form, no version)."""
    pkg = tmp_path / "site" / "trustmodels"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "tiny.py").write_text("from torch import nn\n\n\ndef build(num_classes=3):\n"
                                 "    return nn.Sequential(nn.Flatten(), nn.Linear(3 * 28 * 28, num_classes))\n")
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    return pkg


def test_a_module_form_model_records_its_code_and_does_not_resume_with_other_code(package, tmp_path, capsys):
    out = tmp_path / "run"
    assert main([*LOSO, "--model", "trustmodels.tiny:build", "--folds", "0", "--out", str(out)]) == 0
    source = json.loads((out / "config.json").read_text())["model_config"]["source"]
    assert source["version"] is None and len(source["sha256"]) == 64
    capsys.readouterr()
    (package / "helpers.py").write_text("SCALE = 2\n")  # a sibling the factory could use: the code changed
    assert main([*LOSO, "--model", "trustmodels.tiny:build", "--folds", "1", "--out", str(out)]) == 2
    assert "other model code" in one_line_error(capsys)
    assert len(list((out / "folds").glob("*.json"))) == 1


@pytest.mark.slow
def test_a_tuning_folder_refuses_other_model_seeds_labels_or_subjects(tmp_path):
    data = small_set()
    out = tmp_path / "tune"
    first = tune(data, "ststnet", out, grid={"epochs": [1]}, seeds=[0], execution=QUIET)
    from am3f.data.dataset import data_fingerprint

    assert first["data_fingerprint"] == data_fingerprint(data)
    cases = {
        "model": lambda: tune(data, "rcn", out, grid={"epochs": [1]}, seeds=[0], execution=QUIET),
        "seeds": lambda: tune(data, "ststnet", out, grid={"epochs": [1]}, seeds=[0, 1], execution=QUIET),
        "data": lambda: tune(relabelled(data), "ststnet", out, grid={"epochs": [1]}, seeds=[0], execution=QUIET),
        "subjects in its half": lambda: tune(data.subset(data.subjects != data.subject_ids[0]), "ststnet", out,
                                             grid={"epochs": [1]}, seeds=[0], execution=QUIET),
    }
    for needle, call in cases.items():
        with pytest.raises(AM3FError, match=f"other .*{needle}"):
            call()
    before = (out / "recipes.json").read_bytes()
    assert tune(data, "ststnet", out, grid={"epochs": [1]}, seeds=[0], execution=QUIET) == first  # resumes
    assert (out / "recipes.json").read_bytes() == before


@pytest.mark.slow
def test_a_tuning_of_a_users_model_is_used_only_with_the_code_it_tuned(tmp_path):
    data = small_set()
    model = tmp_path / "mine.py"
    model.write_text("from torch import nn\n\n\ndef build(num_classes=3):\n"
                     "    return nn.Sequential(nn.Flatten(), nn.Linear(3 * 28 * 28, num_classes))\n")
    ref = f"{model}:build"
    tuned = tune(data, ref, tmp_path / "tune", grid={"epochs": [1]}, seeds=[0], execution=QUIET)
    assert len(tuned["model_code_sha256"]) == 64
    recipes = tmp_path / "tune" / "recipes.json"
    runs.run_config(data, model=ref, recipe=recipes)
    model.write_text(model.read_text() + "# edited\n")
    with pytest.raises(AM3FError, match="tuned with other code"):
        runs.run_config(data, model=ref, recipe=recipes)


def test_ensure_tuned_refuses_a_tuning_made_with_other_seeds(tmp_path):
    from am3f.protocol.tuning import ensure_tuned

    data = small_set()
    recipes = {"model": "ststnet", "variant": "ststnet", "grid": {"epochs": [1]}, "seeds": [0],
               "halves": {h: {"subjects": s, "chosen": {"epochs": 1}, "candidates": []}
                          for h, s in halves(data).items()}}
    (tmp_path / "ststnet").mkdir()
    (tmp_path / "ststnet" / "recipes.json").write_text(json.dumps(recipes))
    assert ensure_tuned(data, "ststnet", tmp_path, seeds=[0]) == tmp_path / "ststnet" / "recipes.json"
    with pytest.raises(AM3FError, match="other seeds"):
        ensure_tuned(data, "ststnet", tmp_path, seeds=[0, 1])


def test_dev_cv_scores_only_the_seeds_asked(tmp_path):
    from am3f.protocol.development import dev_cv
    from am3f.training.recipe import resolve_variant

    data = small_set()
    model_cfg, train_cfg = resolve_variant("ststnet", epochs=1, batch_size=16, warmup_epochs=0.0)
    cv = dict(subjects=halves(data)["A"], out=str(tmp_path / "cv"))
    both = dev_cv(data, model_cfg, train_cfg, seeds=(0, 1), **cv)
    one = dev_cv(data, model_cfg, train_cfg, seeds=(1,), **cv)  # the folder also holds seed 0
    assert set(one["per_seed"]) == {1} and set(one["predictions"]["seed"]) == {1}
    assert one["uf1"] == pytest.approx(both["per_seed"][1]["uf1"])


def test_the_ensemble_refuses_a_member_run_made_with_another_tuning(tmp_path):
    from am3f.results.ensemble import build_ensemble

    data = small_set()
    tuned_on = {h: {"subjects": s} for h, s in halves(data).items()}
    member_runs, tune_dirs = {}, {}
    for arch in ("a", "b"):
        tune_dirs[arch] = tmp_path / f"tune-{arch}"
        tune_dirs[arch].mkdir()
        (tune_dirs[arch] / "recipes.json").write_text(f'{{"model": "{arch}"}}')
        config = {"model": arch, "tuned_recipe": {"sha256": "0" * 64, "tuned_on": tuned_on}}  # another tuning's
        member_runs[arch] = run_loso(data, EpochRunner(), tmp_path / arch, config=config, execution=QUIET)
    with pytest.raises(AM3FError, match="another tuning"):
        build_ensemble(data, member_runs, tune_dirs, tmp_path / "ensemble")


# ----------------------------------------------------------------------------- 3. recipe files checked
def good_recipes(data) -> dict:
    return {"model": "ststnet", "variant": "ststnet", "grid": {"epochs": [1, 2]}, "seeds": [0],
            "halves": {h: {"subjects": s, "chosen": {"epochs": 1}, "candidates": []} for h, s in halves(data).items()}}


def test_hand_edited_or_foreign_recipe_files_are_refused_in_one_line(tmp_path, capsys):
    from am3f.data.dataset import data_fingerprint

    data = small_set()
    good = good_recipes(data)
    a, b = good["halves"]["A"]["subjects"], good["halves"]["B"]["subjects"]
    bad = {
        "not this data's half A": {"A": b, "B": a},  # swapped: a test subject in the half it trains with
        "half A has no subjects": {"A": [], "B": a + b},
        "in both halves": {"A": a + b[:1], "B": b},
    }
    path = tmp_path / "recipes.json"
    for needle, split in bad.items():
        path.write_text(json.dumps({**good, "halves": {h: {**good["halves"][h], "subjects": s}
                                                       for h, s in split.items()}}))
        with pytest.raises(AM3FError, match=needle):
            runs.run_config(data, model="ststnet", recipe=path)
    path.write_text(json.dumps({**good, "halves": {**good["halves"], "B": {**good["halves"]["B"],
                                                                           "chosen": {"epochz": 2}}}}))
    with pytest.raises(AM3FError, match="unknown or untunable recipe field.* epochz"):
        runs.run_config(data, model="ststnet", recipe=path)
    path.write_text(json.dumps({**good, "data_fingerprint": data_fingerprint(relabelled(data))}))
    with pytest.raises(AM3FError, match="tuned on other data"):
        runs.run_config(data, model="ststnet", recipe=path)
    path.write_text(json.dumps({**good, "data_fingerprint": data_fingerprint(data)}))
    runs.run_config(data, model="ststnet", recipe=path)
    assert "warning" not in capsys.readouterr().err
    path.write_text(json.dumps(good))  # made before fingerprints were recorded: used, with a warning
    runs.run_config(data, model="ststnet", recipe=path)
    warning = capsys.readouterr().err.strip().splitlines()
    assert len(warning) == 1 and warning[0].startswith("warning: --recipe records no data fingerprint")
    from pathlib import Path

    committed = sorted(Path(__file__).resolve().parents[1].glob("figures/tuning/*/recipes.json"))
    assert len(committed) >= 6 and all(read_recipes(p)["halves"]["A"]["subjects"] for p in committed)  # still read


def test_a_hand_edited_recipe_on_the_command_line_is_one_line_and_exit_2(tmp_path, monkeypatch, capsys):
    from am3f.data import dataset as data_module

    data = small_set()
    monkeypatch.setattr(data_module, "load_dataset", lambda root=None: data)
    recipes = good_recipes(data)
    recipes["halves"]["A"]["chosen"] = {"no_such_field": 1}
    path = tmp_path / "recipes.json"
    path.write_text(json.dumps(recipes))
    assert main([*LOSO, "--model", "ststnet", "--recipe", str(path), "--out", str(tmp_path / "run")]) == 2
    assert "no_such_field" in one_line_error(capsys)



# ----------------------------------------------------------------------------- 4. non-finite is an error
def test_a_model_with_nan_logits_stops_in_one_line_naming_model_fold_seed_and_epoch(tmp_path, capsys):
    (tmp_path / "nan.py").write_text(NAN_MODEL)
    out = tmp_path / "run"
    assert main([*LOSO, "--model", f"{tmp_path / 'nan.py'}:nan_logits", "--folds", "0-1", "--seeds", "3",
                 "--out", str(out)]) == 2
    line = one_line_error(capsys)
    assert "non-finite" in line and "nan.py:nan_logits" in line and "synth01" in line
    assert "seed 3" in line and "epoch 1" in line
    assert not list((out / "folds").glob("*.json"))
    assert main(["tune", "--model", f"{tmp_path / 'nan.py'}:nan_logits", "--grid", "epochs=1", "--workers", "1",
                 "--out", str(tmp_path / "tune")]) == 2  # never scored, never chosen
    assert "non-finite training loss" in one_line_error(capsys)


def test_non_finite_class_scores_are_never_written_nor_scored(tmp_path, capsys):
    class NaNRunner(EpochRunner):
        def run_fold(self, train, test, *, seed, fold):
            out = super().run_fold(train, test, seed=seed, fold=fold)
            out.scores[0, 0] = np.nan
            return out

    data = small_set()
    with pytest.raises(AM3FError, match=r"non-finite class scores .*fold 0 \(synth01\), seed 0"):
        run_loso(data, NaNRunner(), tmp_path / "nan", folds=[0], config={"model": "toy"}, execution=QUIET)
    # a run folder written before this check, with an empty score: `score` and `compare` refuse it
    run = run_loso(data, EpochRunner(), tmp_path / "run", folds=[0, 1], execution=QUIET)
    csv = run / "folds" / "s0_f001.csv"
    frame = pd.read_csv(csv)
    frame.loc[2, "score_negative"] = np.nan
    csv.write_text(frame.to_csv(index=False))
    assert main(["score", str(run)]) == 2
    assert "s0_f001.csv has empty or non-finite class scores" in one_line_error(capsys)
    assert main(["compare", str(run), str(run)]) == 2
    assert "non-finite" in one_line_error(capsys)


# ----------------------------------------------------------------------------- 5. damaged run folders
@pytest.mark.parametrize("damage,needle", [
    ("cut", "s0_f001.csv has 4 row(s), its fold tested"),
    ("cut mid-line", "s0_f001.csv has"),
    ("deleted", "folds/s0_f001.csv is missing"),
    ("corrupt json", "folds/s0_f001.json is damaged"),
    ("garbage csv", "folds/s0_f001.csv is damaged"),
])
def test_a_damaged_fold_is_named_not_scored(tmp_path, capsys, damage, needle):
    run = run_loso(small_set(), EpochRunner(), tmp_path / "run", folds=[0, 1, 2], execution=QUIET)
    csv, meta = run / "folds" / "s0_f001.csv", run / "folds" / "s0_f001.json"
    text = csv.read_text()
    if damage == "cut":
        csv.write_text("\n".join(text.splitlines()[:5]) + "\n")
    elif damage == "cut mid-line":
        csv.write_text(text[:len(text) // 2])
    elif damage == "deleted":
        csv.unlink()
    elif damage == "corrupt json":
        meta.write_text(meta.read_text()[:20])
    else:
        csv.write_bytes(b"\x00\xff\xfe garbage \x00")
    assert main(["score", str(run)]) == 2
    line = one_line_error(capsys)
    assert needle in line and "delete folds/s0_f001.*" in line


# ----------------------------------------------------------------------------- 6. one line, never a traceback
def test_an_out_that_is_a_file_or_under_one_or_unwritable_is_one_line(tmp_path, capsys):
    a_file = tmp_path / "a-file"
    a_file.write_text("")
    for out, needle in ((a_file, "a file is in the way"), (a_file / "run", "is a file, not a folder"),
                        ("/proc/am3f-cannot-write-here", "cannot create it")):
        assert main([*LOSO, "--model", "ststnet", "--folds", "0", "--out", str(out)]) == 2
        assert needle in one_line_error(capsys)
        assert main(["tune", "--model", "ststnet", "--grid", "epochs=1", "--out", str(out)]) == 2
        assert needle in one_line_error(capsys)


def test_tune_on_two_subjects_is_one_line(tmp_path, monkeypatch, capsys):
    from am3f.data import dataset as data_module

    data = small_set()
    monkeypatch.setattr(data_module, "load_dataset",
                        lambda root=None: data.subset(np.isin(data.subjects, data.subject_ids[:2])))
    assert main(["tune", "--model", "ststnet", "--grid", "epochs=1", "--workers", "1",
                 "--out", str(tmp_path / "t")]) == 2
    assert "half A of this data has 1 subject(s)" in one_line_error(capsys)


def test_a_duplicated_csv_row_is_a_named_difference_in_data_verify(tmp_path, capsys):
    from am3f.data.manifest import build_manifest

    root = write_fake_composite(tmp_path / "d", {"s1": [0, 1, 2], "s2": [2, 1, 0]})
    manifest = tmp_path / "m.csv"
    build_manifest(root).to_csv(manifest, index=False)
    labels = root / "combined_3_class2_for_optical_flow.csv"
    lines = labels.read_text().splitlines()
    labels.write_text("\n".join(lines + [lines[2]]) + "\n")
    assert main(["data", "verify", str(root), "--manifest", str(manifest)]) == 1
    out = capsys.readouterr().out
    assert "5 of 6 samples identical" in out and "s1_EP01_1: duplicated (the labels CSV names it 2 times" in out


def test_a_model_too_large_is_refused_before_it_is_built(tmp_path, monkeypatch, capsys):
    from am3f import utils
    from am3f.protocol import memory

    (tmp_path / "big.py").write_text(NAN_MODEL)
    for module in (utils, memory):
        monkeypatch.setattr(module, "available_bytes", lambda device="cpu": 256 * 1024 ** 2)
    assert main([*LOSO, "--model", f"{tmp_path / 'big.py'}:large", "--out", str(tmp_path / "run")]) == 2
    n_params = 3 * 28 * 28 * 8500 + 8500 + 8500 * 3 + 3
    assert f"{n_params:,} parameters need about" in one_line_error(capsys)
    assert not (tmp_path / "built-for-real").exists()  # counted on the meta device, never allocated


def test_a_repeated_grid_option_is_kept_and_a_repeated_key_refused(tmp_path, capsys):
    args = build_parser().parse_args(["tune", "--grid", "lr=1e-2", "--grid", "epochs=1", "--out", "x"])
    assert args.grid == ["lr=1e-2", "epochs=1"]  # not only the last --grid
    assert main(["tune", "--grid", "lr=1e-2,1e-3", "--grid", "lr=1e-4", "--out", str(tmp_path / "t")]) == 2
    assert "--grid lr is given twice" in one_line_error(capsys)


def test_a_grid_above_64_candidates_needs_max_candidates(tmp_path, capsys):
    from am3f.protocol.tuning import parse_grid

    huge = ["lr=" + ",".join(f"{i}e-4" for i in range(1, 51)), "epochs=" + ",".join(map(str, range(1, 51))),
            "tau=" + ",".join(str(t / 10) for t in range(50)), "ema=0,0.5,0.9,0.99,0.999,0.9999,0.5,0.6,0.7,0.8"]
    assert main(["tune", "--model", "ststnet", "--grid", *huge, "--out", str(tmp_path / "t")]) == 2
    assert "1,250,000 candidates" in one_line_error(capsys) and not (tmp_path / "t").exists()
    small = ["lr=1e-2,1e-3", "epochs=" + ",".join(map(str, range(1, 41)))]  # 80
    with pytest.raises(AM3FError, match="--max-candidates 80"):
        parse_grid(small)
    assert len(parse_grid(small, max_candidates=80)["epochs"]) == 40
