"""Honest tuning, cross-fitted: every recipe a LOSO fold trains with is chosen without its test subject.

The subjects are split in two halves (:func:`halves`): A = the development half
(:func:`am3f.protocol.development.dev_subjects`), B = the rest. For each half H, every candidate of a declared
grid is scored by subject-grouped 5-fold cross-validation inside H only (:func:`am3f.protocol.development.dev_cv`:
the same engine, workers and Dask cluster as LOSO), and H's choice is the candidate of best mean UF1
over the seeds (ties: the first in grid order). A LOSO fold whose held-out subject is in half A then
trains with the recipe chosen on B, and the reverse (:class:`am3f.protocol.fold_runner.CrossFittedRunner`): no fold's
recipe ever saw its test subject, and every subject is scored.

:func:`default_grid` is the search space every architecture gets, declared before any tuning result was
seen: the same 8 candidates for each (learning rate of our schedule and of its authors' recipe,
epochs 20 and 60, plain and logit-adjusted cross-entropy).

``am3f tune`` writes ``TUNE_DIR/recipes.json`` (the choices and every candidate's scores),
``TUNE_DIR/chosen_cv_predictions.csv`` (each half's chosen candidate's CV predictions, from which
:mod:`am3f.results.ensemble` chooses its members by the same rule), ``TUNE_DIR/timing.json`` (seconds per
candidate) and keeps each candidate's CV runs under ``TUNE_DIR/cv/`` (so a killed tuning resumes
where it stopped).
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import time
from dataclasses import fields, replace
from pathlib import Path

import pandas as pd

from am3f.errors import AM3FError
from am3f.protocol.engine import DEFAULT_EXECUTION, QUIET, Execution
from am3f.training.recipe import DEFAULT_TRAIN, TrainConfig, capped_warmup

HALVES = ("A", "B")
N_SPLITS = 5  # subject-grouped CV folds inside a half
OUR_LR = DEFAULT_TRAIN.lr
OUR_OTHER_LR = 1e-3  # AM3F-FlowNet (and a user's model) has no published recipe: a tenth of ours, declared
MAX_CANDIDATES = 64  # declared: a larger grid runs only when asked for by --max-candidates (each costs 2 CVs)
NOT_TUNABLE = ("fold_group",)  # how folds are grouped: an execution setting, not part of what is learned


# ----------------------------------------------------------------------------- the search space
def authors_lr(arch: str) -> float:
    """The learning rate of the architecture's published recipe (:data:`am3f.models.peers.AUTHORS_RECIPES`);
    for a model without one, :data:`OUR_OTHER_LR`."""
    from am3f.models.peers import AUTHORS_RECIPES

    return float(AUTHORS_RECIPES.get(arch, {}).get("lr", OUR_OTHER_LR))


def default_grid(arch: str) -> dict[str, list]:
    """The declared search space of an architecture: 2 x 2 x 2 = 8 candidates, the same for every
    architecture; the first candidate is our declared schedule (lr 1e-2, 20 epochs, logit-adjusted)."""
    return {"lr": [OUR_LR, authors_lr(arch)], "epochs": [20, 60], "tau": [1.0, 0.0]}


_TYPES = {f.name: type(getattr(DEFAULT_TRAIN, f.name)) for f in fields(TrainConfig)}


def _typed(key: str, text: str):
    kind = _TYPES[key]
    if kind is bool:
        if text.lower() not in ("true", "false", "1", "0"):
            raise AM3FError(f"--grid {key}: expected true or false, got {text!r}")
        return text.lower() in ("true", "1")
    try:
        return kind(float(text)) if kind is int and float(text).is_integer() else kind(text)
    except ValueError:
        raise AM3FError(f"--grid {key}: {text!r} is not a {kind.__name__}") from None


def parse_grid(items: list[str] | None, max_candidates: int = MAX_CANDIDATES) -> dict[str, list] | None:
    """``["lr=1e-2,1e-3", "epochs=20,60"]`` -> ``{"lr": [0.01, 0.001], "epochs": [20, 60]}``, every
    value checked as a recipe value (None: no --grid given); a key given twice, or more than
    ``max_candidates`` candidates, is refused before anything is built."""
    if not items:
        return None
    grid: dict[str, list] = {}
    for item in items:
        key, sep, values = item.partition("=")
        key = key.strip().replace("-", "_")
        if not sep or not values.strip():
            raise AM3FError(f"--grid {item!r}: expected KEY=V1,V2,... (e.g. lr=1e-2,1e-3)")
        if key not in _TYPES or key in NOT_TUNABLE:
            raise AM3FError(f"--grid {key}: not a tunable recipe field (see TrainConfig in am3f/training/recipe.py)")
        if key in grid:
            raise AM3FError(f"--grid {key} is given twice")
        grid[key] = [_typed(key, v.strip()) for v in values.split(",")]
    check_grid_size(grid, max_candidates)
    for overrides in candidates(grid):
        replace(DEFAULT_TRAIN, **overrides)  # an invalid value fails here, in one line
    return grid


def check_grid_size(grid: dict[str, list], max_candidates: int = MAX_CANDIDATES) -> int:
    """The number of candidates of ``grid``; above ``max_candidates`` (default :data:`MAX_CANDIDATES`) refused."""
    import math

    n = math.prod(len(v) for v in grid.values())
    if n > max_candidates:
        raise AM3FError(f"--grid: {n:,} candidates (each scored by CV in both halves), more than {max_candidates}: "
                        f"pass --max-candidates {n} to run them all, or a smaller grid")
    return n


def candidates(grid: dict[str, list]) -> list[dict]:
    """The grid's candidates in grid order (the first key varies slowest)."""
    keys = list(grid)
    return [dict(zip(keys, values)) for values in itertools.product(*(grid[k] for k in keys))]


# ----------------------------------------------------------------------------- the two halves
def halves(data) -> dict[str, list[str]]:
    """{"A": the development half's subjects, "B": the rest}, each sorted."""
    from am3f.protocol.development import dev_subjects, holdout_subjects

    return {"A": sorted(dev_subjects(data)), "B": sorted(holdout_subjects(data))}


def check_halves(data, split: dict[str, list[str]]) -> None:
    """Each half must give subject-grouped CV at least two folds (one subject alone cannot be cross-validated)."""
    from am3f.protocol.development import dev_folds

    for half in HALVES:
        n_folds = len(set(dev_folds(data, N_SPLITS, split[half]).subjects.tolist()))
        if n_folds < 2:
            raise AM3FError(f"half {half} of this data has {len(split[half])} subject(s), which give "
                            f"{n_folds} CV fold(s); subject-grouped CV inside a half needs 2 or more (at least 4 "
                            f"subjects of one source dataset, 2 in each half)")


def _candidate_dir(out: Path, half: str, index: int, overrides: dict) -> Path:
    key = hashlib.sha1(json.dumps(overrides, sort_keys=True).encode()).hexdigest()[:8]
    return out / "cv" / half / f"c{index}-{key}"


# what a cached candidate's score was computed from, and how a difference is named
IDENTITY_WORDS = {"engine": "the engine's numerics (am3f.training.fit.ENGINE_REVISION)",
                  "data": "data (labels or images)",
                  "model": "model or model code", "recipe": "recipe", "seeds": "seeds",
                  "subjects": "subjects in its half"}


def candidate_identity(fingerprint: str, variant: str, model_cfg, train_cfg: TrainConfig, seeds,
                       subjects: list[str]) -> dict:
    """What a candidate's score depends on: the data's fingerprint, the model (its config and, for a
    user's model, its code's SHA-256; not where the file lies), the recipe, the seeds and the half's subjects."""
    model = model_cfg.to_dict()
    if isinstance(model.get("source"), dict):  # a user's model: its code's hash counts, not where it lies
        model["source"] = {k: v for k, v in model["source"].items() if k != "path"}
        model["arch"] = str(model["arch"]).rsplit("/", 1)[-1]
    stable = json.dumps({"model_config": model, "variant": variant.rsplit("/", 1)[-1]}, sort_keys=True, default=str)
    from am3f.training.fit import ENGINE_REVISION

    return {"engine": ENGINE_REVISION, "data": fingerprint, "model": hashlib.sha1(stable.encode()).hexdigest()[:12],
            "recipe": train_cfg.to_dict(), "seeds": sorted(int(x) for x in seeds), "subjects": sorted(subjects)}


def check_cached_candidate(tune_dir: Path, cdir: Path, identity: dict) -> None:
    """A cached candidate of ``tune_dir`` is reused only when it was computed from exactly ``identity``;
    otherwise one line names what differs (a cache without a recorded identity cannot be checked)."""
    from am3f.protocol.run_folder import read_json

    path = cdir / "identity.json"
    where = f"{tune_dir}: cached candidate {cdir.relative_to(tune_dir)}"
    if path.is_file():
        old = read_json(path, "a tuning candidate's identity")
        differ = [IDENTITY_WORDS.get(k, k) for k in IDENTITY_WORDS if old.get(k) != identity[k]]
        if differ:
            raise AM3FError(f"{where} was computed with other {', '.join(differ)}; reusing it would mix two "
                            f"tunings: use a new --out")
    elif (cdir / "score.json").is_file() or (cdir / "run").exists():
        raise AM3FError(f"{where} records no data, model and seeds (made by an older am3f), so it cannot be "
                        f"checked: use a new --out")


def record_candidate(cdir: Path, identity: dict) -> None:
    """Write a candidate's identity before it trains, so that a killed tuning resumes only with the same inputs."""
    from am3f.utils import atomic_write_text

    if not (cdir / "identity.json").is_file():
        atomic_write_text(cdir / "identity.json", json.dumps(identity, indent=2))


def score_candidate(data, half_subjects: list[str], model_cfg, train_cfg: TrainConfig, *, seeds, out: Path,
                    execution: Execution = QUIET) -> dict:
    """Mean UF1 / UAR (over ``seeds``) of subject-grouped CV inside ``half_subjects``, cached in
    ``out/score.json`` with the seconds it took (a finished candidate is never re-trained)."""
    from am3f.protocol.development import dev_cv
    from am3f.protocol.run_folder import read_json
    from am3f.utils import atomic_write_text

    cached = out / "score.json"
    if cached.is_file():
        return read_json(cached, "a tuning candidate's score")
    t0 = time.perf_counter()
    r = dev_cv(data, model_cfg, train_cfg, seeds=tuple(seeds), n_splits=N_SPLITS, subjects=half_subjects,
               out=str(out / "run"), execution=execution)
    score = {"uf1": r["uf1"], "uar": r["uar"], "wall_s": round(time.perf_counter() - t0, 1),
             "workers": execution.workers}
    atomic_write_text(cached, json.dumps(score, indent=2))
    return score


def _cv_predictions(candidate_dir: Path, half: str, seeds) -> pd.DataFrame:
    """A candidate's CV predictions (its subjects' real ids, one row per sample and seed of ``seeds``) for ``half``."""
    preds = pd.read_csv(candidate_dir / "run" / "predictions.csv", dtype={"subject": str})
    preds = preds[preds["seed"].isin([int(x) for x in seeds])]
    keep = ["sample_id", "dataset", "label", "seed"] + [c for c in preds if c.startswith("score_")]
    return preds[keep].assign(half=half)


def tune(data, variant: str, out: str | os.PathLike, *, grid: dict[str, list] | None = None, seeds=(0,),
         execution: Execution = DEFAULT_EXECUTION, max_candidates: int = MAX_CANDIDATES) -> dict:
    """Tune ``variant`` (or a model's default variant) on ``data`` by the cross-fitted rule (module
    docstring) into ``out`` as ``execution`` says (its ``show_progress``: one report over the candidates);
    returns (and writes) recipes.json. Resumable: finished candidates are
    read back, not re-trained, when they were computed from the same data, model (and code), recipe,
    seeds and half (:func:`candidate_identity`); a cached candidate that differs is refused before
    anything trains."""
    from am3f.data.dataset import data_fingerprint
    from am3f.models.registry import ARCHITECTURES, model_variant
    from am3f.protocol.run_folder import make_dir
    from am3f.training.recipe import resolve_variant
    from am3f.utils import atomic_write_text, progress

    variant = model_variant(variant) if variant in ARCHITECTURES else variant  # a model: its default variant
    model_cfg, base = resolve_variant(variant)
    grid = grid or default_grid(model_cfg.arch)
    check_grid_size(grid, max_candidates)
    cands, split = candidates(grid), halves(data)
    check_halves(data, split)
    out = make_dir(Path(out))
    fingerprint = data_fingerprint(data)
    recipe = {i: capped_warmup(replace(base, **overrides)) for i, overrides in enumerate(cands)}  # each candidate's
    identities = {(half, i): candidate_identity(fingerprint, variant, model_cfg, recipe[i], seeds, split[half])
                  for half in HALVES for i in range(len(cands))}
    for (half, i), identity in identities.items():  # every cache checked before anything trains
        check_cached_candidate(out, _candidate_dir(out, half, i, cands[i]), identity)
    result = {"model": model_cfg.arch, "variant": variant, "grid": grid, "seeds": [int(s) for s in seeds],
              "data_fingerprint": fingerprint, **_code_record(model_cfg), "halves": {}}
    timing, chosen_cv = {"workers": execution.workers, "halves": {}}, []
    bar = progress(total=len(HALVES) * len(cands), desc="tuning (half x candidate)", unit="cand",
                   disable=not execution.show_progress)
    each = execution.but(show_progress=False)  # the candidates' own runs: the one report above is enough
    try:
        for half in HALVES:
            scored = []
            for i, overrides in enumerate(cands):
                bar.set_postfix_str(f"half {half}, candidate {i + 1}/{len(cands)}")
                record_candidate(_candidate_dir(out, half, i, overrides), identities[(half, i)])
                s = score_candidate(data, split[half], model_cfg, recipe[i], seeds=seeds,
                                    out=_candidate_dir(out, half, i, overrides), execution=each)
                scored.append({"overrides": overrides, "uf1": s["uf1"], "uar": s["uar"]})
                timing["halves"].setdefault(half, []).append({"overrides": overrides, "wall_s": s["wall_s"],
                                                              "workers": s.get("workers")})
                bar.update(1)
            best = max(range(len(scored)), key=lambda j: (scored[j]["uf1"], -j))  # ties: the first in grid order
            result["halves"][half] = {"subjects": split[half], "chosen": dict(scored[best]["overrides"]),
                                      "candidates": scored}
            chosen_cv.append(_cv_predictions(_candidate_dir(out, half, best, cands[best]), half, seeds))
    finally:
        bar.close()
    atomic_write_text(out / "chosen_cv_predictions.csv", pd.concat(chosen_cv).to_csv(index=False, float_format="%.6f"))
    atomic_write_text(out / "recipes.json", json.dumps(result, indent=2) + "\n")
    atomic_write_text(out / "timing.json", json.dumps(timing, indent=2) + "\n")
    return result


def _code_record(model_cfg) -> dict:
    """For a user's model, the SHA-256 of its code (recipes.json): a run with other code is refused."""
    source = getattr(model_cfg, "source", None) or {}
    return {"model_code_sha256": source["sha256"]} if source.get("sha256") else {}


# ----------------------------------------------------------------------------- using a tuning
def read_recipes(path: str | os.PathLike) -> dict:
    """A recipes.json as :func:`tune` writes it, checked; its SHA-256 under ``"sha256"``."""
    path = Path(path)
    try:
        raw = path.read_bytes()
        tuned = json.loads(raw)
    except OSError as exc:
        raise AM3FError(f"--recipe {path}: cannot read it ({exc.strerror})") from None
    except ValueError as exc:
        raise AM3FError(f"--recipe {path}: not JSON ({exc})") from None
    halves_ = tuned.get("halves") if isinstance(tuned, dict) else None
    if not isinstance(halves_, dict) or set(halves_) != set(HALVES) or not all(
            isinstance(h, dict) and isinstance(h.get("subjects"), list) and isinstance(h.get("chosen"), dict)
            for h in halves_.values()):
        raise AM3FError(f"--recipe {path}: not a recipes.json of `am3f tune` (needs halves A and B, each with "
                        f"subjects and chosen)")
    for name in HALVES:
        _check_half(path, name, halves_[name])
    both = sorted(set(map(str, halves_["A"]["subjects"])) & set(map(str, halves_["B"]["subjects"])))
    if both:
        raise AM3FError(f"--recipe {path}: {len(both)} subject(s) in both halves (e.g. {both[0]}): a fold of such a "
                        f"subject would train with a recipe chosen on its own labels")
    return {**tuned, "sha256": hashlib.sha256(raw).hexdigest()}


def _check_half(path: Path, name: str, half: dict) -> None:
    """One half of a recipes.json: a non-empty list of subjects and a choice of known recipe fields."""
    if not half["subjects"] or not all(isinstance(s, str) and s for s in half["subjects"]):
        raise AM3FError(f"--recipe {path}: half {name} has no subjects (or subjects that are not names)")
    unknown = sorted(k for k in half["chosen"] if k not in _TYPES or k in NOT_TUNABLE)
    if unknown:
        raise AM3FError(f"--recipe {path}: half {name} chose unknown or untunable recipe field(s) "
                        f"{', '.join(unknown)}")
    try:
        replace(DEFAULT_TRAIN, **half["chosen"])  # bad values fail here, in one line
    except (TypeError, ValueError) as exc:
        raise AM3FError(f"--recipe {path}: half {name} chose an invalid recipe ({exc})") from None


def cross_fitted(tuned: dict, data, base: TrainConfig) -> dict:
    """The config.json record of a cross-fitted LOSO run: for each half H, the recipe tuned on H
    (``base`` with H's choice) and H's subjects, the tuning file's hash, and the rule."""
    subjects = set(data.subject_ids)
    covered = set(tuned["halves"]["A"]["subjects"]) | set(tuned["halves"]["B"]["subjects"])
    if subjects - covered:
        missing = sorted(subjects - covered)
        raise AM3FError(f"--recipe: {len(missing)} subject(s) of this dataset are in neither tuned half "
                        f"(e.g. {missing[0]}): the recipes were tuned on another dataset")
    _check_tuned_on_this_data(tuned, data)
    return {"sha256": tuned["sha256"], "rule": "a fold whose held-out subject is in one half trains with the "
                                               "recipe tuned on the other half",
            "tuned_on": {h: {"subjects": tuned["halves"][h]["subjects"], "chosen": tuned["halves"][h]["chosen"],
                             "train_config": capped_warmup(replace(base, **tuned["halves"][h]["chosen"])).to_dict()}
                         for h in HALVES}}


def _check_tuned_on_this_data(tuned: dict, data) -> None:
    """The tuning's halves must be this data's own split, recomputed (:func:`halves`), and its data
    fingerprint this data's (a recipes.json from before fingerprints were recorded: a warning)."""
    import sys

    from am3f.data.dataset import data_fingerprint

    split = halves(data)
    for name in HALVES:
        recorded = sorted(map(str, tuned["halves"][name]["subjects"]))
        if recorded != split[name]:
            wrong = sorted(set(recorded) ^ set(split[name]))
            raise AM3FError(f"--recipe: half {name} is not this data's half {name} ("
                            f"am3f.protocol.tuning.halves recomputes it; "
                            f"{len(wrong)} subject(s) differ, e.g. {wrong[0]}): edited halves, or tuned on other data")
    recorded = tuned.get("data_fingerprint")
    if recorded is None:
        print("warning: --recipe records no data fingerprint (made by an older am3f): its halves match this data, "
              "its labels and images cannot be checked", file=sys.stderr)
    elif recorded != data_fingerprint(data):
        raise AM3FError(f"--recipe: tuned on other data (fingerprint {str(recorded)[:12]}, this data "
                        f"{data_fingerprint(data)[:12]}: labels or images differ)")


def ensure_tuned(data, model: str, tuning_dir: str | os.PathLike, *, make_in: str | os.PathLike | None = None,
                 seeds=(0,), execution: Execution = QUIET) -> Path:
    """``tuning_dir/<model>/recipes.json`` when it is there (the committed tunings of the real set are
    in ``figures/tuning/``), else ``make_in/<model>/recipes.json`` (default ``tuning_dir``), tuned now
    with the declared grid if it is not there either (resumable)."""
    from am3f.models.registry import model_variant

    found = Path(tuning_dir) / model / "recipes.json"
    if found.is_file():
        return _checked_tuning(found, model, seeds)
    out = Path(make_in or tuning_dir) / model
    if (out / "recipes.json").is_file():
        return _checked_tuning(out / "recipes.json", model, seeds)
    tune(data, model_variant(model), out, seeds=seeds, execution=execution)
    return out / "recipes.json"


def _checked_tuning(path: Path, model: str, seeds) -> Path:
    """A tuning found on disk is used only for what it was made for: this model (its default variant),
    these seeds; its data (halves and fingerprint) is checked where it is used (:func:`cross_fitted`)."""
    from am3f.models.registry import model_variant

    tuned = read_recipes(path)
    asked = {"variant": model_variant(model), "seeds": sorted(int(s) for s in seeds)}
    made = {"variant": tuned.get("variant"), "seeds": sorted(int(s) for s in tuned.get("seeds", []))}
    differ = [k for k in asked if asked[k] != made[k]]
    if differ:
        raise AM3FError(f"{path}: tuned with other {' and '.join(differ)} ("
                        + "; ".join(f"{k} {made[k]}, asked {asked[k]}" for k in differ) + "): use another folder")
    return path
