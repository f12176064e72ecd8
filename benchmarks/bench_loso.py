"""Composite LOSO benchmark: AM3F-FlowNet vs STSTNet trained from scratch, same protocol, side by side;
and the speed of the LOSO engine.

    python benchmarks/bench_loso.py [--data DIR] [--seeds 0 1 2] [--runs runs] [--models am3f ststnet]
    python benchmarks/bench_loso.py --speed [--data DIR] [--seeds 0]       # engine speed, one run
    python benchmarks/bench_loso.py --paths [--data DIR] [--seeds 0 1 2 3 4]  # accuracy: old vs new path

``--speed`` times one 68-fold seed three ways in one run: the sequential path (one fold at a time in one
single-threaded process, batch 64: ``--fold-group 1 --workers 1``), the batched engine in one process,
and the batched engine on two worker processes; it prints seconds per seed, the speed-up, samples per
second and the achieved GFLOP/s against the model's FLOP count (torch's FlopCounterMode: convolutions
and matrix products). ``--paths`` trains seeds with the sequential and the batched path and compares
them paired on the same subjects (``am3f compare``): batching must not move accuracy beyond seed noise.

For every model and seed: the full leave-one-subject-out run (68 folds on the composite set) with the
fixed schedule declared in am3f.training.fit (no epoch picking, no tuning on held-out subjects). Prints
composite and per-dataset UF1 / UAR (mean ± std over seeds), the same scores on the half of the
subjects never used for development (am3f.protocol.development.holdout_subjects), wall time per seed, parameter
count and device. Run directories: RUNS/am3f-composite and RUNS/ststnet-scratch-composite (resumable;
`am3f score RUN_DIR` rescores them).

This is a script, not a test: one seed takes minutes.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import time
from pathlib import Path

import numpy as np
import torch

from am3f.data.dataset import load_dataset
from am3f.models.registry import build_model, count_parameters
from am3f.protocol.development import dev_subjects, holdout_subjects
from am3f.protocol.engine import Execution, start_workers_early, usable_cores
from am3f.protocol.launch import run_config, start_run
from am3f.protocol.metrics import megc_scores, summarize
from am3f.protocol.run_folder import merge_run
from am3f.training.recipe import resolve_variant
from am3f.utils import pick_device

MODELS = {"am3f": ("full", "am3f-composite"), "ststnet": ("ststnet", "ststnet-scratch-composite")}


def mean_std(vals: list[float]) -> str:
    vals = np.asarray(vals, dtype=float)
    return f"{vals.mean():.4f} ± {vals.std(ddof=1) if len(vals) > 1 else 0.0:.4f}"


def half_scores(preds, subjects: list[str]) -> dict[str, list[float]]:
    part = preds[preds["subject"].astype(str).isin(subjects)]
    out = {"uf1": [], "uar": []}
    for _, g in part.groupby("seed"):
        s = megc_scores(g["label"].to_numpy(), g["pred"].to_numpy())
        out["uf1"].append(s["uf1"])
        out["uar"].append(s["uar"])
    return out


def run_dev_cv(args: argparse.Namespace) -> int:
    from am3f.protocol.development import dev_cv

    data = load_dataset(args.data)
    dev = dev_subjects(data)
    print(f"development half: {len(dev)} subjects, {int(np.isin(data.subjects, dev).sum())} samples; "
          f"subject-grouped 5-fold CV inside it; seeds {' '.join(map(str, args.dev_seeds))}")
    for variant in args.dev_cv:
        model_cfg, train_cfg = resolve_variant(variant)
        t0 = time.perf_counter()
        r = dev_cv(data, model_cfg, train_cfg, seeds=tuple(args.dev_seeds),
                   execution=Execution(device=str(pick_device(args.device)), show_progress=False))
        uf1 = [v["uf1"] for v in r["per_seed"].values()]
        uar = [v["uar"] for v in r["per_seed"].values()]
        print(f"{variant:<22} UF1 {mean_std(uf1)}  UAR {mean_std(uar)}  ({time.perf_counter() - t0:.0f} s)",
              flush=True)
    return 0


def train_flops_per_sample(variant: str, image_size: int = 28, batch: int = 64) -> tuple[float, float]:
    """(FLOPs of one training step, FLOPs of one forward pass) per sample of ``variant``."""
    from torch.utils.flop_counter import FlopCounterMode

    model = build_model(resolve_variant(variant)[0], image_size=image_size)
    x = torch.rand(batch, 3, image_size, image_size)
    with FlopCounterMode(display=False) as counter:
        model(x).sum().backward()
    train = counter.get_total_flops() / batch
    model.eval()
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(x)
    return train, counter.get_total_flops() / batch


def seed_work(data, train_cfg, folds: list[int]) -> tuple[int, int]:
    """(training sample-steps, evaluated test samples incl. the per-epoch audit and the mirror) of one seed."""
    from am3f.protocol.folds import fold_rows

    steps = evals = 0
    for k in folds:
        train, test = fold_rows(data, k)
        bs, per_epoch = train_cfg.epoch_steps(len(train))
        steps += train_cfg.epochs * per_epoch * bs
        evals += (train_cfg.epochs + 1) * len(test) * (2 if train_cfg.tta_flip else 1)
    return steps, evals


def run_speed(args: argparse.Namespace) -> int:
    import tempfile

    from am3f.data.dataset import parse_index_ranges
    from am3f.protocol.metrics import megc_scores

    start_workers_early(2)  # as `am3f loso` does: the 2-worker path finds its workers' fork server ready
    data = load_dataset(args.data)
    folds = parse_index_ranges(args.folds, len(data.subject_ids))
    seed = args.seeds[0]
    train_flops, fwd_flops = train_flops_per_sample(args.variant, data.image_size[0])
    print(data.describe())
    print(f"variant {args.variant}: {train_flops / 1e6:.2f} MFLOP per sample per training step (forward + backward), "
          f"{fwd_flops / 1e6:.2f} MFLOP per forward; torch {torch.__version__}, {os.cpu_count()} CPU cores, "
          f"load average at start {os.getloadavg()[0]:.2f}")
    paths = [("sequential: 1 fold at a time, 1 process", {"fold_group": 1}, 1),
             ("batched folds, 1 process", {}, 1),
             ("batched folds, 2 worker processes", {}, 2)]
    walls = {}
    with tempfile.TemporaryDirectory() as tmp:
        for label, overrides, workers in paths:
            model_cfg, train_cfg = resolve_variant(args.variant, **overrides)
            steps, evals = seed_work(data, train_cfg, folds)
            flops = steps * train_flops + evals * fwd_flops
            t0 = time.perf_counter()
            run = start_run(data, run_config(data, variant=args.variant, **overrides),
                            Path(tmp) / label.replace(" ", "_"), seeds=[seed], folds=folds,
                            execution=Execution(workers=workers, show_progress=False))
            walls[label] = wall = time.perf_counter() - t0
            preds = merge_run(run)
            uf1 = megc_scores(preds["label"], preds["pred"])["uf1"]
            print(f"{label:<40} {wall:7.1f} s per {len(folds)}-fold seed  {steps / wall:8.0f} samples/s  "
                  f"{flops / wall / 1e9:6.1f} GFLOP/s  (fold group {train_cfg.fold_group}; composite UF1 {uf1:.4f}, "
                  f"load average {os.getloadavg()[0]:.2f})", flush=True)
    first, _, last = walls.values()
    print(f"speed-up of the new path (batched, 2 workers) over the sequential path: {first / last:.2f}x "
          f"(1 worker: {first / walls[paths[1][0]]:.2f}x; 2 workers vs 1: {walls[paths[1][0]] / last:.2f}x)")
    print("note: one run on a shared machine; ratios come from the same run")
    return 0


def run_paths(args: argparse.Namespace) -> int:
    """The sequential and the batched path, same seeds, compared paired on the same subjects."""
    from am3f.results.stats import compare_runs, format_comparison

    data = load_dataset(args.data)
    runs = {}
    for label, overrides in (("sequential", {"fold_group": 1}), ("batched", {})):
        run = Path(args.runs) / f"paths-{args.variant}-{label}"
        t0 = time.perf_counter()
        start_run(data, run_config(data, variant=args.variant, **overrides), run, seeds=args.seeds,
                  execution=Execution(workers=usable_cores(), show_progress=sys.stderr.isatty()))
        runs[label] = run
        comp = summarize(merge_run(run))["subsets"]["composite"]
        print(f"{label:<11} seeds {args.seeds}: composite UF1 {comp['uf1']['mean']:.4f} ± {comp['uf1']['std']:.4f}, "
              f"UAR {comp['uar']['mean']:.4f} ± {comp['uar']['std']:.4f}  ({time.perf_counter() - t0:.0f} s)",
              flush=True)
    print(format_comparison(compare_runs(runs["batched"], runs["sequential"])))
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=os.environ.get("AM3F_DATA") or "../shared/data/megc2019-composite")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--runs", default="runs", help="parent folder of the run directories")
    ap.add_argument("--models", nargs="+", choices=list(MODELS), default=list(MODELS))
    ap.add_argument("--device", default="auto")
    ap.add_argument("--folds", default=None, help="subset of folds (smoke tests only), e.g. 0-3")
    ap.add_argument("--fresh", action="store_true", help="delete existing run directories first")
    ap.add_argument("--dev-cv", nargs="+", metavar="VARIANT", default=None,
                    help="instead of LOSO: subject-grouped 5-fold CV inside the development half only "
                         "(am3f.protocol.development.dev_cv) for these variants -- the evidence used to choose "
                         "the design")
    ap.add_argument("--dev-seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    ap.add_argument("--speed", action="store_true", help="time the LOSO engine (sequential vs batched, 1 vs 2 workers)")
    ap.add_argument("--paths", action="store_true",
                    help="accuracy of the sequential vs the batched path on --seeds, paired comparison")
    ap.add_argument("--variant", default="full", help="variant for --speed / --paths (default full)")
    args = ap.parse_args(argv)
    if args.dev_cv:
        return run_dev_cv(args)
    if args.speed:
        return run_speed(args)
    if args.paths:
        return run_paths(args)

    data = load_dataset(args.data)
    device = pick_device(args.device)
    folds = None
    if args.folds:
        from am3f.data.dataset import parse_index_ranges

        folds = parse_index_ranges(args.folds, len(data.subject_ids))
    print(data.describe())
    print(f"device {device}; torch {torch.__version__}; python {platform.python_version()}; "
          f"{os.cpu_count()} CPU cores; load average at start {os.getloadavg()[0]:.2f}")
    print("protocol: leave-one-subject-out, fixed declared schedule, prediction at the end of it; "
          "class priors from the training fold only; no epoch / checkpoint / hyper-parameter picking")
    holdout = holdout_subjects(data)
    print(f"untouched half: {len(holdout)} subjects never used during development "
          f"(development half: {len(dev_subjects(data))})\n")

    results = {}
    for name in args.models:
        variant, run_name = MODELS[name]
        model_cfg, train_cfg = resolve_variant(variant)
        n_params = count_parameters(build_model(model_cfg, image_size=data.image_size[0]))
        run = Path(args.runs) / run_name
        if args.fresh and run.exists():
            shutil.rmtree(run)
        config = run_config(data, variant=variant)
        print(f"== {name} (variant {variant}): {n_params:,} parameters -> {run}")
        print("   train config: " + json.dumps(train_cfg.to_dict()))
        walls = {}
        for seed in args.seeds:
            t0 = time.perf_counter()
            execution = Execution(workers=1 if device.type == "cuda" else usable_cores(), device=str(device),
                                  show_progress=sys.stderr.isatty())
            start_run(data, config, run, seeds=[seed], folds=folds, execution=execution)
            walls[seed] = time.perf_counter() - t0
            per_fold = walls[seed] / len(folds or data.subject_ids)
            print(f"   seed {seed}: {walls[seed]:.1f} s wall ({per_fold:.2f} s/fold, "
                  f"load average {os.getloadavg()[0]:.2f})", flush=True)
        preds = merge_run(run)
        preds = preds[preds["seed"].isin(args.seeds)]
        results[name] = {"summary": summarize(preds), "walls": walls, "params": n_params, "run": run,
                         "holdout": half_scores(preds, holdout), "dev": half_scores(preds, dev_subjects(data))}

    print("\n" + "=" * 96)
    print(f"Composite LOSO, seeds {' '.join(map(str, args.seeds))} (mean ± std over seeds), device {device}")
    head = f"{'model':<22}{'subset':<22}{'n':>5}  {'UF1':>17}  {'UAR':>17}"
    print(head)
    print("-" * len(head))
    for name, r in results.items():
        label = {"am3f": "AM3F-FlowNet (ours)", "ststnet": "STSTNet (scratch)"}[name]
        for e in r["summary"]["subsets"].values():
            uf1 = [v["uf1"] for v in e["per_seed"].values()]
            uar = [v["uar"] for v in e["per_seed"].values()]
            print(f"{label:<22}{e['title']:<22}{e['n']:>5}  {mean_std(uf1):>17}  {mean_std(uar):>17}")
            label = ""
        print(f"{'':<22}{'untouched half':<22}{'':>5}  {mean_std(r['holdout']['uf1']):>17}  "
              f"{mean_std(r['holdout']['uar']):>17}")
        print(f"{'':<22}{'development half':<22}{'':>5}  {mean_std(r['dev']['uf1']):>17}  "
              f"{mean_std(r['dev']['uar']):>17}")
    print()
    for name, r in results.items():
        walls = list(r["walls"].values())
        comp = r["summary"]["subsets"]["composite"]["per_seed"]
        per_seed = ", ".join(f"seed {s}: {v['uf1']:.4f}/{v['uar']:.4f}" for s, v in comp.items())
        print(f"{name:<8} params {r['params']:>8,}   wall/seed {np.mean(walls):6.1f} s "
              f"(max {np.max(walls):.1f} s)   per seed UF1/UAR: {per_seed}")
    print("\nrun directories: " + ", ".join(str(r["run"]) for r in results.values()))
    print("note: wall times measured on a shared machine (another process may use the same cores)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
