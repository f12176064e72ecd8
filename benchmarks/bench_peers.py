"""Peer-speed benchmark: the am3f engine against a plain per-fold PyTorch loop, per architecture and recipe.

    python benchmarks/bench_peers.py [--data DIR] [--archs am3f ststnet ...] [--recipes ours authors]
                                     [--epochs 3] [--folds 0-16] [--workers 2] [--device cpu|cuda] [--out FILE.json]
    python benchmarks/bench_peers.py --groups 1,4,17 [...]   # which fold group trains fastest per fold
    python benchmarks/bench_peers.py --layouts [...]         # NCHW or channels-last memory, per architecture
    python benchmarks/bench_peers.py --commands [...]        # whole programs: a plain-loop script vs `am3f loso`
    python benchmarks/bench_peers.py --quick                 # am3f, ststnet, rcn; 2 synthetic folds, 1 epoch
    python benchmarks/bench_peers.py --profile --groups 1,4 --folds 0-3 --epochs 1   # where the time goes

Default mode: for every architecture of the registry (am3f.models.registry.ARCHITECTURES; the full HTNet only when
named) and every recipe asked for (``ours``: the variant named like the architecture, our declared schedule;
``authors``: its ``<arch>-authors`` variant, where one is declared), the same LOSO work (the same folds, the
same epochs, the held-out subject predicted after every epoch) is timed side by side in one run:

(a) **plain loop**, written the way the peers' public training scripts are (our own code, not theirs): per
    fold a fresh model, a ``DataLoader`` over the training rows (shuffled), the recipe's optimizer, per
    epoch a pass over the loader then an evaluation of the test subject; one process with torch's default
    threads. It computes the same recipe as the engine (augmentation, logit-adjusted loss, learning-rate
    schedule, test-time mirror, from am3f's own functions), one model at a time;
(b) **am3f engine** with its defaults (:func:`am3f.protocol.launch.start_run`, what ``am3f loso`` runs): the
    variant's declared fold grouping, ``--workers`` single-threaded worker processes (default: every
    usable core), the per-epoch audit recorded.

It prints seconds (a), seconds (b) and the ratio (a) / (b) (> 1: the engine is faster), plus the load
average, since the machine may be shared. ``--repeat N`` times everything N times in alternation.

``--commands``: the same work as whole programs, each a fresh process timed from its start until its output
ends (captured, as ``subprocess.run`` captures it): (a) this file's plain loop run alone, as a peer's script
runs (its imports, its data loading, its first ``torch.optim`` optimizer), and (b) ``am3f loso`` with its
defaults. What a researcher timing the harness against the script they know sees, fixed costs included.

``--layouts``: the engine alone, one single-threaded process, one fold at a time, each recipe with its images and
weights in NCHW and in channels-last memory: seconds per fold for each, their ratio and the layout the registry
declares (am3f.models.registry.ArchSpec.channels_last).

``--groups 1,4,17``: the engine alone, ONE single-threaded process (``--workers 1``), each recipe with
its ``fold_group`` set to each size: seconds per fold for each size and the fastest. These are the
measurements behind the declared groups of the registry (am3f.models.registry, docs/design-choices.md).

Not a test: figures depend on the machine. No timed assertion anywhere uses them.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from am3f.data.dataset import load_dataset, parse_index_ranges
from am3f.errors import AM3FError
from am3f.models.registry import ARCHITECTURES, VARIANTS
from am3f.protocol.folds import fold_names, fold_rows

REPO = Path(__file__).resolve().parents[1]
REAL_DATA = REPO.parent / "shared" / "data" / "megc2019-composite"
DEFAULT_ARCHS = [name for name in ARCHITECTURES if name != "htnet"]  # the full HTNet: only when asked for
RECIPES = ("ours", "authors")
QUICK_ARCHS = ["am3f", "ststnet", "rcn"]


# ----------------------------------------------------------------------------- what is timed
def variant_of(arch: str, recipe: str) -> str | None:
    """The registry variant of ``arch`` under ``recipe`` ("ours" | "authors"); None: not declared."""
    if recipe == "ours":
        return ARCHITECTURES[arch].default_variant
    name = f"{arch}-authors"
    return name if name in VARIANTS else None


def synchronise(device: torch.device) -> None:
    """Wait for queued GPU work, so that a clock read after it measures the work (CUDA runs asynchronously)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


# ----------------------------------------------------------------------------- (a) the plain loop
def plain_fold(data, fold: int, model_cfg, train_cfg, *, seed: int, device: torch.device) -> np.ndarray:
    """One fold as a peer's training script trains it: a fresh model, a DataLoader, the optimizer, per
    epoch a pass over the loader and an evaluation of the test subject. Returns the last epoch's
    probabilities of the test rows."""
    from torch.utils.data import DataLoader, TensorDataset

    from am3f.models.registry import build_model
    from am3f.training.augment import apply_augmentation, draw_augmentation, hflip_flow
    from am3f.training.losses import class_priors, logit_adjusted_cross_entropy
    from am3f.training.optim import Schedule

    train, test = fold_rows(data, fold)
    torch.manual_seed(seed)
    model = build_model(model_cfg, image_size=data.image_size[0]).to(device)
    x = torch.from_numpy(np.ascontiguousarray(data.x, dtype=np.float32))
    y = torch.from_numpy(data.labels.astype(np.int64))
    bs = min(train_cfg.batch_size, len(train))
    loader = DataLoader(TensorDataset(x[train], y[train]), batch_size=bs, shuffle=True, drop_last=train_cfg.drop_last,
                        generator=torch.Generator().manual_seed(seed))
    x_test = x[test].to(device)
    priors = class_priors(data.labels[train], model_cfg.n_classes).to(device)
    opt = torch_optimizer(list(model.parameters()), train_cfg)
    schedule = Schedule(train_cfg, len(loader))
    augment_gen = torch.Generator().manual_seed(seed)
    step, probs = 0, None
    for _ in range(train_cfg.epochs):
        model.train()
        for xb, yb in loader:
            schedule.apply(opt, step)
            xb = apply_augmentation(xb, draw_augmentation(yb, train_cfg, augment_gen, xb.shape[-1]), train_cfg)
            xb, yb = xb.to(device, non_blocking=True), yb.to(device, non_blocking=True)
            loss = logit_adjusted_cross_entropy(model(xb), yb, priors, train_cfg.tau, train_cfg.weight_power,
                                                train_cfg.label_smoothing)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            step += 1
        model.eval()
        with torch.no_grad():  # the test subject after every epoch, as the peers' scripts log it
            probs = torch.softmax(model(x_test).double(), dim=1)
            if train_cfg.tta_flip:
                probs = 0.5 * (probs + torch.softmax(model(hflip_flow(x_test)).double(), dim=1))
            probs = probs.cpu().numpy()
    return probs


def torch_optimizer(params: list[torch.Tensor], cfg) -> torch.optim.Optimizer:
    """The recipe's optimizer as a peer's script builds it, from ``torch.optim`` (the engine's own,
    :mod:`am3f.training.optim`, updates the weights bit for bit alike without importing ``torch._dynamo``)."""
    if cfg.optimizer in ("adam", "adamw"):
        kind = torch.optim.Adam if cfg.optimizer == "adam" else torch.optim.AdamW
        return kind(params, lr=cfg.lr, weight_decay=cfg.weight_decay, fused=True)
    return torch.optim.SGD(params, lr=cfg.lr, momentum=0.9, nesterov=cfg.nesterov, weight_decay=cfg.weight_decay,
                           foreach=True)


def time_plain(data, folds: list[int], variant: str, epochs: int, *, seed: int, device: torch.device) -> float:
    from am3f.training.recipe import resolve_variant

    model_cfg, train_cfg = resolve_variant(variant, epochs=epochs)
    from am3f.protocol.engine import usable_cores

    torch.set_num_threads(usable_cores())  # a script's process: torch's default, every usable core
    synchronise(device)
    t0 = time.perf_counter()
    for k in folds:
        plain_fold(data, k, model_cfg, train_cfg, seed=seed, device=device)
    synchronise(device)
    return time.perf_counter() - t0


# ----------------------------------------------------------------------------- (b) the engine
def time_engine(data, folds: list[int], variant: str, epochs: int, *, seed: int, device: torch.device,
                workers: int, **overrides) -> tuple[float, int]:
    """(wall seconds, folds trained) of ``am3f loso --folds`` with its defaults (``overrides``: recipe
    fields, e.g. fold_group). A group is computed whole, so the engine may train more folds than asked."""
    from am3f.protocol.engine import Execution
    from am3f.protocol.launch import run_config, runner_of, start_run

    config = run_config(data, variant=variant, epochs=epochs, **overrides)
    trained = sum(len(g) for g in runner_of(config).groups(data) if set(g) & set(folds))
    with tempfile.TemporaryDirectory() as tmp:
        synchronise(device)
        t0 = time.perf_counter()
        execution = Execution(workers=1 if device.type == "cuda" else workers, device=str(device), show_progress=False)
        start_run(data, config, Path(tmp) / "run", seeds=[seed], folds=folds, execution=execution)
        synchronise(device)
        return time.perf_counter() - t0, trained


# ----------------------------------------------------------------------------- modes
def work_list(args) -> list[tuple[str, str, str]]:
    """(architecture, recipe, variant) of every row, in registry order."""
    rows = []
    for arch in args.archs:
        for recipe in args.recipes:
            variant = variant_of(arch, recipe)
            if variant is not None:
                rows.append((arch, recipe, variant))
    return rows


def compare(args, data, folds: list[int], device: torch.device) -> list[dict]:
    rows = []
    print(f"{'variant':<22}{'epochs':>7}{'(a) plain s':>13}{'(b) am3f s':>12}{'folds (b)':>10}{'ratio a/b':>11}  load",
          flush=True)
    for arch, recipe, variant in work_list(args):
        epochs = args.epochs or resolve_epochs(variant)
        plain, engine, ratios, trained = [], [], [], len(folds)
        for _ in range(args.repeat):
            plain.append(time_plain(data, folds, variant, epochs, seed=args.seed, device=device))
            wall, trained = time_engine(data, folds, variant, epochs, seed=args.seed, device=device,
                                        workers=args.workers)
            engine.append(wall)
            # per fold: where a group reaches beyond the folds asked for, the engine trains it whole
            ratios.append((plain[-1] / len(folds)) / (wall / trained))
        rows.append({"arch": arch, "recipe": recipe, "variant": variant, "epochs": epochs, "plain_s": plain,
                     "engine_s": engine, "engine_folds": trained, "ratio": ratios, "load": os.getloadavg()[0]})
        print(f"{variant:<22}{epochs:>7}{spread(plain):>13}{spread(engine):>12}{trained:>10}"
              f"{spread(ratios, '.2f'):>11}  {os.getloadavg()[0]:.2f}", flush=True)
    return rows


def run_timed(argv: list[str]) -> float:
    """Wall seconds of one program, from its start until its output ends (stdout and stderr captured)."""
    import subprocess

    t0 = time.perf_counter()
    done = subprocess.run(argv, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if done.returncode != 0:
        raise AM3FError(f"{' '.join(argv[:4])} ... failed: {done.stderr.strip().splitlines()[-1:]}")
    return wall


def commands(args, data, folds: list[int], device: torch.device) -> list[dict]:
    """(a) the plain loop as a program of its own and (b) ``am3f loso``, each timed whole (see the docstring)."""
    data_args = ["--data", str(data.root)] if not data.synthetic else []
    spec = ",".join(map(str, folds))
    rows = []
    print(f"{'variant':<22}{'epochs':>7}{'(a) script s':>14}{'(b) am3f loso s':>17}{'ratio a/b':>11}  load", flush=True)
    for arch, recipe, variant in work_list(args):
        epochs = args.epochs or resolve_epochs(variant)
        common = [*data_args, "--folds", spec, "--epochs", str(epochs)]
        plain, engine = [], []
        for _ in range(args.repeat):
            plain.append(run_timed([sys.executable, __file__, "--plain-program", variant, *common, "--seed",
                                    str(args.seed), "--device", str(device)]))
            with tempfile.TemporaryDirectory() as tmp:
                engine.append(run_timed([sys.executable, "-m", "am3f", "loso", "--variant", variant, *common,
                                         "--seeds", str(args.seed), "--device", str(device), "--workers",
                                         str(args.workers), "--out", str(Path(tmp) / "run"), "--quiet"]))
        ratios = [a / b for a, b in zip(plain, engine)]
        rows.append({"arch": arch, "recipe": recipe, "variant": variant, "epochs": epochs, "script_s": plain,
                     "am3f_loso_s": engine, "ratio": ratios, "load": os.getloadavg()[0]})
        print(f"{variant:<22}{epochs:>7}{spread(plain):>14}{spread(engine):>17}{spread(ratios, '.2f'):>11}  "
              f"{os.getloadavg()[0]:.2f}", flush=True)
    return rows


def plain_program(args) -> int:
    """``--plain-program VARIANT``: the plain loop over ``--folds``, alone in this process (``--commands``' (a))."""
    from am3f.utils import pick_device

    data = load(args)
    folds = parse_index_ranges(args.folds, len(fold_names(data)))
    epochs = args.epochs or resolve_epochs(args.plain_program)
    seconds = time_plain(data, folds, args.plain_program, epochs, seed=args.seed, device=pick_device(args.device))
    print(f"{args.plain_program}: {len(folds)} folds x {epochs} epochs in {seconds:.1f} s")
    return 0


def group_sizes(args, data, folds: list[int], device: torch.device) -> list[dict]:
    rows = []
    sizes = args.groups
    print(f"{'variant':<22}{'epochs':>7}" + "".join(f"{f'g={g} s/fold':>14}" for g in sizes) + "  fastest  load",
          flush=True)
    for arch, recipe, variant in work_list(args):
        epochs = args.epochs or resolve_epochs(variant)
        per_fold: dict[int, list[float]] = {g: [] for g in sizes}
        for _ in range(args.repeat):
            for g in sizes:
                wall, trained = time_engine(data, folds, variant, epochs, seed=args.seed, device=device, workers=1,
                                            fold_group=g)
                per_fold[g].append(wall / trained)
        best = min(sizes, key=lambda g: float(np.median(per_fold[g])))
        rows.append({"arch": arch, "recipe": recipe, "variant": variant, "epochs": epochs,
                     "per_fold_s": {str(g): v for g, v in per_fold.items()}, "fastest": best,
                     "load": os.getloadavg()[0]})
        print(f"{variant:<22}{epochs:>7}" + "".join(f"{spread(per_fold[g], '.3f'):>14}" for g in sizes)
              + f"  {best:>7}  {os.getloadavg()[0]:.2f}", flush=True)
    return rows


def layouts(args, data, folds: list[int], device: torch.device) -> list[dict]:
    """Seconds per fold of the engine (one single-threaded process, one fold at a time) with images and weights
    in NCHW and in channels-last memory (TrainConfig.channels_last): the measurements behind the layouts the
    registry declares (am3f.models.registry.ArchSpec.channels_last)."""
    rows = []
    names = {False: "NCHW", True: "channels-last"}
    print(f"{'variant':<22}{'epochs':>7}" + "".join(f"{names[c] + ' s/fold':>22}" for c in names)
          + "  ratio  declared  load", flush=True)
    for arch, recipe, variant in work_list(args):
        epochs = args.epochs or resolve_epochs(variant)
        per_fold: dict[bool, list[float]] = {c: [] for c in names}
        for _ in range(args.repeat):
            for layout in names:
                wall, trained = time_engine(data, folds, variant, epochs, seed=args.seed, device=device, workers=1,
                                            fold_group=1, channels_last=layout)
                per_fold[layout].append(wall / trained)
        ratio = float(np.median(per_fold[False]) / np.median(per_fold[True]))
        declared = names[ARCHITECTURES[arch].channels_last]
        rows.append({"arch": arch, "recipe": recipe, "variant": variant, "epochs": epochs,
                     "per_fold_s": {names[c]: v for c, v in per_fold.items()}, "nchw_over_channels_last": ratio,
                     "declared": declared, "load": os.getloadavg()[0]})
        print(f"{variant:<22}{epochs:>7}" + "".join(f"{spread(per_fold[c], '.3f'):>22}" for c in names)
              + f"  {ratio:5.2f}  {declared:>8}  {os.getloadavg()[0]:.2f}", flush=True)
    return rows


# where the time goes: torch.profiler's self CPU time per op, in a few plain categories (first match wins)
CATEGORIES = (
    ("convolution", ("conv",)),
    ("matmul", ("addmm", "bmm", "matmul", "linear", "aten::mm", "einsum")),
    ("norm, pool, activation", ("batch_norm", "layer_norm", "pool", "relu", "threshold", "gelu", "softmax",
                                "dropout", "sigmoid", "tanh", "hardtanh")),
    ("optimizer", ("fused_adam", "foreach", "sgd", "lerp")),
    ("copies and layout (vmap)", ("copy", "clone", "contiguous", "cat", "stack", "permute", "transpose", "reshape",
                                  "view", "expand", "movedim", "unsqueeze", "squeeze", "select", "slice", "as_strided",
                                  "empty", "zero", "fill", "split", "chunk", "repeat", "flatten", "index", "gather")),
)


def categorise(name: str) -> str:
    return next((cat for cat, keys in CATEGORIES if any(k in name for k in keys)), "other ops")


def profile_fit(data, folds: list[int], variant: str, epochs: int, group: int) -> dict:
    """Seconds of one epoch of ``folds`` trained in groups of ``group`` (one thread, as a worker), unprofiled,
    and the shares of the profiled self CPU time per category plus what no op accounts for (Python,
    dispatch, vmap's batching rules between ops)."""
    from torch.profiler import ProfilerActivity, profile

    from am3f.training.fit import fit_group
    from am3f.training.recipe import resolve_variant

    model_cfg, train_cfg = resolve_variant(variant, epochs=epochs, fold_group=group)
    sets = [fold_rows(data, k)[0] for k in folds]
    chunks = [sets[i:i + group] for i in range(0, len(sets), group)]

    def run() -> float:
        t0 = time.perf_counter()
        for chunk in chunks:
            fit_group(data, chunk, model_cfg, train_cfg, seed=0, threads=1)
        return time.perf_counter() - t0

    wall = run()
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        profiled = run()
    shares: dict[str, float] = {}
    for event in prof.key_averages():
        cat = categorise(event.key)
        shares[cat] = shares.get(cat, 0.0) + event.self_cpu_time_total / 1e6
    shares["outside ops (Python, dispatch)"] = max(0.0, profiled - sum(shares.values()))
    return {"wall_s": wall, "profiled_s": profiled, "shares": {k: v / profiled for k, v in shares.items()}}


def profiles(args, data, folds: list[int], device: torch.device) -> list[dict]:
    """Where the time goes per architecture, one fold at a time and in one group of the folds (``--profile``)."""
    if device.type != "cpu":
        raise AM3FError("--profile profiles the CPU path only")
    sizes = args.groups or [1, len(folds)]
    cats = [c for c, _ in CATEGORIES] + ["other ops", "outside ops (Python, dispatch)"]
    rows = []
    for _, _, variant in work_list(args):
        epochs = args.epochs or resolve_epochs(variant)
        for g in sizes:
            r = profile_fit(data, folds, variant, epochs, g)
            rows.append({"variant": variant, "group": g, "epochs": epochs, **r})
            print(f"{variant:<20} g={g:<3} {r['wall_s'] / len(folds):6.3f} s/fold  "
                  + "  ".join(f"{c.split(' ')[0]} {100 * r['shares'].get(c, 0):4.1f}%" for c in cats), flush=True)
    return rows


def warm_up() -> None:
    """Import what the first optimizer of a process imports (torch._dynamo, ~1.4 s on 2 cores) before any
    clock starts, so that the first row does not pay it."""
    weight = torch.zeros(1, requires_grad=True)
    weight.sum().backward()
    torch.optim.Adam([weight], fused=True).step()


def resolve_epochs(variant: str) -> int:
    from am3f.training.recipe import resolve_variant

    return resolve_variant(variant)[1].epochs


def spread(values: list[float], fmt: str = ".1f") -> str:
    """One figure, or the mean and the range of repeated ones."""
    if len(values) == 1:
        return format(values[0], fmt)
    return f"{format(float(np.mean(values)), fmt)}±{format((max(values) - min(values)) / 2, fmt)}"


# ----------------------------------------------------------------------------- command line
def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    from am3f.protocol.engine import usable_cores

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--data", default=None, help=f"a composite-layout folder (default: {REAL_DATA} if present, "
                                                f"else the embedded synthetic set)")
    p.add_argument("--archs", nargs="+", default=DEFAULT_ARCHS, choices=list(ARCHITECTURES),
                   help="architectures (default: all but the full htnet)")
    p.add_argument("--recipes", nargs="+", default=list(RECIPES), choices=RECIPES,
                   help="our declared schedule and/or the authors' recipe where declared (default: both)")
    p.add_argument("--epochs", type=int, default=3, help="epochs per fold (0: each variant's declared schedule)")
    p.add_argument("--folds", default="0-16", help="fold indices, e.g. 0-16 (default: the first 17)")
    p.add_argument("--workers", type=int, default=usable_cores(),
                   help="the engine's worker processes (default: every usable core)")
    p.add_argument("--device", default="cpu", help="cpu or cuda (one process on a GPU; default cpu)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--repeat", type=int, default=1, help="time everything N times, in alternation (noise)")
    p.add_argument("--groups", default="", help="e.g. 1,4,17: time the engine (1 process) at these fold groups")
    p.add_argument("--layouts", action="store_true",
                   help="time the engine (1 process, one fold at a time) in NCHW and channels-last memory")
    p.add_argument("--profile", action="store_true",
                   help="where the time goes (torch.profiler), per architecture, at --groups (default: 1 and all)")
    p.add_argument("--commands", action="store_true",
                   help="time whole programs: the plain loop as a script of its own vs `am3f loso` (output captured)")
    p.add_argument("--plain-program", default="", help=argparse.SUPPRESS)  # --commands' (a), in its own process
    p.add_argument("--quick", action="store_true",
                   help="am3f, ststnet and rcn (unless --archs), synthetic set, 2 folds, 1 epoch (< 1 min on 2 cores)")
    p.add_argument("--out", default="", help="write the figures to this JSON file")
    args = p.parse_args(argv)
    if args.quick:  # the light architectures (unless named), 2 folds of the synthetic set, 1 epoch
        args.data, args.folds, args.epochs = "", "0-1", 1
        args.archs = QUICK_ARCHS if args.archs == DEFAULT_ARCHS else args.archs
    try:
        args.groups = [int(g) for g in args.groups.split(",") if g.strip()]
    except ValueError:
        p.error(f"--groups {args.groups!r}: expected sizes like 1,4,17")
    if any(g < 1 for g in args.groups) or args.epochs < 0 or args.repeat < 1 or args.workers < 1:
        p.error("--groups sizes, --repeat and --workers must be >= 1, --epochs >= 0")
    return args


def mode_is_compare(args) -> bool:
    return not (args.groups or args.profile or args.layouts or args.commands)


def load(args):
    root = args.data if args.data is not None else (str(REAL_DATA) if REAL_DATA.is_dir() else "")
    return load_dataset(root or None)


def main(argv: list[str] | None = None) -> int:
    from am3f.protocol.engine import start_workers_early
    from am3f.utils import pick_device

    args = parse_args(argv)
    if args.plain_program:
        return plain_program(args)
    try:
        device = pick_device(args.device)
        data = load(args)
        folds = parse_index_ranges(args.folds, len(fold_names(data)))
    except (AM3FError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if mode_is_compare(args) and device.type == "cpu":
        start_workers_early(args.workers)  # as `am3f loso` does
    warm_up()
    print(data.describe())
    workers = args.workers if (mode_is_compare(args) or args.commands) and device.type == "cpu" else 1
    print(f"{len(folds)} folds, seed {args.seed}, device {device}, torch {torch.__version__}, {os.cpu_count()} cores, "
          f"{platform.processor() or platform.machine()}; engine workers {workers}; "
          f"load average {os.getloadavg()[0]:.2f}", flush=True)
    mode = (profiles if args.profile else group_sizes if args.groups else layouts if args.layouts
            else commands if args.commands else compare)
    try:
        rows = mode(args, data, folds, device)
    except AM3FError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.out:
        report = {"mode": mode.__name__, "data": data.name, "synthetic": data.synthetic,
                  "folds": folds, "device": str(device), "workers": args.workers, "torch": torch.__version__,
                  "cores": os.cpu_count(), "rows": rows}
        Path(args.out).write_text(json.dumps(report, indent=2) + "\n")
        print(f"written: {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
