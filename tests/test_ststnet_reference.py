"""End-to-end check of the whole spine on a published peer: loader, LOSO engine, metrics, CLI."""

import json
import re
import subprocess
import sys

import pandas as pd
import pytest


def parse_python_log(path):
    text = path.read_text()
    blocks = re.findall(r"Subject: (\S+)\s*\nPredicted\s*: \[([^\]]*)\]\s*\nGround Truth: \[([^\]]*)\]", text)
    return {sub: ([int(v) for v in pred.split(",")], [int(v) for v in gt.split(",")]) for sub, pred, gt in blocks}


@pytest.fixture(scope="module")
def reference_run(shared_data, tmp_path_factory):
    out = tmp_path_factory.mktemp("ststnet") / "run"
    cmd = [sys.executable, "-m", "am3f.app.cli", "evaluate-weights", "--model", "ststnet",
           "--weights", str(shared_data / "ststnet-reference" / "weights"),
           "--data", str(shared_data / "megc2019-composite"), "--out", str(out), "--device", "cpu"]
    subprocess.run(cmd, check=True, capture_output=True)
    score = subprocess.run([sys.executable, "-m", "am3f.app.cli", "score", str(out)], check=True,
                           capture_output=True, text=True)
    return out, score.stdout


def test_published_weights_give_the_known_composite_scores(reference_run):
    out, stdout = reference_run
    metrics = json.loads((out / "metrics.json").read_text())
    composite = metrics["subsets"]["composite"]
    assert round(composite["uf1"]["mean"], 4) == 0.7209
    assert round(composite["uar"]["mean"], 4) == 0.7250
    assert "0.7209" in stdout and "0.7250" in stdout
    assert set(metrics["subsets"]) == {"composite", "casme2", "samm", "smic", "hold-out"}
    assert metrics["subsets"]["hold-out"]["n_subjects"] == 34  # the subjects outside the development half


def test_predictions_file_is_complete(reference_run, shared_data):
    out, _ = reference_run
    preds = pd.read_csv(out / "predictions.csv", dtype={"subject": str})
    labels = pd.read_csv(shared_data / "megc2019-composite" / "combined_3_class2_for_optical_flow.csv",
                         dtype={"sub": str})
    assert len(preds) == 442 and preds.sample_id.is_unique and preds.fold.nunique() == 68
    truth = dict(zip(labels["sub"] + "_" + labels["filename_o"], labels["label"]))
    assert all(truth[s] == y for s, y in zip(preds.sample_id, preds.label))


def test_every_subject_matches_the_published_log(reference_run, shared_data):
    out, _ = reference_run
    preds = pd.read_csv(out / "predictions.csv", dtype={"subject": str})
    log = parse_python_log(shared_data / "ststnet-reference" / "STSTNet_python_logfile.txt")
    assert len(log) == 68
    for subject, (log_pred, log_gt) in log.items():
        # the log lists each subject's samples class by class, file names in sorted order
        ours = preds[preds.subject == subject].sort_values(["label", "sample_id"])
        assert ours.label.tolist() == log_gt, subject
        assert ours.pred.tolist() == log_pred, subject
