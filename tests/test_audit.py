"""Protocol audit on a toy run with per-epoch scores."""

import numpy as np
import pytest

from am3f.protocol.metrics import megc_scores
from am3f.protocol.run_folder import load_epoch_scores, load_run
from am3f.results import audit


def test_best_epoch_picks_the_most_accurate_epoch_per_fold(run_dir):
    picked = audit.best_epoch_predictions(run_dir)
    assert (picked.picked_epoch >= 0).all() and len(picked) == len(load_run(run_dir).predictions)
    for (seed, fold), g in picked.groupby(["seed", "fold"]):
        acc = (g.label == g.pred).mean()
        scores, ids = load_epoch_scores(run_dir)[(seed, fold)]
        labels = g.set_index("sample_id").loc[ids, "label"].to_numpy()
        assert acc == pytest.approx(max((scores[e].argmax(1) == labels).mean() for e in range(len(scores))))


def test_protocol_audit_rows_match_independent_scores(run_dir):
    table = audit.protocol_audit(run_dir)
    assert table["Protocol"].iloc[0].startswith("Fixed schedule")
    by = {p: (float(u), float(d)) for p, u, d in zip(table["Protocol"], table["UF1"], table["Δ UF1"])}
    preds = load_run(run_dir).predictions
    honest = [megc_scores(g.label, g.pred)["uf1"] for _, g in preds.groupby("seed")]
    assert by[table["Protocol"].iloc[0]][0] == pytest.approx(np.mean(honest), abs=5e-5)
    best_seed = next(p for p in by if p.startswith("Best single seed"))
    assert by[best_seed][0] == pytest.approx(max(honest), abs=5e-5) and by[best_seed][1] >= 0
    picked = audit.best_epoch_predictions(run_dir)
    oracle = [megc_scores(g.label, g.pred)["uf1"] for _, g in picked.groupby("seed")]
    row = next(p for p in by if p.startswith("Best test epoch per subject") and "seed" not in p)
    assert by[row][0] == pytest.approx(np.mean(oracle), abs=5e-5)
    assert by[row][1] == pytest.approx(np.mean(oracle) - np.mean(honest), abs=1e-4)


def test_epoch_curve_last_epoch_is_the_reported_score(run_dir):
    curve = audit.epoch_curve(run_dir)
    assert set(curve.columns) >= {"seed", "epoch", "uf1", "uar"} and curve.epoch.max() == 4
    preds = load_run(run_dir).predictions
    for seed, g in preds.groupby("seed"):
        last = curve[(curve.seed == seed) & (curve.epoch == 4)]["uf1"].item()
        assert last == pytest.approx(megc_scores(g.label, g.pred)["uf1"])
