"""The single-database protocol on the real composite set: leave-one-subject-out inside CASME II, SAMM or
SMIC-HS alone (`am3f loso --datasets NAME`), beside the same database's score from the composite LOSO
(trained on all three databases), paired on the same subjects.

    python benchmarks/single_database.py [--data DIR] [--seeds 0] [--runs DIR] [--device auto] [--out figures]
    python benchmarks/single_database.py --from-evidence     # regenerate the table from figures/runs/ alone

Writes OUT/single_database.{md,tex,csv} and commits its evidence: each run's config.json, run.json and
predictions.csv under OUT/runs/single_database/<variant>-<database|all>/ (ids, labels, predictions, class
scores: no image content), from which `--from-evidence` rebuilds the table byte for byte. Runs are ordinary
run directories RUNS/<variant>-<database|all>, trained when missing, reused when done (resumable).

Every architecture under our declared schedule. No tuned rows: a tuning is cross-fitted over subject
halves, and inside one database a half holds 8 (SMIC-HS) to 14 (SAMM) subjects, under our rule of at
least 20 subjects per half for its 5-fold inner CV (4 subjects per inner fold); see docs/peers.md.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

from am3f.data.dataset import load_dataset, select_datasets
from am3f.protocol import run_folder as rundir
from am3f.protocol.launch import ensure_run
from am3f.results import leaderboard, writers

VARIANTS = ("full", "ststnet", "rcn", "offapexnet", "dualinception", "htnet-small")
DATABASES = ("casme2", "samm", "smic")
EVIDENCE = Path("runs") / "single_database"
CAPTION = ("Single-database LOSO (trained on one database's other subjects) beside the composite LOSO (trained on "
           "all three) scored on the same samples; our declared schedule, last epoch, {seeds}. [95 % subject-bootstrap "
           "interval]; Δ paired on the same subjects, with p. Hold-out = the database's subjects outside the "
           "development half (SMIC-HS: 8 subjects, too few for a reliable interval).")


def run_name(variant: str, database: str) -> str:
    return f"{variant}-{database}"


def make_runs(args: argparse.Namespace) -> dict[str, Path]:
    """{name: run directory} of every (variant, database or 'all'), trained where missing."""
    data = load_dataset(args.data)
    print(data.describe())
    runs = {}
    for variant in args.variants:
        for database in ("all",) + DATABASES:
            name = run_name(variant, database)
            subset = data if database == "all" else select_datasets(data, database)
            t0 = time.perf_counter()
            runs[name] = ensure_run(subset, Path(args.runs) / name, variant=variant, seeds=args.seeds,
                                    device=args.device, show_progress=False)
            print(f"{name:<26} {time.perf_counter() - t0:6.0f} s  -> {runs[name]}", flush=True)
    return runs


def table_of(runs: dict) -> tuple:
    """The display table and its caption, from {name: RunResult}."""
    variants = sorted({n.rsplit("-", 1)[0] for n in runs}, key=lambda v: VARIANTS.index(v) if v in VARIANTS else 99)
    composite = {v: runs[run_name(v, "all")] for v in variants}
    single = {(v, d): runs[run_name(v, d)] for v in variants for d in DATABASES if run_name(v, d) in runs}
    table = leaderboard.single_database_table(composite, single)
    seeds = sorted({s for r in runs.values() for s in r.seeds})
    devices = sorted({d for r in runs.values() for d in r.info.get("devices", [])})
    return table, CAPTION.format(seeds=f"seed(s) {', '.join(map(str, seeds))}, trained on {', '.join(devices)}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=os.environ.get("AM3F_DATA") or "../shared/data/megc2019-composite")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0])
    ap.add_argument("--variants", nargs="+", default=list(VARIANTS))
    ap.add_argument("--runs", default="out/runs-single-database")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--out", default="figures")
    ap.add_argument("--from-evidence", action="store_true",
                    help="rebuild the table from OUT/runs/single_database/ (committed evidence) without any run")
    args = ap.parse_args(argv)
    evidence = Path(args.out) / EVIDENCE
    if args.from_evidence:
        runs = {p.name: rundir.load_evidence(p) for p in sorted(evidence.iterdir()) if p.is_dir()}
    else:
        runs = {n: rundir.load_run(p) for n, p in make_runs(args).items()}
        for name, run in runs.items():
            rundir.save_evidence(run, evidence / name)
    table, caption = table_of(runs)
    print(writers.display_table(table))
    paths = writers.write_table(table, Path(args.out), "single_database", caption=caption)
    print("written:", *paths.values(), sep="\n  ")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
