"""The ``am3f`` command line. Every command has ``--help``; user errors print one line and exit 2."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from .errors import AM3FError

DATA_HELP = "dataset directory in the composite layout (default: $AM3F_DATA, else the embedded synthetic set)"


# ----------------------------------------------------------------------------- evaluate-weights
def cmd_evaluate_weights(args: argparse.Namespace) -> None:
    from .data import load_dataset
    from .loso import run_loso
    from .ststnet import PublishedWeightsRunner, check_weights_dir
    from .utils import pick_device

    if args.model != "ststnet":
        raise AM3FError(f"no published weights reader for model {args.model!r} (available: ststnet)")
    data = load_dataset(args.data)
    weights = check_weights_dir(args.weights, data.subject_ids)
    device = pick_device(args.device)
    print(data.describe())
    config = {"kind": "evaluate-weights", "model": args.model, "weights": str(Path(weights).resolve())}
    run_loso(data, PublishedWeightsRunner(weights, device), args.out, seeds=[0], config=config,
             device=str(device), folds=_folds(args, data))
    print(f"predictions written to {Path(args.out) / 'predictions.csv'}; score them with: am3f score {args.out}")


# ----------------------------------------------------------------------------- score
def cmd_score(args: argparse.Namespace) -> None:
    from .loso import load_predictions
    from .metrics import format_summary, summarize

    run = Path(args.run_dir)
    preds = load_predictions(run)
    config = json.loads((run / "config.json").read_text())
    summary = summarize(preds)
    run_info = json.loads((run / "run.json").read_text())
    summary["run"] = {"dir": str(run), "complete": run_info["complete"], "folds_done": run_info["folds_done"],
                      "synthetic": bool(config.get("dataset", {}).get("synthetic")),
                      "wall_s_per_seed": run_info["wall_s_per_seed"]}
    (run / "metrics.json").write_text(json.dumps(summary, indent=2))
    if summary["run"]["synthetic"]:
        print("[SYNTHETIC DATA] these scores are on the generated synthetic set, not on real micro-expressions")
    if not run_info["complete"]:
        print(f"warning: run is incomplete (folds done per seed: {run_info['folds_done']}); "
              f"scores cover finished folds only")
    print(format_summary(summary))
    print(f"wrote {run / 'metrics.json'}")


# ----------------------------------------------------------------------------- shared options
def _folds(args: argparse.Namespace, data) -> list[int]:
    from .data import parse_index_ranges

    return parse_index_ranges(getattr(args, "folds", None), len(data.subject_ids))


def _add_run_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", default=None, help=DATA_HELP)
    p.add_argument("--out", required=True, help="run directory (created; rerunning resumes unfinished folds)")
    p.add_argument("--folds", default=None,
                   help="run only these folds, e.g. 0-9,12 (fold k = k-th subject in sorted order); "
                        "separate processes may share one --out, then `am3f score` merges")
    p.add_argument("--device", default="auto", help="auto (CUDA when present), cpu or cuda[:N]")


def build_parser() -> argparse.ArgumentParser:
    from . import __version__

    parser = argparse.ArgumentParser(prog="am3f", description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--version", action="version", version=f"am3f {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    p = sub.add_parser("evaluate-weights", help="evaluate published per-subject weights as a LOSO run",
                       description="Each subject's published model predicts that subject's samples; "
                                   "the result is an ordinary run directory.")
    p.add_argument("--model", default="ststnet", choices=["ststnet"], help="architecture of the weights")
    p.add_argument("--weights", required=True, help="folder with one <subject>.pth per subject")
    _add_run_options(p)
    p.set_defaults(func=cmd_evaluate_weights)

    p = sub.add_parser("score", help="MEGC2019 UF1 / UAR / accuracy of a run directory",
                       description="Pools all folds (and merges folds written by separate processes), prints "
                                   "composite and per-dataset scores, mean ± std over seeds, writes metrics.json.")
    p.add_argument("run_dir", help="run directory written by `am3f loso` or `am3f evaluate-weights`")
    p.set_defaults(func=cmd_score)

    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        args.func(args)
    except AM3FError as exc:
        print(f"am3f {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted; rerun the same command to resume", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
