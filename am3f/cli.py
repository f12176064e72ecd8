"""The ``am3f`` command line. Every command has ``--help``; user errors print one line and exit 2."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from .errors import AM3FError

# the names of am3f.peers.ARCHITECTURES, spelled out so that the parser does not import torch
# (tests/test_peers.py checks that they agree)
MODEL_NAMES = ("am3f", "ststnet", "dualinception", "offapexnet", "rcn", "htnet", "htnet-small")
DATA_HELP = "dataset directory in the composite layout (default: $AM3F_DATA, else the embedded synthetic set)"


# ----------------------------------------------------------------------------- evaluate-weights
def cmd_evaluate_weights(args: argparse.Namespace) -> None:
    from .data import load_dataset
    from .ststnet import evaluate_published_weights
    from .utils import pick_device

    if args.model != "ststnet":
        raise AM3FError(f"no published weights reader for model {args.model!r} (available: ststnet)")
    data = load_dataset(args.data)
    print(data.describe())
    evaluate_published_weights(args.weights, data, args.out, device=pick_device(args.device), folds=_folds(args, data))
    print(f"predictions written to {Path(args.out) / 'predictions.csv'}; score them with: am3f score {args.out}")


# ----------------------------------------------------------------------------- score
def cmd_score(args: argparse.Namespace) -> None:
    from .metrics import format_summary, summarize
    from .rundir import load_run
    from .stats import add_intervals

    path = Path(args.run_dir)
    if not path.exists():
        raise AM3FError(f"{path}: run directory does not exist")
    run = load_run(path)
    summary = add_intervals(summarize(run.predictions), run.predictions)
    summary["run"] = {"dir": str(path), "complete": run.complete, "folds_done": run.info["folds_done"],
                      "synthetic": run.synthetic, "wall_s_per_seed": run.info["wall_s_per_seed"]}
    (path / "metrics.json").write_text(json.dumps(summary, indent=2))
    if run.synthetic:
        print("[SYNTHETIC DATA] these scores are on the generated synthetic set, not on real micro-expressions")
    if not run.complete:
        print(f"warning: run is incomplete (folds done per seed: {run.info['folds_done']}); "
              f"scores cover finished folds only")
    print(format_summary(summary))
    print(f"wrote {path / 'metrics.json'}")


# ----------------------------------------------------------------------------- compare
def cmd_compare(args: argparse.Namespace) -> None:
    from .stats import compare_runs, format_comparison

    for path in (args.run_a, args.run_b):
        if not Path(path).exists():
            raise AM3FError(f"{path}: run directory does not exist")
    result = compare_runs(args.run_a, args.run_b)
    if args.json:
        print(json.dumps(result, indent=2))
        return
    if result["synthetic"]:
        print("[SYNTHETIC DATA] at least one run is on the generated synthetic set, not on real micro-expressions")
    if not result["complete"]:
        print("warning: at least one run is incomplete; the comparison covers finished folds only")
    print(format_comparison(result))


# ----------------------------------------------------------------------------- reproduce
def cmd_reproduce(args: argparse.Namespace) -> None:
    from .reproduce import check_inputs, reproduce, summary_lines

    if args.in_place:
        from .reproduce import execute_in_place

        if args.data or args.reference or args.out or args.profile not in (None, "quick"):
            raise AM3FError("--in-place runs the notebooks' own defaults on the synthetic set: "
                            "no --data, --reference, --out or --profile full")
        timings = execute_in_place(args.notebooks or None)
        print(f"executed in place on the embedded SYNTHETIC set, {sum(timings.values()):.0f} s: "
              + ", ".join(f"notebooks/{n}.ipynb" for n in timings))
        return
    args.profile = args.profile or "quick"
    # every input is checked before a notebook starts, so a bad --data never leaves a half-made OUT
    data_root, shared_dir = check_inputs(args.data, args.reference)
    out = reproduce(data_root, profile=args.profile, out=args.out, notebooks=args.notebooks or None,
                    shared_dir=shared_dir)
    print(f"done: profile {args.profile}, data {data_root or '(embedded SYNTHETIC set)'}"
          + (f", reference material {shared_dir}" if shared_dir else ""))
    for line in summary_lines(out):
        print("  " + line)


# ----------------------------------------------------------------------------- flow / extract / synth
def cmd_flow(args: argparse.Namespace) -> None:
    from .flow import compute_flow, write_flow_npz, write_flow_png
    from .frames import load_pair

    out = Path(args.out)
    if out.suffix.lower() not in (".png", ".npz"):
        raise AM3FError(f"{out}: --out must end in .png (flow image) or .npz (raw u, v, strain)")
    pair = load_pair(args.onset, args.apex, detect=not args.no_face_detect, margin=args.margin,
                     trim=not args.no_trim)
    flow = compute_flow(pair.onset, pair.apex, args.method, names=(args.onset, args.apex or args.onset))
    if out.suffix.lower() == ".png":
        write_flow_png(out, flow, size=args.size, normalise=args.normalise)
    else:
        write_flow_npz(out, flow)
    x, y, w, h = pair.box
    mag = flow.magnitude()
    print(f"{out}: {args.method} flow of the {w}x{h} crop at ({x}, {y}); |flow| mean {mag.mean():.3f} px, "
          f"max {mag.max():.3f} px (+u right, +v down, onset -> apex)")


def cmd_extract(args: argparse.Namespace) -> None:
    import os

    from .extract import extract

    detect = {"auto": None, "on": True, "off": False}[args.face_detect]
    workers = args.workers if args.workers is not None else max(1, min(4, os.cpu_count() or 1))
    if workers < 1:
        raise AM3FError(f"--workers must be at least 1, got {workers}")
    s = extract(args.dataset, args.root, args.out, workers=workers, method=args.method, size=args.size,
                detect=detect, sheet=args.sheet, max_side=args.max_side)
    print(f"{s['dataset']}: {s['n_clips']} clips with a MEGC2019 label; {s['n_done_before']} already done, "
          f"{s['n_new']} new; labels in {s['labels_csv']}")


def cmd_synth(args: argparse.Namespace) -> None:
    from .data import load_flow_dataset
    from .synth import generate_synthetic

    out = generate_synthetic(args.out, n_subjects=args.subjects, seed=args.seed, frame_size=args.frame_size)
    print(load_flow_dataset(out).describe())
    print(f"wrote the SYNTHETIC set to {out} (see {Path(out) / 'README.txt'})")


# ----------------------------------------------------------------------------- loso / train / predict / variants
def _train_overrides(args: argparse.Namespace) -> dict:
    keys = ("epochs", "lr", "batch_size", "weight_decay", "tau", "weight_power", "ema", "n_models", "threads")
    return {k: getattr(args, k, None) for k in keys if getattr(args, k, None) is not None}


def _model_variant(args: argparse.Namespace) -> str:
    from .zoo import ARCHITECTURES, get_variant

    variant = args.variant or ARCHITECTURES[args.model].default_variant
    if args.model == "ststnet" and variant != "ststnet":
        raise AM3FError(f"--model ststnet has no variant {variant!r} (the peer is trained as published)")
    if args.model == "am3f" and variant == "ststnet":
        raise AM3FError("variant 'ststnet' is the peer: use --model ststnet")
    arch = get_variant(variant)[0].arch
    if arch != args.model:
        raise AM3FError(f"variant {variant!r} is of model {arch!r}: use --model {arch} "
                        f"(variants of {args.model}: {', '.join(ARCHITECTURES[args.model].variants)})")
    return variant


def _training_setup(args: argparse.Namespace):
    """(variant, model config, train config, data, device) shared by `loso` and `train`."""
    from .data import load_dataset
    from .train import resolve_variant
    from .utils import pick_device

    variant = _model_variant(args)
    model_cfg, train_cfg = resolve_variant(variant, **_train_overrides(args))
    data = load_dataset(args.data)
    print(data.describe())
    return variant, model_cfg, train_cfg, data, pick_device(args.device)


def cmd_loso(args: argparse.Namespace) -> None:
    from .loso import run_loso
    from .train import TrainRunner, loso_config

    variant, model_cfg, train_cfg, data, device = _training_setup(args)
    config = loso_config(data, variant, **_train_overrides(args))
    print(f"model {args.model} variant {variant}: {config['parameters']:,} parameters; device {device}; "
          f"{train_cfg.epochs} epochs x {train_cfg.n_models} model(s) per fold")
    run_loso(data, TrainRunner(model_cfg, train_cfg, device, record_epochs=not args.no_epoch_scores), args.out,
             seeds=args.seeds, config=config, device=str(device), folds=_folds(args, data))
    print(f"predictions written to {Path(args.out) / 'predictions.csv'}; score them with: am3f score {args.out}")


def cmd_train(args: argparse.Namespace) -> None:
    from .train import train_final

    variant, model_cfg, train_cfg, data, device = _training_setup(args)
    out = train_final(data, model_cfg, train_cfg, args.out, seed=args.seed, device=device, variant=variant)
    print(f"trained {args.model} ({variant}) on all {len(data.subject_ids)} subjects; checkpoint written to {out}")


def predict_inputs(args: argparse.Namespace, image_size: tuple[int, int]):
    """(names, x) to classify: flow files as given (PNG or .npz), or the flow image of one onset/apex pair."""
    import numpy as np

    from .flow import read_flow_input

    if args.onset:
        if args.images:
            raise AM3FError("give either FLOW files or --onset/--apex frames, not both")
        from .flow import compute_flow, flow_to_image
        from .frames import load_pair

        pair = load_pair(args.onset, args.apex, detect=not args.no_face_detect)
        flow = compute_flow(pair.onset, pair.apex, args.method, names=(args.onset, args.apex or args.onset))
        # the same 8-bit image the composite loader reads, so frames and flow PNGs give equal inputs
        img = flow_to_image(flow, size=image_size[0])
        name = f"{args.onset} -> {args.apex}" if args.apex else str(args.onset)
        return [name], (img.astype(np.float32) / 255.0).transpose(2, 0, 1)[None]
    if args.apex:
        raise AM3FError("--apex needs --onset")
    if not args.images:
        raise AM3FError("give at least one FLOW file (.png or .npz), or --onset ONSET --apex APEX")
    arrays = [read_flow_input(Path(p), tuple(image_size)) for p in args.images]
    return list(args.images), np.stack(arrays)


def cmd_predict(args: argparse.Namespace) -> None:
    from .train import load_checkpoint, predict
    from .utils import pick_device

    device = pick_device(args.device)
    model, meta = load_checkpoint(args.checkpoint, device)
    names, x = predict_inputs(args, meta["image_size"])
    probs = predict(model, x, device, tta_flip=bool(meta["train_config"].get("tta_flip", False)))
    classes = meta["class_names"]
    if args.json:
        print(json.dumps([{"image": n, "pred": classes[int(p.argmax())],
                           "probs": {c: round(float(v), 6) for c, v in zip(classes, p)}}
                          for n, p in zip(names, probs)], indent=2))
        return
    width = max(len(n) for n in names)
    print(f"{'image':<{width}}  " + "  ".join(f"{c:>9}" for c in classes) + "  prediction")
    for n, p in zip(names, probs):
        print(f"{n:<{width}}  " + "  ".join(f"{v:9.4f}" for v in p) + f"  {classes[int(p.argmax())]}")


def cmd_variants(args: argparse.Namespace) -> None:
    from .model import VARIANTS
    from .zoo import PEER_VARIANTS, build_model, count_parameters

    print("Named variants of AM3F-FlowNet for ablations (`am3f loso --variant NAME`); [..] = changed schedule:")
    for name, (cfg, train_over, desc) in VARIANTS.items():
        extra = f" [{', '.join(f'{k}={v}' for k, v in train_over.items())}]" if train_over else ""
        print(f"  {name:<22}{count_parameters(build_model(cfg)):>9,} params  {desc}{extra}")
    print("Peers (`am3f loso --model ARCH --variant NAME`; <arch>-authors = the authors' own recipe):")
    counts: dict[str, int] = {}  # one build per architecture (htnet has 140M parameters)
    for name, (cfg, _, desc) in PEER_VARIANTS.items():  # their recipes are long: the description says them
        if cfg.arch not in counts:
            counts[cfg.arch] = count_parameters(build_model(cfg))
        print(f"  {name:<22}{counts[cfg.arch]:>13,} params  {desc}")


def cmd_models(args: argparse.Namespace) -> None:
    from .zoo import ARCHITECTURES, build_model, count_parameters

    print("every architecture `am3f loso --model NAME` trains; parameters for 3 classes at 28x28 "
          "(counted on the built model)")
    for name, spec in ARCHITECTURES.items():
        n = count_parameters(build_model(spec.config))
        if spec.params is None:
            check = "reduced, ours" if spec.reduced else "ours"
        else:
            check = "= published" if n == spec.params else f"!= published {spec.params:,}"
        print(f"{name:<14}{n:>13,} params  ({check})  variants: {', '.join(spec.variants)}")
        print(f"{'':<16}paper:  {spec.paper}")
        print(f"{'':<16}input:  {spec.input}")
        print(f"{'':<16}source: {spec.source}")


def _add_train_options(p: argparse.ArgumentParser) -> None:
    from .train import DEFAULT_TRAIN as d

    p.add_argument("--model", choices=MODEL_NAMES, default="am3f",
                   help="architecture (default: am3f; `am3f models` lists them)")
    p.add_argument("--variant", default=None,
                   help="named variant (list: `am3f variants`; default: the model's own, e.g. full for am3f, "
                        "rcn for rcn; <arch>-authors: the peer under its authors' published recipe)")
    g = p.add_argument_group("schedule overrides",
                             "default: the declared schedule of the variant (am3f.train.TrainConfig)")
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
    g.add_argument("--threads", type=int, default=None, metavar="N",
                   help=f"torch CPU threads per process (default: {d.threads})")


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
    p.add_argument("--device", default="auto", help="auto (CUDA when present, default), cpu or cuda[:N]")


def build_parser() -> argparse.ArgumentParser:
    from . import __version__

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
    p.set_defaults(func=cmd_evaluate_weights)

    p = sub.add_parser("score", help="MEGC2019 UF1 / UAR / accuracy of a run directory",
                       description="Pools all folds (and merges folds written by separate processes), prints "
                                   "composite and per-dataset scores, mean ± std over seeds and the 95 % "
                                   "subject-bootstrap interval [lo, hi] (subjects resampled within each dataset, "
                                   "2000 replicates, fixed seed; see am3f.stats), writes metrics.json.")
    p.add_argument("run_dir", help="run directory written by `am3f loso` or `am3f evaluate-weights`")
    p.set_defaults(func=cmd_score)

    p = sub.add_parser("compare", help="paired comparison of two runs on the same samples (Δ, interval, p)",
                       description="Δ = RUN_A − RUN_B of UF1 and UAR (composite and per dataset) with the 95 % "
                                   "paired subject-bootstrap interval (the same resampled subjects for both runs) "
                                   "and a two-sided bootstrap p-value, p = min(1, 2 min(1 + #{Δ* <= 0}, "
                                   "1 + #{Δ* >= 0}) / (B + 1)). The runs must hold the same samples and labels; "
                                   "their seeds may differ (each run scores as the mean over its seeds).")
    p.add_argument("run_a", metavar="RUN_A", help="run directory A")
    p.add_argument("run_b", metavar="RUN_B", help="run directory B (Δ = A − B)")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    p.set_defaults(func=cmd_compare)

    p = sub.add_parser("reproduce", help="run every companion notebook (papermill) and collect figures and tables",
                       description="Executes notebooks/00..08 in order with the profile's parameters; executed "
                                   "notebooks go to OUT, figures (PNG + PDF) and tables (Markdown + LaTeX) to "
                                   "OUT/figures, LOSO runs to OUT/runs. quick: minutes on 2 CPU cores (few folds "
                                   "and epochs, one seed); full: every fold, 3 seeds for the main model, every "
                                   "ablation variant on one seed.")
    p.add_argument("--data", default=None, help=DATA_HELP)
    p.add_argument("--reference", default=None, metavar="DIR",
                   help="real reference material for the checks of notebooks 01 and 03: a folder holding "
                        "ststnet-reference/ (published STSTNet weights) and real-onset-apex/ (default: the folder "
                        "above --data when it holds them; none without --data)")
    p.add_argument("--profile", choices=["quick", "full"], default=None, help="size of the runs (default: quick)")
    p.add_argument("--out", default=None,
                   help="output folder (default: reproduce-<profile> inside $AM3F_OUT, else inside the "
                        "checkout's git-ignored out/)")
    p.add_argument("--notebooks", nargs="*", default=None, metavar="NAME",
                   help="only these notebooks, e.g. 02_train_loso 03_results_tables (default: all, in order)")
    p.add_argument("--in-place", action="store_true",
                   help="execute notebooks/*.ipynb with their own default parameters (embedded SYNTHETIC set, "
                        "CI-sized, real data switched off) and write them back with their outputs, volatile "
                        "metadata stripped: the committed outputs that strict nbval checks")
    p.set_defaults(func=cmd_reproduce)

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
    p.add_argument("--method", choices=["tvl1", "farneback", "dis"], default="tvl1",
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
    p.set_defaults(func=cmd_flow)

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
    p.add_argument("--method", choices=["tvl1", "farneback", "dis"], default="tvl1", help="flow method (default tvl1)")
    p.add_argument("--size", type=int, default=28, help="side of the flow images (default 28)")
    p.add_argument("--face-detect", choices=["auto", "on", "off"], default="auto",
                   help="auto (default): off for CASME II (Cropped frames), on for SAMM and SMIC")
    p.add_argument("--max-side", type=int, default=384,
                   help="downscale face crops larger than this (px) before the flow, for speed (default 384, "
                        "which keeps CASME II and SMIC crops at full size; 0: never)")
    p.set_defaults(func=cmd_extract)

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
    p.set_defaults(func=cmd_synth)

    p = sub.add_parser("loso", help="train and evaluate a model with leave-one-subject-out",
                       description="One fold per subject: fit on the other subjects with the fixed, declared "
                                   "schedule, predict the held-out subject at the end. Writes a run directory "
                                   "(config.json records the full model and training config); score it with "
                                   "`am3f score RUN_DIR` (mean ± std over seeds).")
    _add_run_options(p)
    p.add_argument("--seeds", type=int, nargs="+", default=[0], help="training seeds (default 0)")
    p.add_argument("--no-epoch-scores", action="store_true",
                   help="do not record per-epoch held-out probabilities (kept for the protocol audit only)")
    _add_train_options(p)
    p.set_defaults(func=cmd_loso)

    p = sub.add_parser("train", help="train a model on ALL subjects and save a checkpoint",
                       description="Fixed schedule on every subject of --data; the checkpoint holds the model "
                                   "config, weights, class names and input normalisation.")
    p.add_argument("--data", default=None, help=DATA_HELP)
    p.add_argument("--out", required=True, help="checkpoint file, e.g. model.pt")
    p.add_argument("--seed", type=int, default=0, help="training seed (default 0)")
    p.add_argument("--device", default="auto", help="auto (CUDA when present, default), cpu or cuda[:N]")
    _add_train_options(p)
    p.set_defaults(func=cmd_train)

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
    p.add_argument("--method", default="tvl1", choices=["tvl1", "farneback", "dis"],
                   help="optical flow method for --onset/--apex (default tvl1)")
    p.add_argument("--no-face-detect", action="store_true", help="frames are already cropped to the face")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.add_argument("--device", default="auto", help="auto (CUDA when present, default), cpu or cuda[:N]")
    p.set_defaults(func=cmd_predict)

    p = sub.add_parser("variants", help="list the named model variants (ablations, peers, authors' recipes)",
                       description="Every named variant of AM3F-FlowNet, STSTNet and the peers with its parameter "
                                   "count and what it changes; use one with `am3f loso --variant NAME`.")
    p.set_defaults(func=cmd_variants)

    p = sub.add_parser("models", help="list every architecture: parameters, input, source",
                       description="AM3F-FlowNet, STSTNet and the peers of am3f.peers (Dual-Inception, "
                                   "OFF-ApexNet, RCN, HTNet and the declared reduced htnet-small), with "
                                   "their parameter count (checked against the published model), what "
                                   "the authors' model is fed and where its public code is.")
    p.set_defaults(func=cmd_models)

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
