"""The batched fit: many models of one architecture trained in ONE vmapped computation, and prediction.

Honest protocol. A fold's prediction is the model (its EMA weights, when enabled) after the fixed,
pre-declared schedule of its recipe (:class:`am3f.training.recipe.TrainConfig`); nothing looks at the held-out
subject before the end. Per-epoch held-out probabilities may be *recorded* (``eval_sets``) for the
protocol audit only; they never select anything. Class priors for the logit-adjusted loss come from
each model's training rows only.

What a whole recipe adds around a fit (ensemble members, the LOSO folds' rows and seeds) is
:mod:`am3f.protocol.fold_runner`'s; the optimizer and the
learning-rate schedule are :mod:`am3f.training.optim`'s; augmentation is :mod:`am3f.training.augment`'s.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from contextlib import contextmanager
from functools import partial

import numpy as np
import torch
from torch import nn

from am3f.data.dataset import FlowDataset
from am3f.models.registry import build_model
from am3f.training.augment import apply_augmentation, draw_augmentation, hflip_flow
from am3f.training.losses import class_priors, logit_adjusted_cross_entropy
from am3f.training.optim import Schedule, make_optimizer
from am3f.training.recipe import TrainConfig
from am3f.utils import progress

# The engine's numerical revision, recorded in every run's config.json and tuning candidate's identity, so
# that a cached result is never resumed or reused by code that rounds differently (am3f.protocol.launch,
# am3f.protocol.tuning).
# 1: every group through vmap. 2 (issue 32): a group of one trains the plain module (SingleModel), up to
# 2x faster per step; its rounding differs from vmap's. Groups of two or more are unchanged.
ENGINE_REVISION = 2


# ----------------------------------------------------------------------------- stacked models
class StackedModels:
    """``n`` copies of one model as stacked weights, run together through ``torch.func.vmap`` over the
    one model definition: the CPU (or GPU) sees batches of n x batch_size images instead of n small ones.
    Every copy starts from ``model``'s weights; dropout masks are shared (``randomness="same"``), as
    one model trained alone with the same seed would draw them."""

    def __init__(self, model: nn.Module, n: int, device: torch.device):
        from torch.func import stack_module_state, vmap

        params, buffers = stack_module_state([model] * n)
        self.params = {k: v.to(device).detach().requires_grad_() for k, v in params.items()}
        self.buffers = {k: v.to(device) for k, v in buffers.items()}
        self.base = copy.deepcopy(model).to("meta")  # the definition only; the weights live in params
        self._forward = vmap(self._one, randomness="same")

    def _one(self, params: dict, buffers: dict, x: torch.Tensor) -> torch.Tensor:
        from torch.func import functional_call

        return functional_call(self.base, (params, buffers), (x,))

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """Logits (n, batch, classes) of a stacked batch x (n, batch, 3, H, W), in training mode."""
        self.base.train()
        return self._forward(self.params, self.buffers, x)

    @torch.no_grad()
    def probabilities(self, x: torch.Tensor, tta_flip: bool, params: dict | None = None) -> np.ndarray:
        """Class probabilities (n, batch, classes) in eval mode; ``params``: other weights (the EMA)."""
        from torch.func import functional_call, vmap

        self.base.eval()
        params = self.params if params is None else params
        run = vmap(lambda p, b, xx: torch.softmax(functional_call(self.base, (p, b), (xx,)).double(), dim=-1))
        prob = run(params, self.buffers, x)
        if tta_flip:
            prob = 0.5 * (prob + run(params, self.buffers, torch.stack([hflip_flow(xx) for xx in x])))
        return prob.cpu().numpy()

    def unstack(self, build, params: dict | None = None) -> list[nn.Module]:
        """One ordinary module per copy (eval mode), built by ``build()`` and given that copy's weights."""
        params = self.params if params is None else params
        models = []
        for m in range(next(iter(params.values())).shape[0]):
            model = build()
            stored = model.state_dict().keys()  # non-persistent buffers (constants) stay as built
            model.load_state_dict({k: v[m].detach() for k, v in {**params, **self.buffers}.items() if k in stored})
            models.append(model.to(next(iter(params.values())).device).eval())
        return models


class SingleModel:
    """One model trained alone (a group of one), with :class:`StackedModels`' interface (a leading model
    axis of 1) but run as the plain module: vmap and ``functional_call`` cost 1.1-2x per step on one
    model (benchmarks/bench_peers.py; docs/design-choices.md), which is every peer's declared group.
    ``channels_last``: images and weights in NHWC memory (:attr:`TrainConfig.channels_last`), also in the
    models it hands back, so that their predictions round as the training's audit scores did."""

    def __init__(self, model: nn.Module, device: torch.device, channels_last: bool = False):
        self.layout = torch.channels_last if channels_last else torch.contiguous_format
        self.model = model.to(device, memory_format=self.layout)
        self.params = dict(self.model.named_parameters())

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        self.model.train()
        return self.model(x[0].contiguous(memory_format=self.layout))[None]

    @torch.no_grad()
    def probabilities(self, x: torch.Tensor, tta_flip: bool, params: dict | None = None) -> np.ndarray:
        from torch.func import functional_call

        self.model.eval()
        weights = self.params if params is None else params
        run = lambda xx: torch.softmax(functional_call(  # noqa: E731
            self.model, weights, (xx.contiguous(memory_format=self.layout),)).double(), dim=-1)
        prob = run(x[0])
        if tta_flip:
            prob = 0.5 * (prob + run(hflip_flow(x[0])))
        return prob[None].cpu().numpy()

    def unstack(self, build, params: dict | None = None) -> list[nn.Module]:
        model = build().to(memory_format=self.layout)
        weights = {**self.model.state_dict(), **({} if params is None else params)}
        model.load_state_dict({k: v.detach() for k, v in weights.items() if k in model.state_dict()})
        return [model.to(next(iter(self.params.values())).device).eval()]


class WeightAverage:
    """Exponential moving average of stacked weights: ``avg <- decay avg + (1 - decay) w`` per step."""

    def __init__(self, params: dict, decay: float):
        self.decay = decay
        self.params = {k: v.detach().clone() for k, v in params.items()}

    @torch.no_grad()
    def update(self, params: dict) -> None:
        torch._foreach_lerp_(list(self.params.values()), list(params.values()), 1.0 - self.decay)


# ----------------------------------------------------------------------------- the loss and the data
def recipe_loss(logits: torch.Tensor, y: torch.Tensor, priors: torch.Tensor, *, cfg: TrainConfig) -> torch.Tensor:
    """One model's loss: logit-adjusted cross-entropy with the training rows' class ``priors``."""
    return logit_adjusted_cross_entropy(logits, y, priors, cfg.tau, cfg.weight_power, cfg.label_smoothing)


def prior_rows(data: FlowDataset, train_sets: Sequence[np.ndarray], n_classes: int) -> torch.Tensor:
    """(n_models, len(data), n_classes): the class priors of the logit adjustment for every row of
    ``data``, from each model's training rows only (the class frequencies of the whole fold)."""
    out = torch.empty(len(train_sets), len(data), n_classes)
    for m, rows in enumerate(train_sets):
        out[m] = class_priors(data.labels[rows], n_classes)
    return out


def augmented_batch(x_all: torch.Tensor, y_all: torch.Tensor, rows: torch.Tensor, cfg: TrainConfig,
                    gens: Sequence[torch.Generator]) -> tuple[torch.Tensor, torch.Tensor]:
    """Images and labels of the stacked batch ``rows`` (n_models, bs), each model's augmentation drawn
    from its own generator (so it does not depend on the models it is stacked with)."""
    yb = y_all[rows]
    choices = [draw_augmentation(y, cfg, g, x_all.shape[-1]) for y, g in zip(yb.cpu(), gens)]
    xb = apply_augmentation(x_all[rows], {k: torch.stack([c[k] for c in choices]) for k in choices[0]}, cfg)
    return xb, yb


def _padded(x_all: torch.Tensor, sets: Sequence[np.ndarray]) -> torch.Tensor:
    # eval sets differ in size: pad with the first row (eval mode: rows do not interact) and cut later
    width = max(len(s) for s in sets)
    return torch.stack([x_all[torch.as_tensor(np.r_[s, np.full(width - len(s), s[0] if len(s) else 0)],
                                              dtype=torch.long)] for s in sets])


def common_steps(train_sets: Sequence[np.ndarray], cfg: TrainConfig) -> tuple[int, int]:
    """(batch size, steps per epoch) shared by every training set of one batched fit."""
    sizes = {cfg.epoch_steps(len(idx)) for idx in train_sets}
    if len(sizes) != 1 or (not cfg.drop_last and len({len(idx) for idx in train_sets}) != 1):
        raise AssertionError(f"models of one group need equal batches per epoch, got {sorted(sizes)}")
    return sizes.pop()


# ----------------------------------------------------------------------------- fitting
_EPOCH_LISTENERS: list[Callable[[int, int], None]] = []


@contextmanager
def reporting_epochs(listener: Callable[[int, int], None]):
    """Inside the block, every fit calls ``listener(epoch, epochs)`` after each epoch: how progress
    reports (:class:`am3f.protocol.engine.GroupProgress`) learn where a training is, without changing it."""
    _EPOCH_LISTENERS.append(listener)
    try:
        yield
    finally:
        _EPOCH_LISTENERS.remove(listener)


def fit_group(data: FlowDataset, train_sets: Sequence[np.ndarray], model_cfg, train_cfg: TrainConfig, *,
              seed: int = 0, device: torch.device | str = "cpu", eval_sets: Sequence[np.ndarray] | None = None,
              threads: int = 1, show_progress: bool = False) -> tuple[list[nn.Module], list[np.ndarray] | None]:
    """Train one model per index array of ``train_sets`` (rows of ``data``), all in ONE batched
    computation (:class:`StackedModels`), with the fixed schedule of ``train_cfg``.

    Each model's training does not depend on which others share its group (up to float rounding):
    its data order and augmentation come from its own generator, and the models share their initial
    weights (``seed``) and dropout masks, as one model trained alone with ``seed`` would have. All
    training sets must need the same steps per epoch (:func:`am3f.protocol.folds.fold_groups`). ``threads``:
    torch CPU threads (an execution setting).

    Returns the final models (EMA weights when enabled), in eval mode, and, when ``eval_sets`` (index
    arrays) are given, each model's probabilities on its eval set after every epoch (n_epochs,
    n_eval, n_classes), for the protocol audit only."""
    device = torch.device(device)
    if device.type == "cpu":
        torch.set_num_threads(threads)
    bs, steps_per_epoch = common_steps(train_sets, train_cfg)
    torch.manual_seed(seed)  # initial weights, then the dropout masks: the same stream a lone model draws
    build = partial(build_model, model_cfg, image_size=data.image_size[0])
    model = build()
    net = (SingleModel(model, device, channels_last=train_cfg.channels_last) if len(train_sets) == 1
           else StackedModels(model, len(train_sets), device))
    loss_one = partial(recipe_loss, cfg=train_cfg)
    loss_of = (lambda *a: loss_one(*(t[0] for t in a))[None]) if len(train_sets) == 1 else torch.func.vmap(loss_one)
    x_all = torch.from_numpy(np.ascontiguousarray(data.x, dtype=np.float32)).to(device)
    y_all = torch.from_numpy(data.labels.astype(np.int64)).to(device)
    idx = [torch.as_tensor(np.asarray(i), dtype=torch.long) for i in train_sets]
    gens = [torch.Generator().manual_seed(seed) for _ in idx]  # one stream per model: independent of the group
    priors = prior_rows(data, train_sets, model_cfg.n_classes).to(device)
    opt = make_optimizer(list(net.params.values()), train_cfg)
    schedule = Schedule(train_cfg, steps_per_epoch)
    ema = WeightAverage(net.params, train_cfg.ema) if train_cfg.ema > 0 else None
    eval_x = _padded(x_all, eval_sets) if eval_sets is not None else None
    epoch_scores, step = [], 0
    for epoch in progress(range(train_cfg.epochs), desc="epochs", unit="ep", leave=False, disable=not show_progress):
        orders = [i[torch.randperm(len(i), generator=g)] for i, g in zip(idx, gens)]
        epoch_loss = torch.zeros(len(idx), device=device)  # per model: checked once per epoch (one sync)
        for b in range(steps_per_epoch):
            schedule.apply(opt, step)
            rows = torch.stack([o[b * bs:(b + 1) * bs] for o in orders])  # (n_models, bs)
            xb, yb = augmented_batch(x_all, y_all, rows, train_cfg, gens)
            # each row's priors, from its own model's training rows
            per_row = rows.to(device)[:, :, None].expand(-1, -1, priors.shape[-1])
            row_priors = torch.gather(priors, 1, per_row)
            # summed over models: each model's gradient is the gradient of its own mean loss
            per_model = loss_of(net(xb), yb, row_priors)
            loss = per_model.sum()
            epoch_loss += per_model.detach()
            opt.zero_grad()
            loss.backward()
            opt.step()
            step += 1
            if ema is not None:
                ema.update(net.params)
        refuse_non_finite(epoch_loss, data, train_sets, model_cfg.arch, seed, epoch)
        if eval_x is not None:
            epoch_scores.append(net.probabilities(eval_x, train_cfg.tta_flip, ema.params if ema else None))
        for listener in _EPOCH_LISTENERS:
            listener(epoch + 1, train_cfg.epochs)
    models = net.unstack(build, ema.params if ema else None)
    if eval_sets is None:
        return models, None
    scores = np.stack(epoch_scores, axis=1)  # (n_models, n_epochs, n_eval_max, n_classes)
    return models, [scores[m, :, :len(e)] for m, e in enumerate(eval_sets)]


def refuse_non_finite(epoch_loss: torch.Tensor, data: FlowDataset, train_sets: Sequence[np.ndarray], arch: str,
                      seed: int, epoch: int) -> None:
    """Stop, in one line naming model, fold, seed and epoch, when a model's summed training loss of an
    epoch is NaN or infinite (non-finite logits make it so): such a model would be scored as if it learned."""
    bad = (~torch.isfinite(epoch_loss)).nonzero().flatten().tolist()
    if not bad:
        return
    from am3f.errors import AM3FError

    held_out = sorted(set(data.subject_ids) - set(data.subjects[train_sets[bad[0]]].tolist()) - {"_eval"})
    fold = f"the fold holding out {', '.join(held_out[:3])}" if held_out else "the model trained on every subject"
    raise AM3FError(f"{arch}: non-finite training loss (NaN or inf logits) in {fold}, seed {seed}, epoch {epoch + 1}; "
                    f"stopped ({len(bad)} of {len(train_sets)} model(s) of its group are affected)")


def fit(data: FlowDataset, model_cfg, train_cfg: TrainConfig, *, seed: int = 0, device: torch.device | str = "cpu",
        eval_x: np.ndarray | None = None, show_progress: bool = False) -> tuple[nn.Module, np.ndarray | None]:
    """Train one model on all of ``data`` with the fixed schedule (a group of one, see
    :func:`fit_group`). Returns the final model and, if ``eval_x`` is given, its probabilities on
    eval_x after every epoch (audit only)."""
    if eval_x is not None:
        n_eval = len(eval_x)
        unlabelled = FlowDataset(np.asarray(eval_x), np.zeros(n_eval, np.int64), np.array(["_eval"] * n_eval),
                                 np.array(["_eval"] * n_eval), np.array([f"_eval{i}" for i in range(n_eval)]))
        joined = data.joined(unlabelled)
        models, scores = fit_group(joined, [np.arange(len(data))], model_cfg, train_cfg, seed=seed, device=device,
                                   eval_sets=[np.arange(len(data), len(joined))], show_progress=show_progress)
        return models[0], scores[0]
    models, _ = fit_group(data, [np.arange(len(data))], model_cfg, train_cfg, seed=seed, device=device,
                          show_progress=show_progress)
    return models[0], None


# ----------------------------------------------------------------------------- prediction
@torch.no_grad()
def predict(model: nn.Module, x: np.ndarray | torch.Tensor, device: torch.device | str = "cpu",
            batch_size: int = 512, tta_flip: bool = False) -> np.ndarray:
    """Class probabilities (n, n_classes) of flow images x (n, 3, H, W) in [0, 1], (u, v, strain).

    ``tta_flip``: average with the prediction of the mirrored flow (maps mirrored, u negated)."""
    model.eval()
    x = torch.as_tensor(np.asarray(x, dtype=np.float32))
    layout = memory_layout(model)
    out = []
    for i in range(0, len(x), batch_size):
        xb = x[i:i + batch_size].to(device).contiguous(memory_format=layout)
        p = torch.softmax(model(xb).double(), dim=1)
        if tta_flip:
            p = 0.5 * (p + torch.softmax(model(hflip_flow(xb)).double(), dim=1))
        out.append(p.cpu())
    return torch.cat(out).numpy() if out else np.zeros((0, model.cfg.n_classes))


def memory_layout(model: nn.Module) -> torch.memory_format:
    """channels_last when the model's convolution weights are (a model trained so, :class:`SingleModel`), so its
    predictions take their images in that layout too and round as its training did; else NCHW."""
    # a kernel with one input channel (or 1x1) is laid out alike in both: it does not tell
    telling = [p for p in model.parameters() if p.dim() == 4
               and p.is_contiguous() != p.is_contiguous(memory_format=torch.channels_last)]
    if telling and all(p.is_contiguous(memory_format=torch.channels_last) for p in telling):
        return torch.channels_last
    return torch.contiguous_format
