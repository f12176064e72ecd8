"""What training a model needs in memory, and how many LOSO folds can therefore train together.

The batched engine (:func:`am3f.training.fit.fit_group`) trains a group of folds as one stacked computation:
each model of the group holds its parameters, their gradients and the optimizer's state, and the
activations that backward needs at the recipe's batch size. :func:`estimate` measures those for
ONE model, on this torch, from the model itself: parameters are counted and activations are the
tensors autograd saves during one training step on a small batch (``saved_tensors_hooks``), scaled
to the batch size. No per-architecture table: a new or user model is measured the same way.

Two uses, kept apart so that results never depend on the machine:

* :func:`group_size`: the folds of a group are capped so that the group's estimate stays under
  :data:`GROUP_BUDGET_BYTES`, a DECLARED constant (our choice: 8 GiB, so that two workers fit a
  24 GB machine and every model trained before this cap keeps its group of 17: the largest,
  Dual-Inception, is estimated at 5.4 GiB for 17, and their results are unchanged). The grouping
  is part of the recipe's computation (float rounding differs slightly with the group size), so it
  comes from the model and the recipe only, never from how much memory a machine has free.
* :func:`plan`: before anything trains, the command compares one group's estimate (times the number
  of worker processes) with the memory available on this machine (or GPU). It lowers the worker
  count when they do not fit together (workers never change results), and refuses in one line,
  with the estimate, when even one model alone cannot fit.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass, replace

from am3f.errors import AM3FError
from am3f.training.recipe import TrainConfig
from am3f.utils import available_bytes  # noqa: F401 - memory's own question, asked here too

GIB = 1024 ** 3
GROUP_BUDGET_BYTES = 8 * GIB  # declared: what one group of stacked fold models may need (see above)
# Measured on the composite set (peak resident memory of one group, 1 epoch, minus the process before
# it; estimate in brackets): AM3F-FlowNet x17 0.47 GiB (0.42), HTNet-small x17 1.27 (1.95),
# OFF-ApexNet x17 1.28 (2.35), Dual-Inception x17 3.97 (5.7), HTNet x1 3.6 (6.6).
# Saved activations are freed during backward as their gradients appear, so counting them once
# (plus the fixed costs) bounds the peak from above.
ACTIVATION_HEADROOM = 1.0
_GROUP_BYTES = 256 * 1024 ** 2  # per group, whatever the model: the stacked batch, vmap's buffers, the data
_OPTIMIZER_STATES = {"adam": 2, "adamw": 2, "sgd": 1}  # tensors per parameter: Adam's two moments, SGD's momentum
_PROCESS_BYTES = 600 * 1024 ** 2  # a worker process before it trains: torch, its libraries, the dataset


@dataclass(frozen=True)
class MemoryEstimate:
    """Bytes one model needs while it trains: ``fixed`` (parameters, gradients, optimizer state,
    weight average) and ``per_sample`` (activations kept for backward, with headroom)."""

    parameters: int
    fixed: int
    per_sample: int
    batch_size: int

    @property
    def per_model(self) -> int:
        return self.fixed + self.per_sample * self.batch_size

    def describe(self) -> str:
        return (f"{self.per_model / GIB:.2f} GiB per model: {self.parameters:,} parameters, "
                f"{self.fixed / GIB:.2f} GiB with gradients and optimizer state, activations "
                f"{self.per_sample * self.batch_size / GIB:.2f} GiB at batch {self.batch_size}")


def _saved_activation_bytes(model, image_size: int, batch: int) -> int:
    """Bytes of the tensors autograd saves for backward in one training step of ``model`` on a
    random batch (each storage counted once)."""
    import torch

    seen: dict[tuple, int] = {}

    def pack(t):
        try:
            key = (t.untyped_storage().data_ptr(), t.device.type)
            seen[key] = max(seen.get(key, 0), t.untyped_storage().nbytes())
        except (RuntimeError, NotImplementedError):  # a tensor without a plain storage
            seen[(id(t), "other")] = t.numel() * t.element_size()
        return t

    x = torch.rand(batch, 3, image_size, image_size)
    model.train()
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        loss = model(x).float().logsumexp(1).sum()
    loss.backward()
    return sum(seen.values()) + x.numel() * x.element_size()


@functools.cache
def _measured(model_json: str, train_json: str, image_size: int) -> MemoryEstimate:
    import torch

    from am3f.models.registry import build_model, model_config_from_dict

    train_cfg = TrainConfig.from_dict(json.loads(train_json))
    with torch.random.fork_rng():
        torch.manual_seed(0)
        model = build_model(model_config_from_dict(json.loads(model_json)), image_size=image_size)
    n_params = sum(p.numel() for p in model.parameters())
    param_bytes = sum(p.numel() * p.element_size() for p in model.parameters())
    copies = 2 + _OPTIMIZER_STATES[train_cfg.optimizer] + (1 if train_cfg.ema > 0 else 0)
    probe = 4  # a small batch: activations grow linearly with it (batch norm keeps per-channel stats only)
    small, double = (_saved_activation_bytes(model, image_size, b) for b in (probe, 2 * probe))
    per_sample = max(double - small, small // 2, 1) / probe * ACTIVATION_HEADROOM
    return MemoryEstimate(n_params, copies * param_bytes, int(per_sample), train_cfg.batch_size)


def estimate(model_cfg, train_cfg: TrainConfig, image_size: int = 28, n_train: int | None = None) -> MemoryEstimate:
    """What one model of ``model_cfg`` needs while it trains with ``train_cfg`` (batch size: the
    recipe's, or ``n_train`` when the training set is smaller). Measured once per process."""
    est = _measured(json.dumps(model_cfg.to_dict(), sort_keys=True), json.dumps(train_cfg.to_dict(), sort_keys=True),
                    image_size)
    return est if n_train is None else replace(est, batch_size=min(train_cfg.batch_size, n_train))


def group_bytes(est: MemoryEstimate, group: int) -> int:
    """The estimate of a group of ``group`` stacked models."""
    return est.per_model * group + _GROUP_BYTES


def group_size(model_cfg, train_cfg: TrainConfig, image_size: int = 28) -> int:
    """How many folds train together: the recipe's ``fold_group``, capped so that the group's
    estimate stays under the declared :data:`GROUP_BUDGET_BYTES` (at least 1)."""
    if train_cfg.fold_group == 1:
        return 1
    need = estimate(model_cfg, train_cfg, image_size).per_model
    return int(max(1, min(train_cfg.fold_group, (GROUP_BUDGET_BYTES - _GROUP_BYTES) // need)))


@dataclass(frozen=True)
class MemoryPlan:
    estimate: MemoryEstimate
    group: int  # folds per group
    workers: int  # worker processes that fit together
    available: int

    @property
    def per_worker(self) -> int:
        return group_bytes(self.estimate, self.group) + _PROCESS_BYTES


def plan(model_cfg, train_cfg: TrainConfig, *, workers: int, device: str = "cpu", image_size: int = 28,
         n_train: int | None = None, available: int | None = None) -> MemoryPlan:
    """The memory plan of a LOSO command: folds per group, and how many of the ``workers`` asked for
    fit in the memory available (``n_train``: the largest training set, which bounds the batch).
    Raises :class:`AM3FError` (one line, with the estimate) when one group alone does not fit."""
    est = estimate(model_cfg, train_cfg, image_size, n_train)
    group = group_size(model_cfg, train_cfg, image_size)
    free = available_bytes(device) if available is None else available
    per_worker = group_bytes(est, group) + _PROCESS_BYTES
    if per_worker > free:
        alone = group_bytes(est, 1) + _PROCESS_BYTES
        hint = (f"; --fold-group 1 needs {alone / GIB:.1f} GiB" if group > 1 and alone <= free
                else "" if str(device).startswith("cuda") else "; a GPU (--device cuda) or a smaller --batch-size "
                                                                "needs less")
        raise AM3FError(f"{model_cfg.arch} cannot train here: a group of {group} fold model(s) needs about "
                        f"{per_worker / GIB:.1f} GiB ({est.describe()}); {free / GIB:.1f} GiB is available{hint}")
    return MemoryPlan(est, group, int(max(1, min(workers, free // per_worker))), free)
