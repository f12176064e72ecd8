"""Why does htnet-small not learn under our declared schedule? A learning-rate diagnosis on the
development half only (subject-grouped 5-fold CV, am3f.protocol.development.dev_cv; the untouched half and
the LOSO test subjects are never looked at). Everything but the learning rate is our schedule.

    python benchmarks/diagnose_htnet_lr.py [--data DIR] [--lrs 1e-2 1e-3 2e-4] [--seeds 0 1]

Prints the dev UF1 / UAR per seed for each learning rate (about 20 s per rate on 2 CPU cores).
"""

from __future__ import annotations

import argparse
import os
import time

from am3f.data.dataset import load_flow_dataset
from am3f.protocol.development import dev_cv
from am3f.protocol.engine import Execution, usable_cores
from am3f.training.recipe import resolve_variant


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=os.environ.get("AM3F_DATA") or "../shared/data/megc2019-composite")
    ap.add_argument("--variant", default="htnet-small")
    ap.add_argument("--lrs", type=float, nargs="+", default=[1e-2, 1e-3, 2e-4])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    args = ap.parse_args(argv)
    data = load_flow_dataset(args.data)
    for lr in args.lrs:
        t0 = time.perf_counter()
        model_cfg, train_cfg = resolve_variant(args.variant, lr=lr)
        per_seed = dev_cv(data, model_cfg, train_cfg, seeds=args.seeds,
                          execution=Execution(workers=usable_cores(), show_progress=False))["per_seed"]
        scores = ", ".join(f"seed {s}: UF1 {v['uf1']:.4f} UAR {v['uar']:.4f}" for s, v in per_seed.items())
        print(f"{args.variant} lr {lr:g}: {scores}  ({time.perf_counter() - t0:.0f} s)", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
