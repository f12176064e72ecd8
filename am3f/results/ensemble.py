"""The honest ensemble: the probability average of tuned architectures, its members chosen by the
cross-fitted rule of :mod:`am3f.protocol.tuning`.

For each subject half H, the members are the subset of the tuned architectures whose averaged
inner-CV probabilities (each architecture's chosen candidate on H, ``chosen_cv_predictions.csv``)
give the best UF1 on H (ties: fewer members, then the order given). A held-out subject in the OTHER
half is then predicted by averaging those members' cross-fitted LOSO probabilities for it: its
members, like every recipe of its members, were chosen without it. It answers "what is the best
honest number this harness builds?", and it trains nothing: :class:`EnsembleRunner` is a fold
runner over finished runs, so the ensemble is an ordinary run directory.
"""

from __future__ import annotations

import itertools
import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from am3f.errors import AM3FError
from am3f.protocol.engine import FoldRunner
from am3f.protocol.folds import fold_of
from am3f.protocol.metrics import megc_scores
from am3f.protocol.run_folder import FoldOutput

HALVES = ("A", "B")


def _scores(frame: pd.DataFrame) -> np.ndarray:
    return frame[[c for c in frame if c.startswith("score_")]].to_numpy()


def subset_uf1(cv: Mapping[str, pd.DataFrame], members: Sequence[str]) -> float:
    """Mean over seeds of the UF1 of the members' averaged CV probabilities (rows aligned by sample and seed)."""
    frames = [cv[m].sort_values(["seed", "sample_id"], kind="stable").reset_index(drop=True) for m in members]
    first = frames[0]
    if any(not f[["seed", "sample_id"]].equals(first[["seed", "sample_id"]]) for f in frames[1:]):
        raise AM3FError(f"the inner-CV predictions of {', '.join(members)} are not on the same samples and seeds")
    pred = np.mean([_scores(f) for f in frames], axis=0).argmax(1)
    per_seed = [megc_scores(first["label"][first.seed == s], pred[first.seed == s])["uf1"]
                for s in sorted(first.seed.unique())]
    return float(np.mean(per_seed))


def choose_members(cv: Mapping[str, pd.DataFrame]) -> tuple[list[str], float]:
    """The best subset (members, CV UF1) of ``cv`` (architecture -> its chosen candidate's CV
    predictions on one half): every non-empty subset is tried; ties: fewer members, then order."""
    names = list(cv)
    best, best_uf1 = None, -1.0
    for k in range(1, len(names) + 1):
        for subset in itertools.combinations(names, k):
            uf1 = subset_uf1(cv, subset)
            if uf1 > best_uf1:
                best, best_uf1 = list(subset), uf1
    return best, best_uf1


def members_by_half(tune_dirs: Mapping[str, str | os.PathLike]) -> dict[str, dict]:
    """For each half H: the members chosen on H's inner CV and their CV UF1."""
    cv = {arch: pd.read_csv(Path(d) / "chosen_cv_predictions.csv") for arch, d in tune_dirs.items()}
    for arch, frame in cv.items():
        if not np.isfinite(_scores(frame).astype(float)).all():
            raise AM3FError(f"{tune_dirs[arch]}: chosen_cv_predictions.csv has empty or non-finite class scores")
    out = {}
    for half in HALVES:
        members, uf1 = choose_members({a: f[f.half == half] for a, f in cv.items()})
        out[half] = {"members": members, "cv_uf1": uf1}
    return out


class EnsembleRunner(FoldRunner):
    """Fold runner over finished cross-fitted runs: a fold's scores are the average of the
    probabilities of the members chosen on the half that does not hold its subject."""

    def __init__(self, runs: Mapping[str, pd.DataFrame], chosen: Mapping[str, dict],
                 halves: Mapping[str, Sequence[str]]):
        self.runs = {a: p.set_index(["seed", "sample_id"]).sort_index() for a, p in runs.items()}
        self.chosen = chosen
        self.halves = {h: set(s) for h, s in halves.items()}

    def run_fold(self, train, test, *, seed: int, fold: int) -> FoldOutput:
        subject = str(test.subjects[0])
        chosen_on = next(h for h in HALVES if subject not in self.halves[h])
        members = self.chosen[chosen_on]["members"]
        keys = [(seed, s) for s in test.sample_ids]
        probs = np.mean([_scores(self.runs[m].loc[keys]) for m in members], axis=0)
        return FoldOutput(scores=probs, info={"members": members, "members_chosen_on": chosen_on})


def build_ensemble(data, runs: Mapping[str, str | os.PathLike], tune_dirs: Mapping[str, str | os.PathLike],
                   out: str | os.PathLike) -> Path:
    """The ensemble of the cross-fitted runs ``runs`` (architecture -> run directory) with members
    chosen from ``tune_dirs`` (architecture -> its ``am3f tune`` folder), as a run directory ``out``."""
    from am3f.protocol.engine import QUIET, run_loso
    from am3f.protocol.run_folder import load_run

    loaded = {a: load_run(p) for a, p in runs.items()}
    if any(not r.config.get("tuned_recipe") for r in loaded.values()):
        raise AM3FError("an ensemble of tuned architectures needs their cross-fitted runs (am3f loso --recipe)")
    check_members(data, loaded, tune_dirs)
    seeds = sorted(set.intersection(*(set(r.seeds) for r in loaded.values())))
    chosen = members_by_half(tune_dirs)
    halves = next(iter(loaded.values())).config["tuned_recipe"]["tuned_on"]
    config = {"kind": "ensemble", "model": "ensemble", "variant": "ensemble", "chosen": chosen,
              # the members either half uses (a prediction uses at most those of its half)
              "parameters": sum(int(loaded[a].config.get("parameters") or 0)
                                for a in set(chosen["A"]["members"]) | set(chosen["B"]["members"])),
              "members": {a: {"run": Path(p).name, "core_s_per_seed": r.info.get("core_s_per_seed", {})}
                          for (a, p), r in zip(runs.items(), loaded.values())},
              "rule": "members: the subset of tuned architectures whose averaged inner-CV probabilities give "
                      "the best UF1 on one half; used for the subjects of the other half"}
    runner = EnsembleRunner({a: r.predictions for a, r in loaded.items()}, chosen,
                            {h: t["subjects"] for h, t in halves.items()})
    folds = folds_every_member_finished(data, loaded.values(), seeds)
    run_loso(data, runner, out, seeds=seeds, folds=folds, config=json.loads(json.dumps(config)),
             execution=QUIET)
    return Path(out)


def check_members(data, loaded: Mapping[str, object], tune_dirs: Mapping[str, str | os.PathLike]) -> None:
    """Every member run was made on this data, with the tuning its members are chosen from, on the same
    halves: otherwise the ensemble would mix runs, tunings or data (one line names the member)."""
    import hashlib

    from am3f.data.dataset import data_fingerprint

    fingerprint = data_fingerprint(data)
    halves = None
    for arch, run in loaded.items():
        recorded = run.info.get("data_fingerprint")
        if recorded and recorded != fingerprint:
            raise AM3FError(f"ensemble member {arch}: its run {run.path} was made on other data (labels or images)")
        recipes = Path(tune_dirs[arch]) / "recipes.json"
        if hashlib.sha256(recipes.read_bytes()).hexdigest() != run.config["tuned_recipe"].get("sha256"):
            raise AM3FError(f"ensemble member {arch}: its run {run.path} was trained with another tuning than "
                            f"{recipes}")
        mine = {h: sorted(t["subjects"]) for h, t in run.config["tuned_recipe"]["tuned_on"].items()}
        if halves is not None and mine != halves:
            raise AM3FError(f"ensemble member {arch}: its run was tuned on other subject halves than the others'")
        halves = mine


def folds_every_member_finished(data, members, seeds: Sequence[int]) -> list[int]:
    """The folds for which every member run has predictions for every one of ``seeds`` (a partial
    member run makes a partial ensemble, never one that mixes members per subject)."""
    def finished(run) -> set[tuple[int, str]]:  # (seed, held-out subject) pairs with predictions
        pairs = run.predictions[["seed", "subject"]].drop_duplicates().itertuples(index=False)
        return {(int(seed), str(subject)) for seed, subject in pairs}

    done = set.intersection(*(finished(r) for r in members))
    subjects = {subject for _, subject in done if all((s, subject) in done for s in seeds)}
    return sorted({fold_of(data, subject) for subject in subjects})


def ensure_ensemble(data, runs: Mapping[str, str | os.PathLike], tune_dirs: Mapping[str, str | os.PathLike],
                    runs_dir: str | os.PathLike) -> Path:
    """The ensemble of :func:`build_ensemble` in ``runs_dir/ensemble-<hash of its members' runs, their
    finished folds and their tunings>``, built only when missing (it trains nothing: seconds)."""
    import hashlib

    def done(run) -> dict:  # folds finished per seed: a member run with more seeds makes a new ensemble
        return json.loads((Path(run) / "run.json").read_text()).get("folds_done", {})

    members = {a: [Path(p).name, done(p), (Path(tune_dirs[a]) / "recipes.json").read_text()] for a, p in runs.items()}
    key = hashlib.sha1(json.dumps(members, sort_keys=True).encode()).hexdigest()[:8]
    out = Path(runs_dir) / f"ensemble-{key}"
    if not (out / "predictions.csv").is_file():
        return build_ensemble(data, runs, tune_dirs, out)
    from am3f.data.dataset import data_fingerprint
    from am3f.protocol.run_folder import refuse_other_data

    # the same member folders may have been remade on other data: an ensemble is reused only on its own
    refuse_other_data(out, _fingerprint(out), data_fingerprint(data))
    return out


def _fingerprint(run) -> str | None:
    """The data fingerprint a run recorded (data.json), or None."""
    path = Path(run) / "data.json"
    return json.loads(path.read_text()).get("fingerprint") if path.is_file() else None
