"""Did remaking the leaderboard move a conclusion? Each row's committed evidence at a git revision (before the
remake) against the evidence on disk now (after it), paired on the same samples.

    python benchmarks/remake_drift.py --before REV [--out figures]

Per row: UF1 before and after, the paired Δ after − before with its 95 % subject-bootstrap interval (a remake
that only changed float rounding gives intervals around 0), and the row's conclusion against the reference
(the tuned AM3F-FlowNet, as in the leaderboard's Δ column): "better", "worse" or "no detectable effect"
from the interval of Δ, before and after. Rows whose samples or labels differ are refused, not compared.
Reads only committed evidence (after: OUT/runs/leaderboard/<row>/; before: the repository's
figures/runs/leaderboard/ at REV, through ``git archive``) and writes OUT/remake_drift.{md,tex,csv}.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tarfile
import tempfile
from io import BytesIO
from pathlib import Path

import pandas as pd
from leaderboard_evidence import EVIDENCE, REPO, committed_rows  # this folder's script: the same evidence

from am3f.errors import AM3FError
from am3f.results import leaderboard, writers
from am3f.results.stats import compare_runs, format_delta, verdict

CAPTION = ("Did the remake move a conclusion? Each leaderboard row before and after it (same samples, seed 0): "
           "UF1, the paired Δ after − before with its 95 % subject-bootstrap interval, and the row's verdict "
           "against the tuned AM3F-FlowNet (interval of Δ UF1 vs 0) before and after.")


def evidence_at(revision: str, into: Path) -> Path:
    """figures/runs/leaderboard/ as committed at ``revision``, extracted under ``into``; returns its figures/."""
    root = Path("figures")
    folder = (root / EVIDENCE).as_posix()
    try:
        blob = subprocess.run(["git", "-C", str(REPO), "archive", "--format=tar", revision, folder],
                              check=True, capture_output=True).stdout
    except subprocess.CalledProcessError as exc:
        raise AM3FError(f"no {folder} at revision {revision!r}: "
                        f"{exc.stderr.decode(errors='replace').strip().splitlines()[-1]}") from None
    with tarfile.open(fileobj=BytesIO(blob)) as tar:
        tar.extractall(into, filter="data")
    return into / root


def conclusion(row) -> str:
    """A leaderboard row's verdict against the reference, from the interval of its Δ UF1."""
    return "reference" if row["reference"] else verdict((row["delta_uf1_lo"], row["delta_uf1_hi"]))


def drift_table(before: dict, after: dict) -> list[dict]:
    rows_before = leaderboard.leaderboard_rows(before).set_index("variant")
    rows_after = leaderboard.leaderboard_rows(after).set_index("variant")
    out = []
    for label in after:
        moved = compare_runs(after[label], before[label])  # refuses other samples or labels
        b, a = rows_before.loc[label], rows_after.loc[label]
        holdout = [r["holdout_text"].split(" ")[0] for r in (b, a)]
        out.append({"Row": label, "UF1 before": f"{b['uf1']:.4f}", "UF1 after": f"{a['uf1']:.4f}",
                    "Δ UF1 after − before": format_delta(moved["delta_uf1"], moved["delta_uf1_ci95"])
                    + f", p {moved['p_uf1']:.3f}",
                    "Hold-out UF1 before → after": " → ".join(holdout),
                    "vs AM3F-FlowNet, tuned: before": conclusion(b), "after": conclusion(a),
                    "moved": "" if conclusion(b) == conclusion(a) else "YES"})
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--before", required=True, help="the git revision whose committed evidence precedes the remake")
    ap.add_argument("--out", default="figures")
    args = ap.parse_args(argv)
    out = Path(args.out)
    try:
        after = committed_rows(out)
        with tempfile.TemporaryDirectory() as tmp:
            before = committed_rows(evidence_at(args.before, Path(tmp)))
            table = pd.DataFrame(drift_table(before, after))
    except AM3FError as exc:
        print(f"remake_drift: {exc}", file=sys.stderr)
        return 2
    print(writers.display_table(table))
    moved = table[table["moved"] == "YES"]["Row"].tolist()
    print("conclusions moved:", ", ".join(moved) if moved else "none")
    paths = writers.write_table(table, out, "remake_drift", caption=CAPTION)
    print("written:", *paths.values(), sep="\n  ")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
