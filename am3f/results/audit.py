"""Protocol audit: what the shortcuts seen in the literature would add to *our own* numbers,
computed from the same saved runs (per-epoch test scores are recorded for this only; nothing in
the honest protocol ever selects by them)."""

from __future__ import annotations

import os

import numpy as np
import pandas as pd

from am3f.errors import AM3FError
from am3f.protocol.metrics import megc_scores, score_table
from am3f.protocol.run_folder import RunResult, as_runs, load_epoch_scores


def best_epoch_predictions(run: RunResult | str | os.PathLike, criterion: str = "accuracy") -> pd.DataFrame:
    """The predictions a 'best test epoch per subject' protocol would report (a leak, for the audit only).

    For every (seed, fold) the epoch whose predictions on the held-out subject score best
    (``accuracy``: most correct; ties -> earliest epoch) replaces the fixed-schedule prediction.
    """
    run = as_runs(run)[0]
    epochs = load_epoch_scores(run.path)
    if not epochs:
        raise AM3FError(f"{run.path}: no per-epoch test scores (folds/*.npz) were recorded in this run")
    preds = run.predictions.copy()
    preds["picked_epoch"] = -1
    for (seed, fold), (scores, ids) in epochs.items():
        mask = (preds.seed == seed) & (preds.fold == fold)
        part = preds[mask].set_index("sample_id").loc[ids]
        labels = part["label"].to_numpy()
        per_epoch = scores.argmax(axis=2)  # (n_epochs, n_test)
        if criterion == "accuracy":
            quality = (per_epoch == labels[None, :]).mean(axis=1)
        elif criterion == "uf1":
            quality = np.array([megc_scores(labels, p)["uf1"] for p in per_epoch])
        else:
            raise AM3FError(f"unknown criterion {criterion!r} (accuracy or uf1)")
        best = int(np.argmax(quality))
        order = {sid: i for i, sid in enumerate(ids)}
        rows = preds.index[mask]
        preds.loc[rows, "pred"] = [int(per_epoch[best, order[s]]) for s in preds.loc[rows, "sample_id"]]
        preds.loc[rows, "picked_epoch"] = best
    return preds


def protocol_audit(run: RunResult | str | os.PathLike, digits: int = 4) -> pd.DataFrame:
    """Composite UF1 / UAR of one run under the honest protocol and under each peer shortcut.

    Rows: fixed schedule, mean over seeds (honest) | best single seed | macro precision reported as
    'UAR' | best test epoch per subject (when per-epoch scores were recorded). Δ columns are against
    the honest row.
    """
    run = as_runs(run)[0]
    table = score_table(run.predictions)
    comp = table[table.subset == "composite"]
    n_seeds = len(comp)
    honest_uf1, honest_uar = comp["uf1"].mean(), comp["uar"].mean()
    from am3f.results.tables import is_ours

    ours = "ours" if is_ours(run) else "honest"  # a peer or a user's model is not ours
    rows = [(f"Fixed schedule, mean over seeds ({ours})", honest_uf1, honest_uar, "UAR = macro recall")]
    best = comp.sort_values("uf1", ascending=False).iloc[0]
    rows.append((f"Best single seed of {n_seeds} (seed {int(best['seed'])})", best["uf1"], best["uar"],
                 "report the luckiest seed"))
    rows.append(("Macro precision reported as 'UAR'", honest_uf1, comp["macro_precision"].mean(),
                 "the STSTNet paper's 'UAR'"))
    if load_epoch_scores(run.path):
        picked = score_table(best_epoch_predictions(run))
        pc = picked[picked.subset == "composite"]
        rows.append(("Best test epoch per subject", pc["uf1"].mean(), pc["uar"].mean(),
                     "HTNet-style: epoch chosen on the test subject"))
        rows.append(("Best test epoch per subject + best seed", pc["uf1"].max(),
                     pc.sort_values("uf1", ascending=False)["uar"].iloc[0], "both shortcuts"))
    out = pd.DataFrame(rows, columns=["Protocol", "UF1", "UAR", "What it does"])
    out["Δ UF1"] = out["UF1"] - honest_uf1
    out["Δ UAR"] = out["UAR"] - honest_uar
    for c in ("UF1", "UAR"):
        out[c] = out[c].map(lambda v: f"{v:.{digits}f}")
    for c in ("Δ UF1", "Δ UAR"):
        out[c] = out[c].map(lambda v: f"{v:+.{digits}f}")
    return out[["Protocol", "UF1", "UAR", "Δ UF1", "Δ UAR", "What it does"]]


def epoch_curve(run: RunResult | str | os.PathLike) -> pd.DataFrame:
    """Composite UF1 / UAR of every epoch's test predictions (pooled over folds), per seed.

    Shows how much the test score moves with the epoch, i.e. how much room epoch-picking has.
    Only folds that recorded per-epoch scores take part.
    """
    run = as_runs(run)[0]
    epochs = load_epoch_scores(run.path)
    if not epochs:
        raise AM3FError(f"{run.path}: no per-epoch test scores (folds/*.npz) were recorded in this run")
    labels = dict(zip(zip(run.predictions.seed, run.predictions.sample_id), run.predictions.label))
    n_epochs = min(s.shape[0] for s, _ in epochs.values())
    rows = []
    for seed in sorted({s for s, _ in epochs}):
        folds = [(sc, ids) for (s, _), (sc, ids) in epochs.items() if s == seed]
        y = np.concatenate([[labels[(seed, i)] for i in ids] for _, ids in folds])
        for e in range(n_epochs):
            p = np.concatenate([sc[e].argmax(axis=1) for sc, _ in folds])
            r = megc_scores(y, p)
            rows.append({"seed": seed, "epoch": e + 1, "uf1": r["uf1"], "uar": r["uar"]})
    return pd.DataFrame(rows)
