"""The ``am3f`` command line: the argument parser and ``main``. What each command does is in
:mod:`am3f.app.commands`. Every command has ``--help``; user errors print one line and exit 2."""

from __future__ import annotations

import argparse
import os
import sys

from am3f.app import commands
from am3f.errors import AM3FError
from am3f.flow.optical_flow import METHODS  # numpy and PIL, no torch
from am3f.models.registry import ARCHITECTURES  # plain data: the parser imports no torch
from am3f.utils import PROGRESS_ENV

DATA_HELP = "dataset directory in the composite layout (default: $AM3F_DATA, else the embedded synthetic set)"


def _model_name(value: str) -> str:
    """--model: a registry name, an installed entry point or a factory reference (checked later, in
    one line, when the model is first built)."""
    from am3f.models.user_model import entry_points, is_reference

    if value in ARCHITECTURES or is_reference(value) or value in entry_points():
        return value
    raise argparse.ArgumentTypeError(f"unknown model {value!r} (choose from {', '.join(ARCHITECTURES)}, an "
                                     f"installed am3f.models entry point, or PATH.py:FACTORY)")


def _add_train_options(p: argparse.ArgumentParser) -> None:
    from am3f.training.recipe import DEFAULT_TRAIN as d

    p.add_argument("--model", type=_model_name, default=None, metavar="MODEL",
                   help=f"architecture: {', '.join(ARCHITECTURES)} (`am3f models` lists them), an installed "
                        "package's (entry point group am3f.models), or your own as PATH.py:FACTORY or "
                        "package.module:FACTORY (docs/your-model.md); default: the variant's, else am3f")
    p.add_argument("--variant", default=None,
                   help="named variant (list: `am3f variants`; default: the model's own, e.g. full for am3f, "
                        "rcn for rcn; <arch>-authors: the peer under its authors' published recipe)")
    g = p.add_argument_group("schedule overrides",
                             "default: the declared schedule of the variant (am3f.training.recipe.TrainConfig)")
    g.add_argument("--epochs", type=int, default=None, metavar="N", help=f"training epochs (default: {d.epochs})")
    g.add_argument("--lr", type=float, default=None, metavar="LR",
                   help=f"peak learning rate of the warm-up + cosine schedule (default: {d.lr:g})")
    g.add_argument("--batch-size", type=int, default=None, metavar="N", help=f"batch size (default: {d.batch_size})")
    g.add_argument("--weight-decay", type=float, default=None, metavar="WD",
                   help=f"AdamW weight decay (default: {d.weight_decay:g})")
    g.add_argument("--tau", type=float, default=None,
                   help=f"logit-adjustment strength, 0 = plain cross-entropy (default: {d.tau:g})")
    g.add_argument("--weight-power", type=float, default=None, metavar="P",
                   help=f"class-prior weight power, 0 = no weights (default: {d.weight_power:g})")
    g.add_argument("--ema", type=float, default=None, metavar="DECAY",
                   help=f"EMA decay of the weights, 0 = off (default: {d.ema:g})")
    g.add_argument("--n-models", type=int, default=None, metavar="N",
                   help=f"models per fold, probabilities averaged (default: {d.n_models})")
    p.add_argument("--threads", type=int, default=None, metavar="N",
                   help="torch CPU threads of this process (default: 1; an execution setting, not part of the "
                        "recipe; local workers always run one thread each)")
    g.add_argument("--fold-group", type=int, default=None, metavar="N",
                   help=f"LOSO folds trained together in one batched computation (default: the variant's "
                        f"declared group, measured per architecture: {d.fold_group} for AM3F-FlowNet, 1 where "
                        f"batching does not pay; docs/design-choices.md; part of the recipe: results change "
                        f"slightly with it)")


def _add_run_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", default=None, help=DATA_HELP)
    p.add_argument("--out", required=True, help="run directory (created; rerunning resumes unfinished folds)")
    p.add_argument("--folds", default=None,
                   help="run only these folds, e.g. 0-9,12 (fold k = k-th subject in sorted order); "
                        "separate processes may share one --out, then `am3f score` merges. Folds train in "
                        "groups (--fold-group): a group is trained whole, and its folds not asked for are kept "
                        "in OUT/spare/ for a later shard, which then takes them instead of training again")
    p.add_argument("--device", default="auto", help="auto (CUDA when present, default), cpu or cuda[:N]")


def _add_quiet(p: argparse.ArgumentParser) -> None:
    p.add_argument("--quiet", action="store_true",
                   help="no progress reports (default: a bar on a terminal; elsewhere, e.g. a log file or a "
                        "notebook, a line at most every 30 s with the epoch or item, elapsed time and ETA)")


def build_parser() -> argparse.ArgumentParser:
    from am3f import __version__

    parser = argparse.ArgumentParser(prog="am3f", description="am3f: the reproducible companion to AM3F-FlowNet "
                                     "(micro-expression recognition). Every command has --help; user errors print "
                                     "one line and exit with code 2.")
    parser.add_argument("--version", action="version", version=f"am3f {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    p = sub.add_parser("evaluate-weights", help="evaluate published per-subject weights as a LOSO run",
                       description="Each subject's published model predicts that subject's samples; "
                                   "the result is an ordinary run directory.")
    p.add_argument("--model", default="ststnet", choices=["ststnet"],
                   help="architecture of the weights (default: ststnet)")
    p.add_argument("--weights", required=True, help="folder with one <subject>.pth per subject")
    _add_run_options(p)
    p.set_defaults(func=commands.cmd_evaluate_weights)

    p = sub.add_parser("data", help="check a composite folder: `am3f data verify DIR`",
                       description="Is my data the same? Compares a composite-layout folder with the manifest "
                                   "shipped in the package (per sample: id, dataset, subject, label, SHA-256 of "
                                   "the PNG, per-channel mean) of the set every committed real table was made "
                                   "from. Exit 0: identical; 1: differences (each named by sample); 2: unusable "
                                   "input.")
    data_sub = p.add_subparsers(dest="data_command", required=True, metavar="ACTION",
                                help="verify: compare a folder with the manifest")
    v = data_sub.add_parser("verify", help="compare DIR with the manifest, sample by sample")
    v.add_argument("folder", metavar="DIR", help="composite-layout folder (labels CSV + flows/)")
    v.add_argument("--manifest", default=None, metavar="CSV",
                   help="another manifest (written by am3f.data.manifest.build_manifest; default: the shipped one)")
    v.add_argument("--compare-with", default=None, metavar="REFERENCE_DIR",
                   help="also correlate DIR's flows, channel by channel, with this composite folder's (e.g. a "
                        "folder made by `am3f extract` against the official flow images)")
    v.set_defaults(func=commands.cmd_data_verify)

    p = sub.add_parser("score", help="MEGC2019 UF1 / UAR / accuracy of a run directory",
                       description="Pools all folds (and merges folds written by separate processes), prints "
                                   "composite and per-dataset scores, mean ± std over seeds and the 95 % "
                                   "subject-bootstrap interval [lo, hi] (subjects resampled within each dataset, "
                                   "2000 replicates, fixed seed; see am3f.results.stats), writes metrics.json.")
    p.add_argument("run_dir", help="run directory written by `am3f loso` or `am3f evaluate-weights`")
    p.set_defaults(func=commands.cmd_score)

    p = sub.add_parser("compare", help="paired comparison of two runs on the same samples (Δ, interval, p)",
                       description="Δ = RUN_A − RUN_B of UF1 and UAR (composite and per dataset) with the 95 % "
                                   "paired subject-bootstrap interval (the same resampled subjects for both runs) "
                                   "and a two-sided bootstrap p-value, p = min(1, 2 min(1 + #{Δ* <= 0}, "
                                   "1 + #{Δ* >= 0}) / (B + 1)). The runs must hold the same samples and labels; "
                                   "their seeds may differ (each run scores as the mean over its seeds).")
    p.add_argument("run_a", metavar="RUN_A", help="run directory A, or a committed row's evidence folder "
                                                  "(e.g. figures/runs/leaderboard/rcn)")
    p.add_argument("run_b", metavar="RUN_B", help="run directory B (Δ = A − B), or an evidence folder")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    p.set_defaults(func=commands.cmd_compare)

    p = sub.add_parser("reproduce", help="run every companion notebook (papermill) and collect figures and tables",
                       description="Executes the notebooks in order with the profile's parameters; executed "
                                   "notebooks go to OUT, figures (PNG + PDF) and tables (Markdown + LaTeX) to "
                                   "OUT/figures, LOSO runs to OUT/runs (reused by configuration). quick: all "
                                   "notebooks in minutes on 2 CPU cores (few folds and epochs, one seed); full: "
                                   "notebooks 00-08 on every fold, 5 seeds for the main model and every ablation "
                                   "variant; leaderboard: notebook 09, every architecture tuned on training subjects "
                                   "only, their ensemble, the authors' recipes that fit a CPU and our declared "
                                   "schedule (one seed per row).")
    p.add_argument("--data", default=None, help=DATA_HELP)
    p.add_argument("--reference", default=None, metavar="DIR",
                   help="real reference material for the checks of notebooks 01 and 03: a folder holding "
                        "ststnet-reference/ (published STSTNet weights) and real-onset-apex/ (default: the folder "
                        "above --data when it holds them; none without --data)")
    p.add_argument("--profile", choices=["quick", "full", "leaderboard"], default=None,
                   help="quick: minutes, synthetic-sized; full: notebooks 00-08, 5 seeds, about 92 min on 2 cores; "
                        "leaderboard: notebook 09, every architecture tuned, authors' and declared, one seed "
                        "(default: quick)")
    p.add_argument("--out", default=None,
                   help="output folder (default: reproduce-<profile> inside $AM3F_OUT, else inside the "
                        "checkout's git-ignored out/)")
    p.add_argument("--workers", type=int, default=None, metavar="N",
                   help="local worker processes for the LOSO runs (default: every usable core)")
    p.add_argument("--scheduler", default=None, metavar="ADDRESS",
                   help="train the LOSO runs on a Dask cluster (tcp://HOST:PORT) instead; the notebooks run here")
    p.add_argument("--model", type=_model_name, default=None, metavar="MODEL",
                   help="the architecture notebooks 02-08 train (their `model` parameter): a registry name, or "
                        "your own PATH.py:FACTORY / package.module:FACTORY (default: am3f)")
    p.add_argument("--recipe", default=None, metavar="RECIPES_JSON",
                   help="recipes.json of `am3f tune` for the model of notebooks 02-08 (a cross-fitted run)")
    p.add_argument("--datasets", default=None, metavar="NAME[,NAME]",
                   help="notebooks 02-08 keep only these source databases (their `datasets` parameter), e.g. samm: "
                        "LOSO inside one database (default: every database of --data)")
    p.add_argument("--seeds", type=int, nargs="+", default=None, metavar="SEED",
                   help="the seeds of every run instead of the profile's, e.g. --seeds 0 1 2 3 4")
    p.add_argument("--notebooks", nargs="*", default=None, metavar="NAME",
                   help="only these notebooks, e.g. 02_train_loso 03_results_tables (default: all, in order)")
    p.add_argument("--in-place", action="store_true",
                   help="execute notebooks/*.ipynb with their own default parameters (embedded SYNTHETIC set, "
                        "CI-sized, real data switched off) and write them back with their outputs, volatile "
                        "metadata stripped: the committed outputs that strict nbval checks")
    _add_quiet(p)
    p.set_defaults(func=commands.cmd_reproduce)

    p = sub.add_parser("flow", help="optical flow (u, v, strain) between an onset and an apex frame",
                       description="Reads ONSET and APEX (jpg/png/bmp; or one 2-frame GIF = onset, apex), trims "
                                   "a flat figure canvas, crops the face found on the onset (same box for both), "
                                   "and writes the flow from onset to apex: +u = motion right, +v = motion down. "
                                   ".png: 3-channel flow image (R=u, G=v, B=strain) at --size, like the "
                                   "composite set; .npz: float32 u, v, strain in pixels at the crop's "
                                   "resolution, un-normalised.")
    p.add_argument("onset", help="onset frame, or a GIF whose frames 0 and 1 are onset and apex")
    p.add_argument("apex", nargs="?", default=None, help="apex frame (omit when ONSET is a 2-frame GIF)")
    p.add_argument("--out", required=True, help="FLOW.png (normalised image) or FLOW.npz (raw arrays)")
    p.add_argument("--method", choices=METHODS, default="tvl1",
                   help="tvl1 (default, most accurate), dis (fastest), farneback")
    p.add_argument("--size", type=int, default=28, help="side of the .png flow image (default 28)")
    p.add_argument("--normalise", choices=["minmax", "fixed"], default="minmax",
                   help="minmax: each channel stretched to 0..255 (the composite set's way, default); "
                        "fixed: magnitude kept, +-2 px -> 0/255, zero motion -> 128")
    p.add_argument("--no-face-detect", action="store_true",
                   help="frames are already cropped faces: skip the Haar face detector")
    p.add_argument("--margin", type=float, default=0.1,
                   help="margin added on each side of the detected face box, as a fraction of it (default 0.1)")
    p.add_argument("--no-trim", action="store_true",
                   help="do not trim a flat border (figure-capture canvas) before face detection")
    p.set_defaults(func=commands.cmd_flow)

    p = sub.add_parser("extract", help="turn a licensed raw CASME II / SAMM / SMIC-HS copy into flow images",
                       description="Reads the dataset's coding spreadsheet (.xlsx needs openpyxl; a .csv export "
                                   "works too) and frames, keeps clips with a MEGC2019 3-class label, computes "
                                   "onset->apex flow and writes OUT/flows/<sub>_<clip> .png plus OUT/labels.csv. "
                                   "Resumable: a rerun skips finished clips; several datasets may share one OUT. "
                                   "SMIC-HS has no apex labels: the apex is spotted (largest motion vs onset).")
    p.add_argument("--dataset", required=True, choices=["casme2", "samm", "smic"],
                   help="which raw dataset --root holds")
    p.add_argument("--root", required=True,
                   help="dataset folder: CASME II: spreadsheet + Cropped/subXX/EPxx_xx/; SAMM: spreadsheet + "
                        "SAMM/<subject>/<clip>/; SMIC: HS/sN/micro/<emotion>/<clip>/")
    p.add_argument("--out", required=True, help="output folder in the composite layout")
    p.add_argument("--workers", type=int, default=None,
                   help="parallel processes (default: number of CPU cores, at most 4)")
    p.add_argument("--sheet", default=None, help="coding spreadsheet (default: the .xlsx/.csv in --root)")
    p.add_argument("--method", choices=METHODS, default="tvl1", help="flow method (default tvl1)")
    p.add_argument("--size", type=int, default=28, help="side of the flow images (default 28)")
    p.add_argument("--face-detect", choices=["auto", "on", "off"], default="auto",
                   help="auto (default): off for CASME II (Cropped frames), on for SAMM and SMIC")
    p.add_argument("--max-side", type=int, default=384,
                   help="downscale face crops larger than this (px) before the flow, for speed (default 384, "
                        "which keeps CASME II and SMIC crops at full size; 0: never)")
    p.set_defaults(func=commands.cmd_extract)

    p = sub.add_parser("synth", help="generate the SYNTHETIC micro-expression set (procedural faces)",
                       description="Procedural faces, one identity per subject; apex = onset warped by an "
                                   "action-unit-like motion (positive: lip-corner puller, negative: brow lowerer / "
                                   "lip-corner depressor, surprise: brow raiser + jaw drop). Writes frames, "
                                   "ground-truth flow, 28x28 flow images and labels.csv in the composite layout. "
                                   "NOT real data.")
    p.add_argument("--out", required=True, help="output folder (must not exist or be empty)")
    p.add_argument("--subjects", type=int, default=16, help="number of subjects (default 16)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0; same seed = same set)")
    p.add_argument("--frame-size", type=int, default=112, help="side of the generated frames in px (default 112)")
    p.set_defaults(func=commands.cmd_synth)

    p = sub.add_parser("loso", help="train and evaluate a model with leave-one-subject-out",
                       description="One fold per subject: fit on the other subjects with the fixed, declared "
                                   "schedule, predict the held-out subject at the end. Writes a run directory "
                                   "(config.json records the full model and training config); score it with "
                                   "`am3f score RUN_DIR` (mean ± std over seeds).")
    _add_run_options(p)
    p.add_argument("--seeds", type=int, nargs="+", default=[0], help="training seeds (default 0)")
    p.add_argument("--workers", type=int, default=None, metavar="N",
                   help="local worker processes, each single-threaded (default: every usable core; 1 on CUDA)")
    p.add_argument("--scheduler", default=None, metavar="ADDRESS",
                   help="run the folds on a Dask distributed cluster instead, e.g. tcp://HOST:8786 (needs "
                        "`pip install 'am3f[cluster]'`); the run directory is written here")
    p.add_argument("--datasets", default=None, metavar="NAME[,NAME]",
                   help="keep only these source databases' samples, e.g. samm or casme2,smic: LOSO inside one "
                        "database (the single-database protocol; config.json records it). Default: every database "
                        "of --data (on the composite set, the MEGC2019 composite protocol)")
    p.add_argument("--split", choices=["subject", "dataset"], default="subject",
                   help="subject: leave-one-subject-out (default); dataset: the cross-database protocol, one fold "
                        "per source dataset, trained on the other datasets (3 folds on the composite set)")
    p.add_argument("--no-epoch-scores", action="store_true",
                   help="do not record per-epoch held-out probabilities (kept for the protocol audit only)")
    p.add_argument("--recipe", default=None, metavar="RECIPES_JSON",
                   help="recipes.json written by `am3f tune`: each fold trains with the recipe tuned on the subject "
                        "half that does NOT hold its test subject (cross-fitted; config.json records both)")
    _add_train_options(p)
    _add_quiet(p)
    p.set_defaults(func=commands.cmd_loso)

    p = sub.add_parser("tune", help="honest tuning: choose a recipe per subject half, cross-fitted",
                       description="Two subject halves: A = the development half (every second subject per "
                                   "dataset), B = the rest. In each half, every candidate of the grid is scored by "
                                   "subject-grouped 5-fold CV inside that half only; the half's choice is the best "
                                   "mean UF1 over --seeds (ties: first in grid order). Writes TUNE_DIR/recipes.json "
                                   "for `am3f loso --recipe` (a fold in half A trains with B's choice and the "
                                   "reverse). Resumable: rerun the same command (a cached candidate computed from "
                                   "other data, model code, seeds or halves is refused).")
    p.add_argument("--model", type=_model_name, default=None, metavar="MODEL",
                   help="architecture (as for `am3f loso`; default: the variant's, else am3f)")
    p.add_argument("--variant", default=None, help="named variant whose recipe is the base (default: the model's own)")
    p.add_argument("--data", default=None, help=DATA_HELP)
    p.add_argument("--out", required=True, metavar="TUNE_DIR", help="tuning directory (created; rerun resumes)")
    p.add_argument("--grid", nargs="+", action="extend", default=None, metavar="KEY=V1,V2",
                   help="search space as recipe fields, e.g. lr=1e-2,1e-3 epochs=20,60 tau=0,1 (default: the "
                        "declared space every architecture gets: lr ours and its authors', epochs 20/60, tau 1/0); "
                        "a key given twice is an error")
    p.add_argument("--max-candidates", type=int, default=None, metavar="N",
                   help="run a grid of more than 64 candidates (up to N); without it a larger grid is refused")
    p.add_argument("--seeds", type=int, nargs="+", default=[0], help="training seeds of each CV (default 0)")
    p.add_argument("--workers", type=int, default=None, metavar="N",
                   help="local worker processes (default: every usable core; 1 on CUDA)")
    p.add_argument("--scheduler", default=None, metavar="ADDRESS", help="a Dask scheduler to run the folds on")
    p.add_argument("--device", default="auto", help="auto (CUDA when present, default), cpu or cuda[:N]")
    _add_quiet(p)
    p.set_defaults(func=commands.cmd_tune)

    p = sub.add_parser("train", help="train a model on ALL subjects and save a checkpoint",
                       description="Fixed schedule on every subject of --data; the checkpoint holds the model "
                                   "config, weights, class names and input normalisation.")
    p.add_argument("--data", default=None, help=DATA_HELP)
    p.add_argument("--out", required=True, help="checkpoint file, e.g. model.pt")
    p.add_argument("--seed", type=int, default=0, help="training seed (default 0)")
    p.add_argument("--device", default="auto", help="auto (CUDA when present, default), cpu or cuda[:N]")
    _add_train_options(p)
    _add_quiet(p)
    p.set_defaults(func=commands.cmd_train)

    p = sub.add_parser("predict", help="class probabilities of flow images with a trained checkpoint",
                       description="FLOW: a 3-channel flow PNG (R=u, G=v, B=strain) of the checkpoint's "
                                   "size, like the composite set's flows/, or a .npz of raw u, v, strain written by "
                                   "`am3f flow` (turned into the same image). Or --onset/--apex frames: the face is "
                                   "cropped and the flow image computed as `am3f flow` does.")
    p.add_argument("--checkpoint", required=True, help="checkpoint written by `am3f train`")
    p.add_argument("images", nargs="*", metavar="FLOW",
                   help="flow images (.png, R=u G=v B=strain) or raw flow files (.npz from `am3f flow`)")
    p.add_argument("--onset", default=None, help="onset frame (or a 2-frame GIF): predict from frames instead")
    p.add_argument("--apex", default=None, help="apex frame (with --onset)")
    p.add_argument("--method", default="tvl1", choices=METHODS,
                   help="optical flow method for --onset/--apex (default tvl1)")
    p.add_argument("--no-face-detect", action="store_true", help="frames are already cropped to the face")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.add_argument("--device", default="auto", help="auto (CUDA when present, default), cpu or cuda[:N]")
    p.set_defaults(func=commands.cmd_predict)

    p = sub.add_parser("variants", help="list the named model variants (ablations, peers, authors' recipes)",
                       description="Every named variant of AM3F-FlowNet, STSTNet and the peers with its parameter "
                                   "count and what it changes; use one with `am3f loso --variant NAME`.")
    p.set_defaults(func=commands.cmd_variants)

    p = sub.add_parser("models", help="list every architecture: parameters, input, source",
                       description="AM3F-FlowNet, STSTNet and the peers of am3f.models.peers (Dual-Inception, "
                                   "OFF-ApexNet, RCN, HTNet and the declared reduced htnet-small), with "
                                   "their parameter count (checked against the published model), what "
                                   "the authors' model is fed and where its public code is. With --model: that one "
                                   "model; your own (PATH.py:FACTORY, module:FACTORY, an entry point) with its "
                                   "parameters, the contract check's verdict and where its code comes from.")
    p.add_argument("--model", type=_model_name, default=None, metavar="MODEL",
                   help="show only this model: a registry name, an installed entry point or PATH.py:FACTORY")
    p.set_defaults(func=commands.cmd_models)

    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    before = os.environ.get(PROGRESS_ENV)
    if getattr(args, "quiet", False):
        os.environ[PROGRESS_ENV] = "0"  # this process, its workers and the kernels of reproduce's notebooks
    try:
        code = args.func(args)
    except AM3FError as exc:
        print(f"am3f {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted; rerun the same command to resume", file=sys.stderr)
        return 130
    finally:
        if before is None:  # main() called from Python (tests, notebooks) leaves the environment as it was
            os.environ.pop(PROGRESS_ENV, None)
        else:
            os.environ[PROGRESS_ENV] = before
    return code if isinstance(code, int) else 0  # a command may report a finding by its exit code


def command() -> None:
    """The ``am3f`` program (console script and ``python -m am3f``): :func:`main`, then a quick exit.
    Once the command is done and every atexit handler has run (multiprocessing's clean-up, logging), the
    process ends without the interpreter tearing torch's modules down one by one: 0.5 s of a short
    ``am3f loso`` (docs/engine.md). Not where another thread still works: then the ordinary exit, which
    waits for it. A reader that leaves early (a pipe into ``head``) ends it quietly. ``main()`` called from
    Python (tests, notebooks) returns as ever."""
    import atexit
    import threading

    try:
        code = main()
    except BrokenPipeError:  # the reader left (`am3f variants | head -1`): stop quietly, as a shell tool does
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        code = 1
    if any(t.is_alive() and not t.daemon for t in threading.enumerate() if t is not threading.main_thread()):
        sys.exit(code)
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed pipe (`am3f ... | head`): nothing left to say there
            pass
    os._exit(code)


if __name__ == "__main__":
    command()
