"""The cross-database protocol on the real composite set: every architecture under our declared schedule,
one fold per source dataset (trained on the other two), several seeds, paired against AM3F-FlowNet.

    python benchmarks/cross_database.py [--data DIR] [--seeds 0 1 2 3 4] [--runs DIR] [--out figures]

Writes OUT/cross_database.{md,tex,csv}. Runs are ordinary run directories (`am3f loso --split dataset`),
reused when they exist. The recipe is each variant's declared one (not tuned: the honest tuning of
every architecture is a later step), and prints how long each variant took (core-seconds in run.json).
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

from am3f.data.dataset import load_dataset
from am3f.protocol.launch import ensure_run
from am3f.results import leaderboard, writers

VARIANTS = ("full", "ststnet", "rcn", "offapexnet", "htnet-small", "dualinception")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=os.environ.get("AM3F_DATA") or "../shared/data/megc2019-composite")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    ap.add_argument("--variants", nargs="+", default=list(VARIANTS))
    ap.add_argument("--runs", default="out/runs-cross-database")
    ap.add_argument("--out", default="figures")
    args = ap.parse_args(argv)
    data = load_dataset(args.data)
    print(data.describe())
    runs = {}
    for variant in args.variants:
        t0 = time.perf_counter()
        runs[variant] = ensure_run(data, "", runs_dir=args.runs, variant=variant, seeds=args.seeds, split="dataset",
                                   device="cpu", show_progress=False)
        print(f"{variant:<14} {time.perf_counter() - t0:6.0f} s  -> {runs[variant]}", flush=True)
    table = leaderboard.cross_database_table(runs)
    print(writers.display_table(table))
    paths = writers.write_table(table, Path(args.out), "cross_database", synthetic=data.synthetic,
                                caption=leaderboard.CROSS_DATABASE_CAPTION)
    print("written:", *paths.values(), sep="\n  ")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
