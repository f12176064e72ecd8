"""What each ``am3f`` command does; :mod:`am3f.app.cli` holds the argument parser that calls these.

Every ``cmd_*`` takes the parsed arguments, does its work through the package's modules and prints a
short report; problems a user can fix are raised as :class:`am3f.errors.AM3FError`, which the CLI
prints as one line (exit code 2).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from am3f.errors import AM3FError


# ----------------------------------------------------------------------------- evaluate-weights
def cmd_evaluate_weights(args: argparse.Namespace) -> None:
    from am3f.data.dataset import load_dataset
    from am3f.protocol.launch import evaluate_published_weights
    from am3f.utils import pick_device

    data = load_dataset(args.data)
    print(data.describe())
    evaluate_published_weights(args.weights, data, args.out, device=pick_device(args.device), folds=_folds(args, data))
    print(f"predictions written to {Path(args.out) / 'predictions.csv'}; score them with: am3f score {args.out}")


# ----------------------------------------------------------------------------- data verify
def cmd_data_verify(args: argparse.Namespace) -> int:
    from am3f.data.manifest import flow_correlation, verify

    diffs, identical = verify(args.folder, args.manifest)  # --manifest: a path, checked there (None: shipped)
    total = identical + len({d["sample_id"] for d in diffs if d["kind"] != "extra"})
    if args.compare_with:
        corr = flow_correlation(args.folder, args.compare_with)
        print(f"flows of {args.folder} vs {args.compare_with}: {len(corr)} samples in both; Pearson r per channel")
        for c in corr.columns[1:]:
            low = corr.nsmallest(3, c)
            print(f"  {c:<7} mean {corr[c].mean():.3f}  median {corr[c].median():.3f}  lowest: "
                  + ", ".join(f"{s} {r:.2f}" for s, r in zip(low['sample_id'], low[c])))
    if not diffs:
        print(f"{identical} of {total} samples identical to the manifest")
        return 0
    print(f"{identical} of {total} samples identical; {len(diffs)} difference(s):")
    for d in diffs:
        print(f"  {d['sample_id']}: {d['kind']} ({d['detail']})")
    return 1


# ----------------------------------------------------------------------------- score
def cmd_score(args: argparse.Namespace) -> None:
    from am3f.data.dataset import DATASET_TITLES
    from am3f.protocol.metrics import format_summary, summarize
    from am3f.protocol.run_folder import load_run
    from am3f.results.stats import add_intervals, holdout_subjects

    path = Path(args.run_dir)
    if not path.exists():
        raise AM3FError(f"{path}: run directory does not exist")
    run = load_run(path)
    holdout = holdout_subjects(run.predictions, run.complete)
    summary = add_intervals(summarize(run.predictions, holdout=holdout), run.predictions, holdout=holdout)
    databases = run.config.get("dataset", {}).get("datasets")
    if databases:  # the pooled row of a single-database run is that database, not the composite set
        summary["subsets"]["composite"]["title"] = "+".join(DATASET_TITLES.get(d, d) for d in databases)
    summary["run"] = {"dir": str(path), "complete": run.complete, "folds_done": run.info["folds_done"],
                      "synthetic": run.synthetic, "core_s_per_seed": run.info["core_s_per_seed"],
                      "datasets": databases or "all"}
    (path / "metrics.json").write_text(json.dumps(summary, indent=2))
    if run.synthetic:
        print("[SYNTHETIC DATA] these scores are on the generated synthetic set, not on real micro-expressions")
    if databases:
        print(f"single-database LOSO: trained and tested on {' + '.join(DATASET_TITLES.get(d, d) for d in databases)} "
              "only")
    if not run.complete:
        print(f"warning: run is incomplete (folds done per seed: {run.info['folds_done']}); "
              f"scores cover finished folds only; no hold-out subset (the halves are dealt over every subject)")
    tuned_on = (run.config.get("tuned_recipe") or {}).get("tuned_on", {})
    for half, t in tuned_on.items():  # a cross-fitted run: no fold trained the base recipe
        print(f"recipe tuned on half {half} ({len(t['subjects'])} subjects), used for the folds of the other half: "
              f"{_describe(t['chosen'])}")
    print(format_summary(summary))
    print(f"wrote {path / 'metrics.json'}")


# ----------------------------------------------------------------------------- compare
def cmd_compare(args: argparse.Namespace) -> None:
    from am3f.results.stats import compare_runs, format_comparison

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
    from am3f.app.reproduce import check_inputs, reproduce, summary_lines

    if args.in_place:
        from am3f.app.reproduce import execute_in_place

        if (args.data or args.reference or args.out or args.scheduler or args.recipe or args.seeds or args.datasets
                or args.profile not in (None, "quick")):
            raise AM3FError("--in-place runs the notebooks' own defaults on the synthetic set: "
                            "no --data, --reference, --out, --recipe, --seeds or --profile full/leaderboard")
        timings = execute_in_place(args.notebooks or None)
        print(f"executed in place on the embedded SYNTHETIC set, {sum(timings.values()):.0f} s: "
              + ", ".join(f"notebooks/{n}.ipynb" for n in timings))
        return
    args.profile = args.profile or "quick"
    # every input is checked before a notebook starts, so a bad --data never leaves a half-made OUT
    data_root, shared_dir = check_inputs(args.data, args.reference)
    if args.recipe:
        from am3f.protocol.tuning import read_recipes

        read_recipes(args.recipe)  # a bad file fails here, before any notebook starts
    if args.datasets:  # an unknown database fails here too
        from am3f.data.dataset import load_dataset, select_datasets

        select_datasets(load_dataset(data_root or None), args.datasets)
    out = reproduce(data_root, profile=args.profile, out=args.out, notebooks=args.notebooks or None,
                    shared_dir=shared_dir, workers=args.workers or 0, scheduler=args.scheduler or "",
                    model=args.model or "", recipe=args.recipe or "", seeds=args.seeds or None,
                    datasets=args.datasets or "")
    print(f"done: profile {args.profile}, data {data_root or '(embedded SYNTHETIC set)'}"
          + (f", reference material {shared_dir}" if shared_dir else ""))
    for line in summary_lines(out):
        print("  " + line)


# ----------------------------------------------------------------------------- flow / extract / synth
def cmd_flow(args: argparse.Namespace) -> None:
    from am3f.flow.frames import load_pair
    from am3f.flow.optical_flow import compute_flow, write_flow_npz, write_flow_png

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

    from am3f.flow.extract import extract

    detect = {"auto": None, "on": True, "off": False}[args.face_detect]
    workers = args.workers if args.workers is not None else max(1, min(4, os.cpu_count() or 1))
    if workers < 1:
        raise AM3FError(f"--workers must be at least 1, got {workers}")
    s = extract(args.dataset, args.root, args.out, workers=workers, method=args.method, size=args.size,
                detect=detect, sheet=args.sheet, max_side=args.max_side)
    print(f"{s['dataset']}: {s['n_clips']} clips with a MEGC2019 label; {s['n_done_before']} already done, "
          f"{s['n_new']} new; labels in {s['labels_csv']}")


def cmd_synth(args: argparse.Namespace) -> None:
    from am3f.data.dataset import load_flow_dataset
    from am3f.flow.synth import generate_synthetic

    out = generate_synthetic(args.out, n_subjects=args.subjects, seed=args.seed, frame_size=args.frame_size)
    print(load_flow_dataset(out).describe())
    print(f"wrote the SYNTHETIC set to {out} (see {Path(out) / 'README.txt'})")


# ----------------------------------------------------------------------------- loso / train / predict / variants
RECIPE_OPTIONS = ("epochs", "lr", "batch_size", "weight_decay", "tau", "weight_power", "ema", "n_models", "fold_group")


def _train_overrides(args: argparse.Namespace) -> dict:
    """The recipe fields the command line sets, checked at once (torch-free: nothing has started yet)."""
    from dataclasses import replace

    from am3f.training.recipe import DEFAULT_TRAIN

    overrides = {k: getattr(args, k) for k in RECIPE_OPTIONS if getattr(args, k, None) is not None}
    replace(DEFAULT_TRAIN, **overrides)  # an invalid value fails here, in one line
    return overrides


def _check_execution(args: argparse.Namespace) -> None:
    """Execution settings: how the work runs, not what it computes."""
    for name in ("workers", "threads"):
        value = getattr(args, name, None)
        if value is not None and value < 1:
            raise AM3FError(f"--{name} must be at least 1, got {value}")
    seeds = getattr(args, "seeds", None) or [getattr(args, "seed", 0)]
    if any(s < 0 for s in seeds):
        raise AM3FError(f"seeds must be >= 0, got {' '.join(map(str, seeds))}")


def _training_setup(args: argparse.Namespace, overrides: dict):
    """(variant, model config, train config) of `loso` and `train`, all checked."""
    from am3f.models.registry import model_variant
    from am3f.training.recipe import resolve_variant

    variant = model_variant(args.model, args.variant)
    model_cfg, train_cfg = resolve_variant(variant, **overrides)
    return variant, model_cfg, train_cfg


def _load_data(args: argparse.Namespace):
    from am3f.data.dataset import load_dataset
    from am3f.utils import pick_device

    device = pick_device(args.device)
    data = load_dataset(args.data)
    if getattr(args, "datasets", None):  # the single-database protocol: LOSO inside the databases named
        from am3f.data.dataset import select_datasets

        data = select_datasets(data, args.datasets)
    print(data.describe())
    return data, device


def cmd_loso(args: argparse.Namespace) -> None:
    from am3f.protocol.engine import Execution, start_workers_early, usable_cores

    _check_execution(args)
    overrides = _train_overrides(args)  # bad values fail before any process starts
    if not args.scheduler and not str(args.device).startswith("cuda"):
        start_workers_early(args.workers or usable_cores())  # they import torch while we load the data
    from am3f.protocol.folds import with_split
    from am3f.protocol.launch import run_config, start_run

    variant, model_cfg, train_cfg = _training_setup(args, overrides)
    data, device = _load_data(args)
    data = with_split(data, args.split)
    config = run_config(data, variant=variant, recipe=args.recipe or "", **overrides)
    if config.get("tuned_recipe"):
        print(f"cross-fitted recipes from {args.recipe}: " + "; ".join(
            f"tuned on {h} ({len(t['subjects'])} subjects): {_describe(t['chosen'])}"
            for h, t in config["tuned_recipe"]["tuned_on"].items()))
    workers = 1 if device.type == "cuda" else (args.workers or usable_cores())
    where = (f"Dask scheduler {args.scheduler}" if args.scheduler
             else f"{workers} worker process(es)" if workers > 1 else "this process")
    from am3f.protocol.memory import group_size

    tuned_on = (config.get("tuned_recipe") or {}).get("tuned_on", {})
    epochs = (" / ".join(f"{t['train_config']['epochs']} (recipe tuned on {h})" for h, t in tuned_on.items())
              or train_cfg.epochs)
    from am3f.protocol.folds import fold_names

    named = f"model {model_cfg.arch}" + (f" variant {variant}" if variant != model_cfg.arch else "")  # yours: none
    group = min(group_size(model_cfg, train_cfg, data.image_size[0]), len(fold_names(data)))  # 3 folds: 3, not 17
    print(f"{named}: {config['parameters']:,} parameters; device {device}; "
          f"{epochs} epochs x {train_cfg.n_models} model(s) per fold, folds trained in groups of up to "
          f"{group}, on {where}")
    execution = Execution(workers=workers, scheduler=args.scheduler or None, device=str(device),
                          threads=args.threads or 1)
    start_run(data, config, args.out, seeds=args.seeds, folds=_folds(args, data), execution=execution,
              record_epochs=not args.no_epoch_scores)
    print(f"predictions written to {Path(args.out) / 'predictions.csv'}; score them with: am3f score {args.out}")


def _describe(overrides: dict) -> str:
    text = ", ".join(f"{k} {v:g}" if isinstance(v, float) else f"{k} {v}" for k, v in overrides.items())
    return text or "as declared"


def cmd_tune(args: argparse.Namespace) -> None:
    from am3f.models.registry import model_variant
    from am3f.protocol.engine import Execution, start_workers_early, usable_cores
    from am3f.protocol.tuning import parse_grid

    _check_execution(args)
    max_candidates = _max_candidates(args)
    grid = parse_grid(args.grid, max_candidates)  # bad keys or values, or too many candidates, fail before anything
    variant = model_variant(args.model, args.variant)
    if not args.scheduler and not str(args.device).startswith("cuda"):
        start_workers_early(args.workers or usable_cores())
    from am3f.protocol.tuning import candidates, default_grid, tune
    from am3f.training.recipe import resolve_variant

    model_cfg, _ = resolve_variant(variant)
    data, device = _load_data(args)
    grid = grid or default_grid(model_cfg.arch)
    workers = 1 if device.type == "cuda" else (args.workers or usable_cores())
    print(f"tuning {variant}: {len(candidates(grid))} candidates x 2 subject halves x 5-fold CV x "
          f"{len(args.seeds)} seed(s); grid " + "; ".join(f"{k} {', '.join(map(str, v))}" for k, v in grid.items()))
    execution = Execution(workers=workers, scheduler=args.scheduler or None, device=str(device))
    result = tune(data, variant, args.out, grid=grid, seeds=args.seeds, execution=execution,
                  max_candidates=max_candidates)
    for half, h in result["halves"].items():
        best = next(c for c in h["candidates"] if c["overrides"] == h["chosen"])
        print(f"half {half} ({len(h['subjects'])} subjects): chose {_describe(h['chosen'])} "
              f"(CV UF1 {best['uf1']:.4f}, UAR {best['uar']:.4f})")
    print(f"wrote {Path(args.out) / 'recipes.json'}; use it with: am3f loso --model {model_cfg.arch} "
          f"--recipe {Path(args.out) / 'recipes.json'} ...")


def _max_candidates(args: argparse.Namespace) -> int:
    from am3f.protocol.tuning import MAX_CANDIDATES

    if args.max_candidates is not None and args.max_candidates < 1:
        raise AM3FError(f"--max-candidates must be at least 1, got {args.max_candidates}")
    return max(args.max_candidates or MAX_CANDIDATES, MAX_CANDIDATES)


def cmd_train(args: argparse.Namespace) -> None:
    from am3f.protocol.checkpoint import train_final

    _check_execution(args)
    variant, model_cfg, train_cfg = _training_setup(args, _train_overrides(args))
    data, device = _load_data(args)
    out = train_final(data, model_cfg, train_cfg, args.out, seed=args.seed, device=device, variant=variant,
                      threads=args.threads or 1)
    print(f"trained {model_cfg.arch} ({variant}) on all {len(data.subject_ids)} subjects; checkpoint written to {out}")
    source = getattr(model_cfg, "source", None) or {}
    if "path" in source:
        print(f"the checkpoint holds the code of {Path(source['path']).name} (factory {source['factory']}, SHA-256 "
              f"{source['sha256'][:12]}...): `am3f predict` works after the file is moved or changed")
    elif source:
        print(f"the checkpoint records module {source.get('module')} of package {source.get('package')} "
              f"{source.get('version') or '(no version)'} (code SHA-256 {str(source.get('sha256'))[:12]}...), not its "
              f"code: `am3f predict` needs that code installed")


def predict_inputs(args: argparse.Namespace, image_size: tuple[int, int]):
    """(names, x) to classify: flow files as given (PNG or .npz), or the flow image of one onset/apex pair."""
    import numpy as np

    from am3f.flow.optical_flow import read_flow_input

    if args.onset:
        if args.images:
            raise AM3FError("give either FLOW files or --onset/--apex frames, not both")
        from am3f.flow.frames import load_pair
        from am3f.flow.optical_flow import compute_flow, flow_to_image

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
    import sys
    from contextlib import redirect_stdout

    from am3f.protocol.checkpoint import load_checkpoint
    from am3f.training.fit import predict
    from am3f.utils import pick_device

    device = pick_device(args.device)
    with redirect_stdout(sys.stderr):  # what a model prints must not mix with the table or the JSON
        model, meta = load_checkpoint(args.checkpoint, device)
        if meta.get("model_code_used"):
            print(meta["model_code_used"])
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
    from am3f.models.registry import ARCHITECTURES, VARIANTS

    counts: dict[str, int] = {}  # one build per model config (htnet has 140M parameters)
    headers = {False: "Named variants of AM3F-FlowNet for ablations (`am3f loso --variant NAME`); [..] = changed "
                      "schedule:",
               True: "Peers (`am3f loso --model ARCH --variant NAME`; <arch>-authors = the authors' own recipe):"}
    for peer, header in headers.items():
        print(header)
        for spec in (s for s in ARCHITECTURES.values() if s.peer == peer):
            _print_variants(spec, VARIANTS, counts)


def _print_variants(spec, variants: dict, counts: dict) -> None:
    from am3f.models.registry import build_model, count_parameters

    for name in spec.variants:
        cfg, train_over, desc = variants[name]
        if repr(cfg) not in counts:
            counts[repr(cfg)] = count_parameters(build_model(cfg))
        # the peers' recipes are long: their descriptions say them
        extra = f" [{', '.join(f'{k}={v}' for k, v in train_over.items())}]" if train_over and not spec.peer else ""
        print(f"  {name:<22}{counts[repr(cfg)]:>13,} params  {desc}{extra}")


def cmd_models(args: argparse.Namespace) -> None:
    from am3f.models.registry import ARCHITECTURES, build_model, count_parameters

    if getattr(args, "model", None) and args.model not in ARCHITECTURES:
        _show_user_model(args.model)
        return
    print("every architecture `am3f loso --model NAME` trains; parameters for 3 classes at 28x28 "
          "(counted on the built model)")
    for name, spec in ARCHITECTURES.items():
        if getattr(args, "model", None) and name != args.model:
            continue
        n = count_parameters(build_model(spec.config))
        if spec.params is None:
            check = "reduced, ours" if spec.reduced else "ours"
        else:
            check = "= published" if n == spec.params else f"!= published {spec.params:,}"
        print(f"{name:<14}{n:>13,} params  ({check})  variants: {', '.join(spec.variants)}")
        print(f"{'':<16}paper:  {spec.paper}")
        print(f"{'':<16}input:  {spec.input}")
        print(f"{'':<16}source: {spec.source}")
    if getattr(args, "model", None):
        return
    for name in _installed_models():
        _show_user_model(name, brief=True)


def _installed_models() -> dict[str, str]:
    """{entry-point name: distribution that installs it} of the am3f.models group."""
    from importlib.metadata import entry_points as installed

    from am3f.models.user_model import ENTRY_POINT_GROUP

    return {ep.name: getattr(getattr(ep, "dist", None), "name", None) or "?"
            for ep in installed(group=ENTRY_POINT_GROUP)}


def _show_user_model(name: str, brief: bool = False) -> None:
    """A user's model (PATH.py:FACTORY, module:FACTORY or an entry point): its parameters at 28x28, the
    contract check's verdict (a failure is the command's one-line error) and where its code comes from."""
    from am3f.models.registry import build_model, count_parameters
    from am3f.models.user_model import entry_points, short_name, user_config

    cfg = user_config(name)  # the contract check: a model that fails it is refused here, in one line
    n = count_parameters(build_model(cfg))
    source = cfg.source
    where = (f"file {source['path']} (SHA-256 {source['sha256'][:12]}...), factory {source['factory']}"
             if "path" in source else
             f"module {source['module']} of package {source['package']} {source.get('version') or '(no version)'}"
             + (f" (code SHA-256 {source['sha256'][:12]}...)" if source.get("sha256") else "")
             + f", factory {source['factory']}")
    if name in entry_points():
        where = f"entry point {entry_points()[name]} installed by {_installed_models().get(name, '?')}: {where}"
    if brief:
        print(f"{name:<14}{n:>13,} params  (yours; contract check passed)  {where}")
        return
    print(f"{short_name(name)}: {n:,} params for 3 classes at 28x28")
    print("contract check: passed (logits of shape (N, 3) on a (4, 3, 28, 28) batch; a training step of two "
          "stacked copies under torch.func.vmap)")
    print(f"source: {where}")


def _folds(args: argparse.Namespace, data) -> list[int]:
    from am3f.data.dataset import parse_index_ranges
    from am3f.protocol.folds import fold_names

    return parse_index_ranges(getattr(args, "folds", None), len(fold_names(data)))
