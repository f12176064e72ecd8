"""The leaderboard's tuned rows on the real composite set: every architecture tuned by the same declared
search on training subjects only (cross-fitted, `am3f tune`), their ensemble, and the recipes beside them.

    python benchmarks/tuned_leaderboard.py [--data DIR] [--tuning figures/tuning] [--runs DIR]
        [--tuned am3f ststnet ...] [--variants ststnet-authors full ...] [--seeds 0]
        [--row-seeds '{"am3f-tuned": [0, 1]}']

Prints those rows of the leaderboard (:func:`am3f.results.leaderboard.board_runs`, the function notebook 09
uses: the written leaderboard is notebook 09's, `am3f reproduce --profile leaderboard`) and writes
OUT/tuning.{md,tex,csv}: per architecture and half, the recipe chosen, its inner-CV UF1 beside our
declared schedule's (the grid's first candidate) and the seconds the tuning took. Tunings missing
from --tuning are made there; runs are ordinary run directories, reused when they exist.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import pandas as pd

from am3f.data.dataset import load_dataset
from am3f.results import leaderboard, writers

TUNED = ("am3f", "ststnet", "rcn", "htnet-small", "offapexnet", "dualinception")


def tuning_table(tuning_dir: Path, archs) -> pd.DataFrame:
    """Per architecture and half: the chosen recipe, its CV UF1, the declared schedule's CV UF1, seconds."""
    from am3f.models.registry import display_name

    rows = []
    for arch in archs:
        tuned = json.loads((tuning_dir / arch / "recipes.json").read_text())
        timing_path = tuning_dir / arch / "timing.json"
        timing = json.loads(timing_path.read_text()) if timing_path.is_file() else {}
        for half, h in tuned["halves"].items():
            best = next(c for c in h["candidates"] if c["overrides"] == h["chosen"])
            measured = timing.get("halves", {}).get(half, [])
            seconds = sum(c["wall_s"] for c in measured)
            workers = sorted({str(c.get("workers", "?")) for c in measured}) or ["?"]
            rows.append({"Method": display_name(tuned["model"]), "Tuned on": f"{half} ({len(h['subjects'])} subjects)",
                         "Chosen": leaderboard.short_recipe(h["chosen"]), "CV UF1 chosen": f"{best['uf1']:.4f}",
                         "CV UF1 declared schedule": f"{h['candidates'][0]['uf1']:.4f}",
                         "Candidates": len(h["candidates"]),
                         "Tuning s (wall)": f"{seconds:.0f} ({'/'.join(workers)} workers)"})
    return pd.DataFrame(rows)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=os.environ.get("AM3F_DATA") or "../shared/data/megc2019-composite")
    ap.add_argument("--tuning", default="figures/tuning")
    ap.add_argument("--runs", default="out/runs")
    ap.add_argument("--tuned", nargs="+", default=list(TUNED))
    ap.add_argument("--variants", nargs="*", default=["ststnet-authors"])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0])
    ap.add_argument("--row-seeds", default="{}", help="JSON {row label: seeds}, e.g. '{\"am3f-tuned\": [0, 1]}'")
    ap.add_argument("--workers", type=int, default=0)
    ap.add_argument("--out", default="figures")
    args = ap.parse_args(argv)
    data = load_dataset(args.data)
    print(data.describe())
    runs = leaderboard.board_runs(data, args.runs, variants=args.variants, tuned=args.tuned, tuning_dir=args.tuning,
                                  seeds=args.seeds, variant_seeds=json.loads(args.row_seeds), workers=args.workers)
    table = leaderboard.leaderboard_table(runs)
    print(writers.display_table(table))
    out = Path(args.out)
    tuning = tuning_table(Path(args.tuning), args.tuned)
    print(writers.display_table(tuning))
    paths = dict(writers.write_table(
        tuning, out, "tuning", synthetic=data.synthetic,
        caption="Cross-fitted tuning: the recipe each half chose by subject-grouped 5-fold CV inside that half, "
                "seed 0; the declared schedule is the grid's first candidate"))
    print("written:", *paths.values(), sep="\n  ")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
