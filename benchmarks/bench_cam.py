"""Feature-visualisation benchmark: does the default class activation map show where the motion is,
and is it faithful to the model?

    python benchmarks/bench_cam.py [--seeds 0 1 2] [--data DIR] [--real-folds 8] [--runs DIR] [--compare]

Prints, for the default method of am3f.results.gradcam, one line per branch:

    branch <u|v|strain> mass-ratio <x> deletion-auc <y> random-auc <z>

* mass-ratio: share of the map's mass on the truly moving regions / their share of the image (1.0 =
  chance), mean over the held-out samples of every LOSO fold of the embedded SYNTHETIC set (each
  sample through the model of the fold that left its subject out; declared schedule; ``--seeds``).
* deletion-auc / random-auc: area under the probability of the predicted class while the branch's
  most-attributed pixels (map order) or random pixels are set to "no motion"; lower than random =
  faithful. On the real MEGC2019 composite set when it is found (``--data``, $AM3F_DATA,
  $AM3F_SHARED/megc2019-composite or a shared/data/ folder beside or above the checkout), on the
  ``--real-folds`` subjects with the most samples, seed 0; else on the synthetic set (labelled).

Then the details: 95% bootstrap intervals, sample counts, per class, and the same restricted to
samples where MOFRW gives the branch a weight of at least 0.1. ``--compare`` also runs every candidate
method x layer of am3f.results.cam_eval.CANDIDATES (the table in docs/design-choices.md; minutes per seed).
Fold models are cached in RUNS/<variant>-<hash>/models (shared with the notebooks).
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import pandas as pd

from am3f.app.notebook import synthetic_data
from am3f.data.dataset import load_flow_dataset
from am3f.results import cam_eval, gradcam

REPO = Path(__file__).resolve().parents[1]


def find_real_data(explicit: str | None) -> Path | None:
    candidates = [explicit, os.environ.get("AM3F_DATA")]
    if os.environ.get("AM3F_SHARED"):
        candidates.append(str(Path(os.environ["AM3F_SHARED"]) / "megc2019-composite"))
    candidates += [str(p / "shared" / "data" / "megc2019-composite") for p in (REPO.parent, REPO.parent.parent)]
    for c in candidates:
        if c and (Path(c) / "flows").is_dir():
            return Path(c)
    return None


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--data", default=None, help="real composite-layout folder for the deletion test")
    ap.add_argument("--real-folds", type=int, default=8, help="held-out subjects for the deletion test")
    ap.add_argument("--steps", type=int, default=20, help="deletion / insertion steps")
    ap.add_argument("--runs", default=None, help="run directories (fold-model cache); default out/runs")
    ap.add_argument("--compare", action="store_true", help="also compare every candidate method x layer")
    args = ap.parse_args()
    pd.set_option("display.width", 200)
    pd.set_option("display.max_rows", 500)
    t0 = time.time()

    synth = synthetic_data()
    models = cam_eval.fold_models(synth, synth.subject_ids, args.seeds, runs_dir=args.runs)
    candidates = cam_eval.CANDIDATES if args.compare else ((gradcam.DEFAULT_METHOD, gradcam.DEFAULT_LAYERS,
                                                            gradcam.DEFAULT_FLIP),)
    rows = cam_eval.mass_ratio_rows(models, synth, candidates)
    default = rows[(rows.method == gradcam.DEFAULT_METHOD) & (rows.layers == gradcam.DEFAULT_LAYERS)
                   & (rows.flip == gradcam.DEFAULT_FLIP)]
    t_mass = time.time() - t0

    real = find_real_data(args.data)
    if real is not None:
        data = load_flow_dataset(real)
        subjects = cam_eval.largest_subjects(data, args.real_folds)
        where = f"real {data.name}, held-out subjects {', '.join(subjects)} (seed 0)"
    else:
        data, subjects = synth, synth.subject_ids[:args.real_folds]
        where = f"SYNTHETIC (no real data found), held-out subjects {', '.join(subjects)} (seed 0)"
    faith_models = cam_eval.fold_models(data, subjects, [0], runs_dir=args.runs)
    faith_rows, _ = cam_eval.faithfulness(faith_models, data, steps=args.steps)
    faith = cam_eval.faithfulness_summary(faith_rows).set_index("branch")

    print(f"default map: {gradcam.method_label()}")
    print(f"mass ratio: SYNTHETIC set, {len(synth.subject_ids)} LOSO folds x seeds {args.seeds}, held-out samples")
    print(f"deletion:   {where}")
    for b, g in default.groupby("branch", sort=False):
        print(f"branch {b} mass-ratio {g['ratio'].mean():.2f} deletion-auc {faith.loc[b, 'deletion AUC']:.3f} "
              f"random-auc {faith.loc[b, 'deletion random AUC']:.3f}")
    print("\nmass ratio, mean [95% bootstrap interval over samples] (n); all samples with a map:")
    print(cam_eval.mass_ratio_table(default).to_string(index=False))
    print("only samples where MOFRW gives the branch a flow weight >= 0.1:")
    print(cam_eval.mass_ratio_table(default, min_weight=0.1).to_string(index=False))
    print("\ndeletion / insertion areas (mean probability of the predicted class), map - random [95% interval]:")
    print(faith.T.to_string())
    if args.compare:
        for value, what in (("ratio", "mass ratio"), ("auc", "rank AUC of the moving regions (0.5 = chance)")):
            table = cam_eval.summarise(rows, value)
            table["cell"] = [cam_eval.format_interval(m, lo, hi) for m, lo, hi in zip(table["mean"], table["low"],
                                                                                        table["high"])]
            print(f"\nall candidates, {what}, mean [95% interval]:")
            print(table.pivot_table(index=["method", "layers", "flip"], columns="branch", values="cell",
                                    aggfunc="first", sort=False).to_string())
    t_all = time.time() - t0
    print(f"\nruntime: {t_all:.0f} s (mass ratio {t_mass:.0f} s, deletion {t_all - t_mass:.0f} s); fold models cached")


if __name__ == "__main__":
    main()
