"""The evidence behind figures/leaderboard.*: every row's run, committed, and the table rebuilt from it.

    python benchmarks/leaderboard_evidence.py --runs OUT/runs [--out figures]   # after the leaderboard profile
    python benchmarks/leaderboard_evidence.py --from-evidence [--out figures]   # from figures/runs/ alone

``--runs``: the runs folder of ``am3f reproduce --profile leaderboard --data ../shared/data/megc2019-composite``.
The board's runs are found there exactly as notebook 09 finds them (:func:`am3f.results.leaderboard.board_runs` with
the profile's parameters and the committed tunings; nothing is trained when they are all there), and each
one's config.json, run.json and predictions.csv (ids, subjects, labels, predictions and class scores: no
image content) plus, where the run recorded per-epoch test scores, the oracle's per-sample predictions
(``oracle_predictions.csv``, for the table's Oracle column) are copied under OUT/runs/leaderboard/<row>/.
Then leaderboard.md/.tex/.csv and the dot plot leaderboard.png/.pdf are written from that evidence alone;
``--from-evidence`` does only this second step, the tables byte for byte (tests/test_leaderboard_evidence.py).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from am3f.app.reproduce import LEADERBOARD_FULL, TUNED_FULL
from am3f.errors import AM3FError
from am3f.protocol import run_folder as rundir
from am3f.results import leaderboard, writers

REPO = Path(__file__).resolve().parents[1]
EVIDENCE = Path("runs") / "leaderboard"
# the rows in the order notebook 09 builds them: tuned architectures, their ensemble, then the variants
ROWS = tuple(f"{a}-tuned" for a in TUNED_FULL) + ("ensemble",) + tuple(LEADERBOARD_FULL)


def save(runs_dir: Path, data_root: Path, dest: Path) -> None:
    from am3f.data.dataset import load_dataset

    data = load_dataset(data_root)
    if data.synthetic:
        raise AM3FError(f"{data_root}: the leaderboard's evidence is made on the real composite set only")
    found = leaderboard.board_runs(data, runs_dir, variants=LEADERBOARD_FULL, tuned=TUNED_FULL,
                                   tuning_dir=REPO / "figures" / "tuning", seeds=[0])
    if tuple(found) != ROWS:
        raise AM3FError(f"the board's rows changed ({', '.join(found)}): update ROWS")
    for label, path in found.items():
        run = rundir.load_run(path)
        if not run.complete:
            raise AM3FError(f"{path}: row {label} is a partial run; finish the leaderboard profile first")
        rundir.save_evidence(run, dest / label)
        oracle = leaderboard.oracle_predictions(run)
        if oracle is not None:
            oracle.to_csv(dest / label / leaderboard.ORACLE_FILE, index=False)


def committed_rows(out: Path) -> dict[str, rundir.RunResult]:
    """Every row's run, read from OUT/runs/leaderboard/<row>/ alone (also benchmarks/half_optimism.py)."""
    missing = [label for label in ROWS if not (out / EVIDENCE / label).is_dir()]
    if missing:
        raise AM3FError(f"{out / EVIDENCE}: no evidence of {len(missing)} row(s), e.g. {missing[0]}; make it with "
                        "`python benchmarks/leaderboard_evidence.py --runs OUT/runs` first")
    return {label: rundir.load_evidence(out / EVIDENCE / label, label=label) for label in ROWS}


def write_table(out: Path) -> list[Path]:
    """leaderboard.md/.tex/.csv and the dot plot leaderboard.png/.pdf (notebook 09's), from the evidence alone."""
    rows = committed_rows(out)
    table = leaderboard.leaderboard_table(rows)
    paths = list(writers.write_table(table, out, "leaderboard", caption=leaderboard.LEADERBOARD_CAPTION).values())
    import matplotlib

    matplotlib.use("Agg")   # a script: no display
    import matplotlib.pyplot as plt

    fig = leaderboard.leaderboard_figure(leaderboard.leaderboard_rows(rows))
    paths += writers.save_figure(fig, out, "leaderboard")
    plt.close(fig)
    return paths


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", default="", help="the runs folder of `am3f reproduce --profile leaderboard` (OUT/runs)")
    ap.add_argument("--data", default=str(REPO.parent / "shared" / "data" / "megc2019-composite"),
                    help="the real composite set those runs were made on")
    ap.add_argument("--out", default="figures")
    ap.add_argument("--from-evidence", action="store_true", help="rebuild the table from OUT/runs/leaderboard/ alone")
    args = ap.parse_args(argv)
    out = Path(args.out)
    try:
        if not args.from_evidence:
            if not args.runs:
                raise AM3FError("give --runs (the leaderboard profile's OUT/runs), or --from-evidence")
            if not Path(args.runs).is_dir():
                raise AM3FError(f"{args.runs}: no such runs folder")
            save(Path(args.runs), Path(args.data), out / EVIDENCE)
        paths = write_table(out)
    except (AM3FError, OSError) as exc:
        print(f"leaderboard_evidence: {exc}", file=sys.stderr)
        return 2
    print("written:", *paths, sep="\n  ")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
