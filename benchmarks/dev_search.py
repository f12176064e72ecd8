"""The design search of AM3F-FlowNet on the DEVELOPMENT HALF only (am3f.development): each candidate is
a set of overrides of the `full` variant's model and training configs, scored by subject-grouped 5-fold
CV inside the development half with several seeds, and compared with the baseline paired on the same
samples and seeds (subject-bootstrap interval of Δ UF1, am3f.stats). The untouched half is never used.

    python benchmarks/dev_search.py --data ../shared/data/megc2019-composite --seeds 0 1 2 3 4 5 6 7 \\
        --candidates baseline mean_sa stride --log dev_search.jsonl

Prints one line per candidate (and appends it to --log as JSON): dev UF1 / UAR mean ± std over seeds,
Δ UF1 vs the baseline with its paired interval, seconds, and the training cost in µs per sample-step.
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
from am3f.stats import compare_predictions
from am3f.train import resolve_variant

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
}


def configs(name: str):
    model_over, train_over = CANDIDATES[name]
    model_cfg, train_cfg = resolve_variant("full")
    return replace(model_cfg, **model_over), replace(train_cfg, **train_over)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default="../shared/data/megc2019-composite")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    ap.add_argument("--candidates", nargs="+", default=list(CANDIDATES), choices=list(CANDIDATES))
    ap.add_argument("--baseline", default="baseline", choices=list(CANDIDATES))
    ap.add_argument("--workers", type=int, default=usable_cores())
    ap.add_argument("--log", default=None, help="append one JSON line per candidate")
    args = ap.parse_args(argv)
    data = load_dataset(args.data)
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
