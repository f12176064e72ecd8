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
from pathlib import Path

from am3f.protocol import run_folder as rundir
from am3f.results import leaderboard, writers

CAPTION = ("How optimistic is the development half? UF1 on all subjects, on the hold-out half (the clean score) and on "
           "half A (which chose AM3F-FlowNet's design and our declared schedule), A − hold-out with its 95 % "
           "subject-bootstrap interval and p (different subjects: not a paired Δ). Every row of the leaderboard "
           "(composite LOSO, seed 0, 2-core CPU; figures/leaderboard.md).")


def committed_runs(out: Path) -> dict[str, rundir.RunResult]:
    from leaderboard_evidence import EVIDENCE, ROWS

    missing = [row for row in ROWS if not (out / EVIDENCE / row).is_dir()]
    if missing:
        raise SystemExit(f"{out / EVIDENCE}: no evidence of {', '.join(missing)}; "
                         "run benchmarks/leaderboard_evidence.py first")
    return {row: rundir.load_evidence(out / EVIDENCE / row, label=row) for row in ROWS}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="figures")
    args = ap.parse_args(argv)
    table = leaderboard.half_optimism_table(committed_runs(Path(args.out)))
    print(writers.display_table(table))
    paths = writers.write_table(table, Path(args.out), "half_optimism", caption=CAPTION)
    print("written:", *paths.values(), sep="\n  ")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
