"""How optimistic is the development half? Per row of the leaderboard: UF1 on all 68 subjects, on the
hold-out half (34 subjects that never informed a design or schedule decision: the clean score) and on the
development half A (which chose AM3F-FlowNet's design and our declared schedule), and A − hold-out with its
95 % subject-bootstrap interval.

    python benchmarks/half_optimism.py [--out figures]

Reads only the committed evidence of the leaderboard's rows (OUT/runs/leaderboard/<row>/, written by
benchmarks/leaderboard_evidence.py), so it regenerates from the repository alone; writes
OUT/half_optimism.{md,tex,csv}.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from leaderboard_evidence import committed_rows  # this folder's script: the same evidence, read one way

from am3f.errors import AM3FError
from am3f.results import leaderboard, writers

CAPTION = ("How optimistic is the development half? UF1 on all subjects, on the hold-out half (the clean score) and on "
           "half A (which chose AM3F-FlowNet's design and our declared schedule), A − hold-out with its 95 % "
           "subject-bootstrap interval and p (different subjects: not a paired Δ). Every row of the leaderboard "
           "(composite LOSO, seed 0, 2-core CPU; figures/leaderboard.md).")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="figures")
    args = ap.parse_args(argv)
    try:
        runs = committed_rows(Path(args.out))
    except AM3FError as exc:
        print(f"half_optimism: {exc}", file=sys.stderr)
        return 2
    table = leaderboard.half_optimism_table(runs)
    print(writers.display_table(table))
    paths = writers.write_table(table, Path(args.out), "half_optimism", caption=CAPTION)
    print("written:", *paths.values(), sep="\n  ")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
