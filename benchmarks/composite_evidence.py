"""The evidence behind the composite tables: results, ablations and the cross-database protocol.

    python benchmarks/composite_evidence.py --runs OUT/runs --cross-runs DIR [--out figures]
    python benchmarks/composite_evidence.py --from-evidence [--out figures]   # from figures/runs/ alone

The runs are those of ``am3f reproduce --profile full`` (OUT/runs: AM3F-FlowNet and every ablation
variant, 5 seeds) and of ``benchmarks/cross_database.py`` (--cross-runs). The first form copies each
complete run's config.json, run.json and predictions.csv (ids, subjects, labels, predictions and class
scores: no image content) under OUT/runs/composite/<variant>/ and OUT/runs/cross_database/<variant>/,
then writes results.*, ablations.* and cross_database.* from that evidence; ``--from-evidence`` rebuilds
the three tables from the committed evidence alone, byte for byte (tests/test_composite_evidence.py).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from am3f.app.reproduce import ABLATION_VARIANTS_FULL
from am3f.errors import AM3FError
from am3f.protocol import run_folder as rundir
from am3f.results import leaderboard, tables, writers

CROSS_VARIANTS = ("full", "ststnet", "rcn", "offapexnet", "htnet-small", "dualinception")
COMPOSITE = Path("runs") / "composite"
CROSS_DATABASE = Path("runs") / "cross_database"


def complete_runs(runs_dir: Path, split: str) -> dict[str, rundir.RunResult]:
    """The complete real-data runs in a runs folder by variant, for one split ('subject' or 'dataset');
    two complete runs of one variant are refused (which one a table used would be a guess)."""
    found: dict[str, rundir.RunResult] = {}
    for path in sorted(p for p in runs_dir.iterdir() if (p / "config.json").is_file()):
        run = rundir.load_run(path)
        dataset = run.config.get("dataset", {})
        if not run.complete or run.synthetic or dataset.get("split", "subject") != split or dataset.get("datasets"):
            continue  # partial, synthetic, another split, or one database only
        variant = str(run.config.get("variant"))
        if variant in found:
            raise AM3FError(f"{runs_dir}: two complete runs of {variant!r} ({found[variant].path.name}, {path.name})")
        found[variant] = run
    return found


def save(runs: dict[str, rundir.RunResult], names: tuple[str, ...], dest: Path) -> None:
    missing = [n for n in names if n not in runs]
    if missing:
        raise AM3FError(f"no complete run of {', '.join(missing)}: train them first (reproduce, cross_database.py)")
    for name in names:
        rundir.save_evidence(runs[name], dest / name)


def load(dest: Path, names: tuple[str, ...]) -> dict[str, rundir.RunResult]:
    return {name: rundir.load_evidence(dest / name, label=name) for name in names}


def write_tables(out: Path) -> list[Path]:
    composite = load(out / COMPOSITE, ABLATION_VARIANTS_FULL)
    cross = load(out / CROSS_DATABASE, CROSS_VARIANTS)
    written = []
    main_run = composite["full"]
    for table, name, caption in (
        (tables.results_table(main_run), "results", tables.results_caption(main_run)),
        (tables.ablation_table(composite, reference="full"), "ablations", tables.ablations_caption(composite)),
        (leaderboard.cross_database_table(cross), "cross_database", leaderboard.CROSS_DATABASE_CAPTION),
    ):
        written += list(writers.write_table(table, out, name, caption=caption).values())
    return written


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", default="", help="the runs folder of `am3f reproduce --profile full` (OUT/runs)")
    ap.add_argument("--cross-runs", default="", help="the runs folder of benchmarks/cross_database.py")
    ap.add_argument("--out", default="figures")
    ap.add_argument("--from-evidence", action="store_true", help="rebuild the tables from OUT/runs/ alone")
    args = ap.parse_args(argv)
    out = Path(args.out)
    try:
        if not args.from_evidence:
            if not (args.runs and args.cross_runs):
                raise AM3FError("give --runs and --cross-runs, or --from-evidence")
            save(complete_runs(Path(args.runs), "subject"), ABLATION_VARIANTS_FULL, out / COMPOSITE)
            save(complete_runs(Path(args.cross_runs), "dataset"), CROSS_VARIANTS, out / CROSS_DATABASE)
        paths = write_tables(out)
    except (AM3FError, OSError) as exc:
        print(f"composite_evidence: {exc}", file=sys.stderr)
        return 2
    print("written:", *paths, sep="\n  ")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
