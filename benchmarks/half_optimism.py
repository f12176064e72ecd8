"""How optimistic is the development half? Per committed real-data run: UF1 on all 68 subjects, on the
hold-out half (34 subjects that never informed a design or schedule decision: the clean score) and on the
development half A (which chose AM3F-FlowNet's design and our declared schedule), and A − hold-out with its
95 % subject-bootstrap interval.

    python benchmarks/half_optimism.py [--out figures]

Reads only the committed evidence (OUT/runs/single_database/<variant>-all/: the composite runs of the
single-database table; OUT/runs/tuned/<arch>-all/: cross-fitted runs), so it regenerates from the repository
alone; writes OUT/half_optimism.{md,tex,csv}.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from am3f.protocol import run_folder as rundir
from am3f.results import leaderboard, writers

ORDER = ("full", "ststnet", "rcn", "offapexnet", "dualinception", "htnet-small")
CAPTION = ("How optimistic is the development half? UF1 on all subjects, on the hold-out half (the clean score) and on "
           "half A (which chose AM3F-FlowNet's design and our declared schedule), A − hold-out with its 95 % "
           "subject-bootstrap interval and p (different subjects: not a paired Δ). Composite LOSO, seed 0, trained on "
           "an H200 GPU (figures/PROVENANCE.md); the CPU rows of leaderboard.md differ by rounding.")


def committed_runs(out: Path) -> dict[str, rundir.RunResult]:
    runs = {}
    for variant in ORDER:
        path = out / "runs" / "single_database" / f"{variant}-all"
        if path.is_dir():
            runs[variant] = rundir.load_evidence(path)
    for path in sorted((out / "runs" / "tuned").glob("*-all")):
        runs[f"{path.name[:-4]}-tuned"] = rundir.load_evidence(path)
    return runs


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
