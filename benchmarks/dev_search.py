"""The design search of AM3F-FlowNet on the DEVELOPMENT HALF only (am3f.development): each candidate is
a set of overrides of the `full` variant's model and training configs, scored by subject-grouped 5-fold
CV inside the development half with several seeds, and compared with the baseline paired on the same
samples and seeds (subject-bootstrap interval of Δ UF1, am3f.stats). The untouched half is never used.

    python benchmarks/dev_search.py --data ../shared/data/megc2019-composite --seeds 0 1 2 3 4 5 6 7 \\
        --candidates baseline mean_sa stride --log dev_search.jsonl

Prints one line per candidate (and appends it to --log as JSON): dev UF1 / UAR mean ± std over seeds,
Δ UF1 vs the baseline with its paired interval, seconds, and the training cost in µs per sample-step.

    python benchmarks/dev_search.py --final --runs RUNS --seeds 100 101 102 --candidates baseline distill ...

``--final``: AFTER the decision, each candidate's full 68-fold LOSO on seeds never used for a decision
(run directories under RUNS, resumable), scored on the whole composite set and on the untouched half
(am3f.development.holdout_subjects), each with the paired Δ UF1 vs the baseline on the same seeds.
This only reports: nothing is chosen from it.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import replace

import numpy as np

from am3f.data import load_dataset
from am3f.development import dev_cv, dev_subjects
from am3f.loso import usable_cores
from am3f.recipe import resolve_variant
from am3f.stats import compare_predictions

# name -> (model-config overrides, training-config overrides); all relative to the `full` variant
CANDIDATES: dict[str, tuple[dict, dict]] = {
    "baseline": ({}, {}),
    "mean_sa": ({"sa_descriptor": "mean"}, {}),
    "stride": ({"downsample": "stride"}, {}),
    "mean_sa_stride": ({"sa_descriptor": "mean", "downsample": "stride"}, {}),
    "dataset_priors": ({}, {"priors": "dataset"}),
    "no_msff": ({"msff": False}, {}),
    "epochs30": ({}, {"epochs": 30}),
    "wide": ({"widths": (12, 24, 48)}, {}),
    "grid3": ({"msff_grid": 3}, {}),
    "stride2": ({"first_stride": 2}, {}),
    "dropout0.3": ({"dropout": 0.3}, {}),
    "lr5e-3": ({}, {"lr": 5e-3}),
    "no_mix": ({}, {"same_class_mix": 0.0}),
    "pretrain": ({}, {"pretrain": "synthetic:200:10"}),
    "grid_attention": ({"msff_attend": "grid"}, {}),
    "grid_attention_g3": ({"msff_attend": "grid", "msff_grid": 3}, {}),
    "grid_attention_k1": ({"msff_attend": "grid", "sa_kernel": 1}, {}),
    "grid_attention_stride": ({"msff_attend": "grid", "downsample": "stride"}, {}),
    "pretrain_stride_mean": ({"sa_descriptor": "mean", "downsample": "stride"}, {"pretrain": "synthetic:200:10"}),
    "dataset_priors_stride_mean": ({"sa_descriptor": "mean", "downsample": "stride"}, {"priors": "dataset"}),
    # third round (issue 11, after the fused optimizer): distillation and facial-region scales
    "distill": ({}, {"distill_from": ("full", "ststnet")}),
    "distill_t1": ({}, {"distill_from": ("full", "ststnet"), "distill_temperature": 1.0}),
    "distill_w0.8": ({}, {"distill_from": ("full", "ststnet"), "distill_weight": 0.8}),
    "distill_stride_mean": ({"sa_descriptor": "mean", "downsample": "stride"}, {"distill_from": ("full", "ststnet")}),
    "regions": ({"regions": ("left_eye", "right_eye", "left_mouth", "right_mouth")}, {}),
    "dataset_norm": ({}, {"input_norm": "dataset"}),
    "sequential": ({}, {"fold_group": 1}),  # the baseline one fold at a time: dataset_norm's pairing partner
}


def configs(name: str):
    model_over, train_over = CANDIDATES[name]
    model_cfg, train_cfg = resolve_variant("full")
    return replace(model_cfg, **model_over), replace(train_cfg, **train_over)


def run_final(args: argparse.Namespace, data) -> int:
    from pathlib import Path

    from am3f.development import holdout_subjects
    from am3f.metrics import megc_scores
    from am3f.rundir import merge_run
    from am3f.runs import run_config, start_run

    untouched = set(map(str, holdout_subjects(data)))
    print(f"final check: full LOSO, seeds {args.seeds}; untouched half = {len(untouched)} subjects", flush=True)
    preds = {}
    for name in [args.baseline] + [c for c in args.candidates if c != args.baseline]:
        model_cfg, train_cfg = configs(name)
        config = run_config(data, variant="full")
        config.update(model_config=model_cfg.to_dict(), train_config=train_cfg.to_dict(), candidate=name)
        t0 = time.perf_counter()
        run = start_run(data, json.loads(json.dumps(config)), Path(args.runs) / name, seeds=args.seeds,
                        workers=args.workers, show_progress=False)
        p = preds[name] = merge_run(run)
        half = p[p["subject"].astype(str).isin(untouched)]
        text = f"{name:<18}"
        line = {"candidate": name, "final_seeds": args.seeds, "seconds": round(time.perf_counter() - t0, 1)}
        for label, part in (("composite", p), ("untouched", half)):
            per_seed = [megc_scores(g["label"], g["pred"]) for _, g in part.groupby("seed")]
            uf1, uar = [s["uf1"] for s in per_seed], [s["uar"] for s in per_seed]
            line[label] = {"uf1": float(np.mean(uf1)), "uf1_std": float(np.std(uf1, ddof=1)) if len(uf1) > 1 else 0.0,
                           "uar": float(np.mean(uar))}
            text += f"  {label} UF1 {np.mean(uf1):.4f} ± {line[label]['uf1_std']:.4f} UAR {np.mean(uar):.4f}"
            if name != args.baseline:
                base = preds[args.baseline]
                base = base[base["sample_id"].isin(part["sample_id"]) & base["seed"].isin(part["seed"].unique())]
                cmp = compare_predictions(part, base)
                lo, hi = cmp["delta_uf1_ci95"]
                line[label].update(delta_uf1=cmp["delta_uf1"], delta_uf1_ci95=[lo, hi], p_uf1=cmp["p_uf1"])
                text += f" Δ {cmp['delta_uf1']:+.4f} [{lo:+.3f}, {hi:+.3f}] p {cmp['p_uf1']:.2f}"
        print(text + f"  ({line['seconds']:.0f} s)", flush=True)
        if args.log:
            with open(args.log, "a") as fh:
                fh.write(json.dumps(line) + "\n")
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default="../shared/data/megc2019-composite")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    ap.add_argument("--candidates", nargs="+", default=list(CANDIDATES), choices=list(CANDIDATES))
    ap.add_argument("--baseline", default="baseline", choices=list(CANDIDATES))
    ap.add_argument("--workers", type=int, default=usable_cores())
    ap.add_argument("--log", default=None, help="append one JSON line per candidate")
    ap.add_argument("--final", action="store_true",
                    help="after the decision: full LOSO of each candidate, composite + untouched half (report only)")
    ap.add_argument("--runs", default="runs/dev_search_final", help="--final: run directories (resumable)")
    args = ap.parse_args(argv)
    data = load_dataset(args.data)
    if args.final:
        return run_final(args, data)
    n_dev = int(np.isin(data.subjects, dev_subjects(data)).sum())
    print(f"development half: {len(dev_subjects(data))} subjects, {n_dev} samples; 5-fold subject-grouped CV; "
          f"seeds {args.seeds}", flush=True)
    results = {}
    for name in [args.baseline] + [c for c in args.candidates if c != args.baseline]:
        model_cfg, train_cfg = configs(name)
        t0 = time.perf_counter()
        r = dev_cv(data, model_cfg, train_cfg, seeds=tuple(args.seeds), workers=args.workers)
        wall = time.perf_counter() - t0
        results[name] = r
        uf1 = [v["uf1"] for v in r["per_seed"].values()]
        uar = [v["uar"] for v in r["per_seed"].values()]
        line = {"candidate": name, "model": CANDIDATES[name][0], "train": CANDIDATES[name][1], "seeds": args.seeds,
                "uf1": float(np.mean(uf1)), "uf1_std": float(np.std(uf1, ddof=1)) if len(uf1) > 1 else 0.0,
                "uar": float(np.mean(uar)), "uar_std": float(np.std(uar, ddof=1)) if len(uar) > 1 else 0.0,
                "seconds": round(wall, 1)}
        text = (f"{name:<18} dev UF1 {line['uf1']:.4f} ± {line['uf1_std']:.4f}  UAR {line['uar']:.4f} ± "
                f"{line['uar_std']:.4f}  ({wall:.0f} s)")
        if name != args.baseline:
            cmp = compare_predictions(r["predictions"], results[args.baseline]["predictions"])
            line.update(delta_uf1=cmp["delta_uf1"], delta_uf1_ci95=cmp["delta_uf1_ci95"], p_uf1=cmp["p_uf1"])
            lo, hi = cmp["delta_uf1_ci95"]
            text += f"  Δ UF1 {cmp['delta_uf1']:+.4f} [{lo:+.3f}, {hi:+.3f}] p {cmp['p_uf1']:.3f}"
        print(text, flush=True)
        if args.log:
            with open(args.log, "a") as fh:
                fh.write(json.dumps(line) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
