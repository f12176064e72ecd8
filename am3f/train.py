"""Fixed-schedule training: the declared schedule, the batched loop (augmentation: am3f.augment), LOSO fold runner.

Honest protocol. A fold's prediction is the model (its EMA weights, when enabled) after the fixed,
pre-declared schedule in :class:`TrainConfig`; nothing looks at the held-out subject before the end.
Per-epoch held-out probabilities may be *recorded* (``FoldOutput.epoch_scores``) for the protocol
audit only; they never select anything. Class priors for the logit-adjusted loss come from the
training fold only.

How the defaults below were chosen: :mod:`am3f.development` (the development half only).
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np
import torch
from torch import nn

from .augment import apply_augmentation, draw_augmentation, hflip_flow
from .data import FlowDataset, dataset_normalised
from .errors import AM3FError
from .losses import class_priors, distillation_loss, logit_adjusted_cross_entropy
from .model import ModelConfig
from .pretrain import pretrained_state
from .rundir import FoldOutput, dataset_info
from .utils import config_from_dict, config_to_dict, progress
from .zoo import build_model, count_parameters, get_variant


# ----------------------------------------------------------------------------- the schedule
@dataclass(frozen=True)
class TrainConfig:
    """The whole training recipe as plain data (saved with every run and checkpoint)."""

    optimizer: str = "adamw"
    lr: float = 1e-2  # peak learning rate
    weight_decay: float = 1e-3
    epochs: int = 20
    batch_size: int = 64
    warmup_epochs: float = 3.0  # linear warm-up, then cosine decay to zero (per step)
    # loss (am3f.losses): logit adjustment strength, class-prior weight power, label smoothing
    tau: float = 1.0
    # "fold": the class frequencies of the whole training fold; "dataset": of the sample's own source
    # dataset within the training fold (the source dataset is metadata known at test time too)
    priors: str = "fold"
    weight_power: float = 0.0
    label_smoothing: float = 0.0
    # augmentation (flow-aware, am3f.augment)
    hflip: float = 0.5  # probability of a horizontal mirror (maps mirrored AND u negated)
    max_shift: float = 0.07  # random translation, fraction of the image side (2 px at 28)
    same_class_mix: float = 1.0  # probability of blending a sample with another of the SAME class
    # weight averaging: exponential moving average of the weights over the fixed schedule (0 = off)
    ema: float = 0.0
    tta_flip: bool = True  # test-time: average the probabilities of the image and its flow-aware mirror
    n_models: int = 1  # ensemble of independently seeded models per fold, probabilities averaged
    threads: int = 1  # torch CPU threads (CPU only; 1 avoids OpenMP spin-waits on a shared 2-core box)
    # LOSO folds trained together in one batched computation (am3f.train.fit_group). Part of the
    # recipe, not an execution setting: float rounding differs (slightly) with the group size.
    fold_group: int = 17
    # sim-to-real pre-training on a synthetic corpus (am3f.pretrain): "synthetic:<subjects>:<epochs>"; "": none
    pretrain: str = ""
    # distillation (teacher_targets, am3f.losses.distillation_loss): loss = (1 - w) LA-CE + w T^2 KL
    distill_from: tuple[str, ...] = ()
    distill_weight: float = 0.5
    distill_temperature: float = 2.0
    input_norm: str = ""  # "dataset": am3f.data.dataset_normalised per fold (its folds then train one by one)
    # for the peers' published recipes (am3f.peers)
    schedule: str = "cosine"  # "cosine": linear warm-up then cosine decay (per step); "constant": lr throughout
    nesterov: bool = True  # optimizer "sgd" only: Nesterov momentum (0.9 either way)
    drop_last: bool = True  # drop the ragged last batch of an epoch (False: keep it, as a DataLoader does)

    def to_dict(self) -> dict:
        return config_to_dict(self, omit_at_default=("distill_from", "distill_weight", "distill_temperature",
                                                        "input_norm"))

    @classmethod
    def from_dict(cls, d: dict) -> TrainConfig:
        return config_from_dict(cls, d, "training")


DEFAULT_TRAIN = TrainConfig()
# the peer is trained under the same protocol; only the model differs
STSTNET_TRAIN = DEFAULT_TRAIN


def resolve_variant(name: str, **train_overrides) -> tuple[ModelConfig, TrainConfig]:
    """Model config and training config of a named variant, plus explicit overrides (e.g. epochs)."""
    model_cfg, variant_train = get_variant(name)
    base = STSTNET_TRAIN if model_cfg.arch == "ststnet" else DEFAULT_TRAIN
    train_cfg = replace(base, **variant_train)
    overrides = {k: v for k, v in train_overrides.items() if v is not None}
    return model_cfg, replace(train_cfg, **overrides)


def loso_config(data: FlowDataset, variant: str, **train_overrides) -> dict:
    """The config.json of a LOSO run of ``variant`` on ``data`` (as it reads back from JSON): the CLI
    and the notebooks build it here, so one setting always makes one run directory."""
    import json

    model_cfg, train_cfg = resolve_variant(variant, **train_overrides)
    config = {"kind": "loso", "model": model_cfg.arch, "variant": variant, "model_config": model_cfg.to_dict(),
              "train_config": train_cfg.to_dict(),
              "parameters": count_parameters(build_model(model_cfg, image_size=data.image_size[0])),
              "dataset": dataset_info(data)}
    return json.loads(json.dumps(config))


# ----------------------------------------------------------------------------- fitting
def lr_at(step: int, total: int, warmup: int, peak: float) -> float:
    if step < warmup:
        return peak * (step + 1) / warmup
    t = (step - warmup) / max(1, total - warmup)
    return peak * 0.5 * (1.0 + math.cos(math.pi * t))


@torch.no_grad()
def predict(model: nn.Module, x: np.ndarray | torch.Tensor, device: torch.device | str = "cpu",
            batch_size: int = 512, tta_flip: bool = False) -> np.ndarray:
    """Class probabilities (n, n_classes) of flow images x (n, 3, H, W) in [0, 1], (u, v, strain).

    ``tta_flip``: average with the prediction of the mirrored flow (maps mirrored, u negated)."""
    model.eval()
    x = torch.as_tensor(np.asarray(x, dtype=np.float32))
    out = []
    for i in range(0, len(x), batch_size):
        xb = x[i:i + batch_size].to(device)
        p = torch.softmax(model(xb).double(), dim=1)
        if tta_flip:
            p = 0.5 * (p + torch.softmax(model(hflip_flow(xb)).double(), dim=1))
        out.append(p.cpu())
    return torch.cat(out).numpy() if out else np.zeros((0, model.cfg.n_classes))


def make_optimizer(params: list[torch.Tensor], cfg: TrainConfig) -> torch.optim.Optimizer:
    """The recipe's optimizer. Every update is elementwise, so one optimizer over the stacked weights
    of several models updates each model exactly as its own optimizer would. Adam(W) runs fused (one
    kernel for all tensors): a batched LOSO seed in one CPU process 13 % faster than with ``foreach``,
    which CPUs run tensor by tensor (benchmarks/bench_loso.py --speed; float rounding differs)."""
    if cfg.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay, fused=True)
    if cfg.optimizer == "adam":
        return torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay, fused=True)
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(params, lr=cfg.lr, momentum=0.9, nesterov=cfg.nesterov, weight_decay=cfg.weight_decay,
                               foreach=True)
    raise AM3FError(f"unknown optimizer {cfg.optimizer!r} (adamw, adam or sgd)")


def epoch_steps(n: int, cfg: TrainConfig) -> tuple[int, int]:
    """(batch size, steps per epoch) for a training set of ``n`` samples."""
    bs = min(cfg.batch_size, n)
    # drop the ragged last batch (keeps BatchNorm statistics sane), unless the recipe keeps it
    return bs, (max(1, n // bs) if cfg.drop_last else math.ceil(n / bs))


def fit_group(data: FlowDataset, train_sets: Sequence[np.ndarray], model_cfg: ModelConfig, train_cfg: TrainConfig, *,
              seed: int = 0, device: torch.device | str = "cpu", eval_sets: Sequence[np.ndarray] | None = None,
              show_progress: bool = False, init_state: dict | None = None, soft_targets: np.ndarray | None = None
              ) -> tuple[list[nn.Module], list[np.ndarray] | None]:
    """Train one model per index array of ``train_sets`` (rows of ``data``), all in ONE batched
    computation: the models' weights are stacked and every step runs all of them through
    ``torch.func.vmap`` over the one model definition, so the CPU (or GPU) sees batches of
    len(train_sets) x batch_size images instead of many small ones.

    Each model's training does not depend on which others share its group (up to float rounding):
    its data order and augmentation come from its own generator, and the models share their
    initial weights and dropout masks (``seed``), as one model trained alone with ``seed`` would
    have. All training sets must need the same steps per epoch (see :func:`fold_groups`).

    With ``train_cfg.pretrain`` every model starts from the pre-trained weights (``init_state``, else
    :func:`am3f.pretrain.pretrained_state`). ``soft_targets`` (n_models, len(data), n_classes): each
    model's teacher probabilities (distillation). Returns the final models (EMA weights when enabled), in
    eval mode, and, when ``eval_sets`` (index arrays) are given, each model's probabilities on its
    eval set after every epoch (n_epochs, n_eval, n_classes), for the protocol audit only.
    """
    from torch.func import functional_call, stack_module_state, vmap

    device = torch.device(device)
    if device.type == "cpu" and train_cfg.threads:
        torch.set_num_threads(train_cfg.threads)
    if train_cfg.schedule not in ("cosine", "constant"):
        raise AM3FError(f"unknown schedule {train_cfg.schedule!r} (cosine or constant)")
    n_models = len(train_sets)
    sizes = {epoch_steps(len(idx), train_cfg) for idx in train_sets}
    if len(sizes) != 1 or (not train_cfg.drop_last and len({len(idx) for idx in train_sets}) != 1):
        raise AssertionError(f"models of one group need equal batches per epoch, got {sorted(sizes)}")
    (bs, steps_per_epoch), = sizes
    torch.manual_seed(seed)  # initial weights, then the dropout masks: the same stream a lone model draws
    model = build_model(model_cfg, image_size=data.image_size[0])
    if train_cfg.pretrain:
        model.load_state_dict(init_state if init_state is not None else pretrained_state(model_cfg, train_cfg, fit))
    params, buffers = stack_module_state([model] * n_models)
    params = {k: v.to(device).detach().requires_grad_() for k, v in params.items()}
    buffers = {k: v.to(device) for k, v in buffers.items()}
    base = copy.deepcopy(model).to("meta")
    batched = vmap(lambda p, b, x: functional_call(base, (p, b), (x,)), randomness="same")
    w_kd = train_cfg.distill_weight if soft_targets is not None else 0.0

    def loss_one(z, y, pri, soft):
        loss = logit_adjusted_cross_entropy(z, y, pri, train_cfg.tau, train_cfg.weight_power, train_cfg.label_smoothing)
        if w_kd:
            loss = (1 - w_kd) * loss + w_kd * distillation_loss(z, soft, train_cfg.distill_temperature)
        return loss

    loss_of = vmap(loss_one)
    x_all = torch.from_numpy(np.ascontiguousarray(data.x, dtype=np.float32)).to(device)
    y_all = torch.from_numpy(data.labels.astype(np.int64)).to(device)
    idx = [torch.as_tensor(np.asarray(i), dtype=torch.long) for i in train_sets]
    gens = [torch.Generator().manual_seed(seed) for _ in idx]  # one stream per model: independent of the group
    priors = _prior_rows(data, train_sets, model_cfg.n_classes, train_cfg.priors).to(device)  # (n_models, rows, C)
    soft = None if soft_targets is None else torch.as_tensor(np.asarray(soft_targets), dtype=torch.float32).to(device)
    opt = make_optimizer(list(params.values()), train_cfg)
    total = steps_per_epoch * train_cfg.epochs
    warmup = max(1, int(train_cfg.warmup_epochs * steps_per_epoch))
    ema = {k: v.detach().clone() for k, v in params.items()} if train_cfg.ema > 0 else None
    eval_x = _padded(x_all, eval_sets) if eval_sets is not None else None
    epoch_scores, step = [], 0
    for _ in progress(range(train_cfg.epochs), desc="epochs", unit="ep", leave=False, disable=not show_progress):
        base.train()
        orders = [i[torch.randperm(len(i), generator=g)] for i, g in zip(idx, gens)]
        for b in range(steps_per_epoch):
            rows = torch.stack([o[b * bs:(b + 1) * bs] for o in orders])  # (n_models, bs)
            yb = y_all[rows]
            choices = [draw_augmentation(y, train_cfg, g, x_all.shape[-1]) for y, g in zip(yb.cpu(), gens)]
            xb = apply_augmentation(x_all[rows], {k: torch.stack([c[k] for c in choices]) for k in choices[0]},
                                    train_cfg)
            for group in opt.param_groups:
                group["lr"] = (lr_at(step, total, warmup, train_cfg.lr) if train_cfg.schedule == "cosine"
                               else train_cfg.lr)
            # summed over models: each model's gradient is the gradient of its own mean loss
            per_row = rows.to(device)[:, :, None].expand(-1, -1, priors.shape[-1])
            row_priors = torch.gather(priors, 1, per_row)  # without distillation it only fills the slot
            loss = loss_of(batched(params, buffers, xb), yb, row_priors,
                           row_priors if soft is None else torch.gather(soft, 1, per_row)).sum()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            step += 1
            if ema is not None:
                with torch.no_grad():
                    torch._foreach_lerp_(list(ema.values()), list(params.values()), 1.0 - train_cfg.ema)
        if eval_x is not None:
            final = ema if ema is not None else params
            epoch_scores.append(_batched_predict(base, final, buffers, eval_x, train_cfg.tta_flip))
    models = _unstack(model_cfg, data.image_size[0], ema if ema is not None else params, buffers, device)
    if eval_sets is None:
        return models, None
    scores = np.stack(epoch_scores, axis=1)  # (n_models, n_epochs, n_eval_max, n_classes)
    return models, [scores[m, :, :len(e)] for m, e in enumerate(eval_sets)]


def _prior_rows(data: FlowDataset, train_sets: Sequence[np.ndarray], n_classes: int, by: str) -> torch.Tensor:
    """(n_models, len(data), n_classes): the class priors of the logit adjustment for every row of
    ``data``, from each model's training rows only: of the whole fold, or of the row's source dataset."""
    if by not in ("fold", "dataset"):
        raise AM3FError(f"priors must be 'fold' or 'dataset', got {by!r}")
    out = torch.empty(len(train_sets), len(data), n_classes)
    for m, rows in enumerate(train_sets):
        out[m] = class_priors(data.labels[rows], n_classes)
        if by == "dataset":
            for ds in np.unique(data.datasets):
                mine = rows[data.datasets[rows] == ds]
                if len(mine):
                    out[m, torch.as_tensor(data.datasets == ds)] = class_priors(data.labels[mine], n_classes)
    return out


def _padded(x_all: torch.Tensor, sets: Sequence[np.ndarray]) -> torch.Tensor:
    # eval sets differ in size: pad with the first row (eval mode: rows do not interact) and cut later
    width = max(len(s) for s in sets)
    return torch.stack([x_all[torch.as_tensor(np.r_[s, np.full(width - len(s), s[0] if len(s) else 0)],
                                              dtype=torch.long)] for s in sets])


@torch.no_grad()
def _batched_predict(base: nn.Module, params: dict, buffers: dict, x: torch.Tensor, tta_flip: bool) -> np.ndarray:
    from torch.func import functional_call, vmap

    base.eval()
    run = vmap(lambda p, b, xx: torch.softmax(functional_call(base, (p, b), (xx,)).double(), dim=-1))
    prob = run(params, buffers, x)
    if tta_flip:
        prob = 0.5 * (prob + run(params, buffers, torch.stack([hflip_flow(xx) for xx in x])))
    return prob.cpu().numpy()


def _unstack(model_cfg: ModelConfig, image_size: int, params: dict, buffers: dict,
             device: torch.device) -> list[nn.Module]:
    models = []
    for m in range(next(iter(params.values())).shape[0]):
        model = build_model(model_cfg, image_size=image_size)
        stored = model.state_dict().keys()  # non-persistent buffers (constants) stay as built
        model.load_state_dict({k: v[m].detach() for k, v in {**params, **buffers}.items() if k in stored})
        models.append(model.to(device).eval())
    return models


def fit(data: FlowDataset, model_cfg: ModelConfig, train_cfg: TrainConfig, *, seed: int = 0,
        device: torch.device | str = "cpu", eval_x: np.ndarray | None = None,
        show_progress: bool = False) -> tuple[nn.Module, np.ndarray | None]:
    """Train one model on all of ``data`` with the fixed schedule (a group of one, see
    :func:`fit_group`). Returns the final model and, if ``eval_x`` is given, its probabilities on
    eval_x after every epoch (audit only)."""
    if eval_x is not None:
        n_eval = len(eval_x)
        joined = FlowDataset(np.concatenate([data.x, eval_x]), np.r_[data.labels, np.zeros(n_eval, np.int64)],
                             np.r_[data.subjects, ["_eval"] * n_eval], np.r_[data.datasets, ["_eval"] * n_eval],
                             np.r_[data.sample_ids, [f"_eval{i}" for i in range(n_eval)]])
        models, scores = fit_group(joined, [np.arange(len(data))], model_cfg, train_cfg, seed=seed, device=device,
                                   eval_sets=[np.arange(len(data), len(joined))], show_progress=show_progress)
        return models[0], scores[0]
    models, _ = fit_group(data, [np.arange(len(data))], model_cfg, train_cfg, seed=seed, device=device,
                          show_progress=show_progress)
    return models[0], None


# ----------------------------------------------------------------------------- LOSO folds, several at a time
def fold_groups(data: FlowDataset, cfg: TrainConfig) -> list[list[int]]:
    """The LOSO folds (indices into ``data.subject_ids``) that are trained together, in groups of at
    most ``cfg.fold_group``. Folds share a group only when their training sets need the same batches
    per epoch. The grouping depends on the data and the config alone, never on which folds a process
    runs, so a fold's result is the same whatever the workers, shards or scheduler."""
    by_shape: dict[tuple, list[int]] = {}
    for k, subject in enumerate(data.subject_ids):
        n = int((data.subjects != subject).sum())
        key = epoch_steps(n, cfg) + (() if cfg.drop_last else (n,))
        by_shape.setdefault(key, []).append(k)
    size = max(1, cfg.fold_group)
    groups = [folds[i:i + size] for folds in by_shape.values() for i in range(0, len(folds), size)]
    return sorted(groups)


def teacher_targets(data: FlowDataset, train_sets: Sequence[np.ndarray], teachers: Sequence[str], *, seed: int,
                    device: torch.device | str = "cpu") -> np.ndarray:
    """Distillation targets (len(train_sets), len(data), n_classes): the mean over ``teachers`` (variant
    names, each trained on exactly that training set with its own recipe) of their mirror-averaged
    probabilities on the set's rows; other rows (never trained on) stay zero."""
    out = None
    for i, name in enumerate(teachers):
        model_cfg, train_cfg = resolve_variant(name)
        teacher_seed = seed + 100 * (i + 1)  # the teachers' streams differ from the student's
        together = len({epoch_steps(len(t), train_cfg) for t in train_sets}) == 1  # else one at a time
        models = (fit_group(data, train_sets, model_cfg, train_cfg, seed=teacher_seed, device=device)[0] if together
                  else [fit_group(data, [t], model_cfg, train_cfg, seed=teacher_seed, device=device)[0][0]
                        for t in train_sets])
        if out is None:
            out = np.zeros((len(train_sets), len(data), model_cfg.n_classes))
        for m, (model, rows) in enumerate(zip(models, train_sets)):
            out[m, rows] += predict(model, data.x[rows], device, tta_flip=train_cfg.tta_flip) / len(teachers)
    return out


class TrainRunner:
    """LOSO fold runner (see :func:`am3f.loso.run_loso`): fits on the training subjects only with the
    fixed schedule, then predicts the held-out subject once. Folds are trained in the groups of
    :func:`fold_groups` (``run_group``); ``n_models`` > 1 averages that many models per fold."""

    def __init__(self, model_cfg: ModelConfig, train_cfg: TrainConfig, device: torch.device | str = "cpu",
                 record_epochs: bool = True):
        self.model_cfg, self.train_cfg = model_cfg, train_cfg
        self.device = str(device)
        self.record_epochs = record_epochs
        self.init_state = None

    def prepare(self) -> None:
        """Work shared by every fold, done once before the folds are sent out: the pre-trained
        weights (they then travel with the runner, so workers need no shared cache)."""
        if self.train_cfg.pretrain and self.init_state is None:
            self.init_state = pretrained_state(self.model_cfg, self.train_cfg, fit)

    def groups(self, data: FlowDataset) -> list[list[int]]:
        return fold_groups(data, self.train_cfg)

    def run_group(self, data: FlowDataset, folds: Sequence[int], *, seed: int) -> list[FoldOutput]:
        if self.train_cfg.input_norm not in ("", "dataset"):
            raise AM3FError(f"input_norm must be '' or 'dataset', got {self.train_cfg.input_norm!r}")
        if self.train_cfg.input_norm and len(folds) > 1:  # each fold has its own normalised images
            return [out for k in folds for out in self.run_group(data, [k], seed=seed)]
        if self.train_cfg.input_norm:
            data = dataset_normalised(data, np.flatnonzero(data.subjects != data.subject_ids[folds[0]]))
        t0 = time.perf_counter()
        subjects = [data.subject_ids[k] for k in folds]
        train_sets = [np.flatnonzero(data.subjects != s) for s in subjects]
        test_sets = [np.flatnonzero(data.subjects == s) for s in subjects]
        probs, epochs = [], []
        for k in range(self.train_cfg.n_models):
            soft = (teacher_targets(data, train_sets, self.train_cfg.distill_from, seed=seed * 1000 + k,
                                    device=self.device) if self.train_cfg.distill_from else None)
            models, ep = fit_group(data, train_sets, self.model_cfg, self.train_cfg, seed=seed * 1000 + k,
                                   device=self.device, eval_sets=test_sets if self.record_epochs else None,
                                   init_state=self.init_state, soft_targets=soft)
            probs.append([predict(m, data.x[t], self.device, tta_flip=self.train_cfg.tta_flip)
                          for m, t in zip(models, test_sets)])
            epochs.append(ep)
        fit_s = round((time.perf_counter() - t0) / len(folds), 3)
        out = []
        for j, tr in enumerate(train_sets):
            priors = class_priors(data.labels[tr], self.model_cfg.n_classes).tolist()
            epoch_scores = np.mean([e[j] for e in epochs], axis=0) if self.record_epochs else None
            out.append(FoldOutput(scores=np.mean([p[j] for p in probs], axis=0), epoch_scores=epoch_scores,
                                  info={"fit_s": fit_s, "fold_group": list(folds),
                                        "train_priors": [round(p, 4) for p in priors]}))
        return out

    def __call__(self, train: FlowDataset, test: FlowDataset, *, seed: int, fold: int) -> FoldOutput:
        """One fold on its own (a group of one)."""
        joined = FlowDataset(np.concatenate([train.x, test.x]), np.r_[train.labels, test.labels],
                             np.r_[train.subjects, test.subjects], np.r_[train.datasets, test.datasets],
                             np.r_[train.sample_ids, test.sample_ids])
        return self.run_group(joined, [joined.subject_ids.index(str(test.subjects[0]))], seed=seed)[0]
