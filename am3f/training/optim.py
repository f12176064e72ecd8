"""The recipe's optimizer and learning-rate schedule (:class:`am3f.training.recipe.TrainConfig`)."""

from __future__ import annotations

import math

import torch

from am3f.training.recipe import TrainConfig


class Optimizer:
    """The recipe's update rule written out (nanoGPT-style): what ``fit_group`` calls of an optimizer
    (``param_groups[0]["lr"]``, ``zero_grad``, ``step``) and nothing else. Each update runs the kernels
    ``torch.optim`` runs for it (``torch._fused_adam_`` / ``torch._fused_adamw_``; ``torch._foreach_*``
    for SGD), in the same order, so the weights are bit for bit those of ``torch.optim.Adam(fused=True)``,
    ``AdamW(fused=True)`` and ``SGD(foreach=True)`` (tests/test_optim.py). Why not those classes: the first
    ``torch.optim`` optimizer a process builds imports ``torch._dynamo`` (1.4 s on a 2-core machine) and
    tearing it down at exit costs another 0.5-1 s; for a short LOSO command that is a fifth of its wall
    time (docs/design-choices.md, "A command's fixed costs"). Parameters without a gradient are skipped, as
    ``torch.optim`` skips them."""

    def __init__(self, params: list[torch.Tensor], lr: float):
        self.params = list(params)
        self.param_groups = [{"lr": lr}]  # what Schedule.apply sets before every step

    def zero_grad(self) -> None:
        """Gradients to None (``torch.optim``'s default): the next backward writes them afresh."""
        for p in self.params:
            p.grad = None

    def _with_grads(self) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        params = [p for p in self.params if p.grad is not None]
        return params, [p.grad for p in params]


class FusedAdam(Optimizer):
    """Adam (``decoupled``: AdamW) with betas (0.9, 0.999), eps 1e-8: torch's one fused kernel for every tensor."""

    def __init__(self, params: list[torch.Tensor], lr: float, weight_decay: float, decoupled: bool):
        super().__init__(params, lr)
        self.weight_decay, self.kernel = weight_decay, torch._fused_adamw_ if decoupled else torch._fused_adam_
        self.state: dict[int, tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = {}  # id(param): step, m, v

    @torch.no_grad()
    def step(self) -> None:
        params, grads = self._with_grads()
        if not params:
            return
        for p in params:
            if id(p) not in self.state:  # lazily, as torch.optim: the step count is a float32 tensor
                self.state[id(p)] = (torch.zeros((), dtype=torch.float32, device=p.device),
                                     torch.zeros_like(p, memory_format=torch.preserve_format),
                                     torch.zeros_like(p, memory_format=torch.preserve_format))
        steps, exp_avgs, exp_avg_sqs = (list(t) for t in zip(*(self.state[id(p)] for p in params)))
        torch._foreach_add_(steps, 1)
        self.kernel(params, grads, exp_avgs, exp_avg_sqs, [], steps, amsgrad=False, lr=self.param_groups[0]["lr"],
                    beta1=0.9, beta2=0.999, weight_decay=self.weight_decay, eps=1e-8, maximize=False,
                    grad_scale=None, found_inf=None)


class ForeachSGD(Optimizer):
    """SGD with momentum 0.9 (Nesterov or not) and L2 weight decay, as ``torch.optim.SGD(foreach=True)``."""

    def __init__(self, params: list[torch.Tensor], lr: float, weight_decay: float, nesterov: bool,
                 momentum: float = 0.9):
        super().__init__(params, lr)
        self.weight_decay, self.nesterov, self.momentum = weight_decay, nesterov, momentum
        self.buffers: dict[int, torch.Tensor] = {}  # id(param): momentum buffer

    @torch.no_grad()
    def step(self) -> None:
        params, grads = self._with_grads()
        if not params:
            return
        if self.weight_decay != 0:
            grads = torch._foreach_add(grads, params, alpha=self.weight_decay)
        if all(id(p) in self.buffers for p in params):
            bufs = [self.buffers[id(p)] for p in params]
            torch._foreach_mul_(bufs, self.momentum)
            torch._foreach_add_(bufs, grads, alpha=1.0)
        else:  # a first step (torch.optim's per-tensor path): the buffer starts as the gradient
            bufs = []
            for p, g in zip(params, grads):
                if id(p) not in self.buffers:
                    self.buffers[id(p)] = g.detach().clone()
                else:
                    self.buffers[id(p)].mul_(self.momentum).add_(g, alpha=1.0)
                bufs.append(self.buffers[id(p)])
        if self.nesterov:
            torch._foreach_add_(grads, bufs, alpha=self.momentum)
        else:
            grads = bufs
        torch._foreach_add_(params, grads, alpha=-self.param_groups[0]["lr"])


def make_optimizer(params: list[torch.Tensor], cfg: TrainConfig) -> Optimizer:
    """The recipe's optimizer. Every update is elementwise, so one optimizer over the stacked weights
    of several models updates each model exactly as its own optimizer would. Adam(W) runs fused (one
    kernel for all tensors): a batched LOSO seed in one CPU process 13 % faster than with ``foreach``,
    which CPUs run tensor by tensor (benchmarks/bench_loso.py --speed; float rounding differs)."""
    if cfg.optimizer in ("adam", "adamw"):
        return FusedAdam(params, cfg.lr, cfg.weight_decay, decoupled=cfg.optimizer == "adamw")
    # "sgd" (the recipe admits nothing else)
    return ForeachSGD(params, cfg.lr, cfg.weight_decay, nesterov=cfg.nesterov)


def lr_at(step: int, total: int, warmup: int, peak: float) -> float:
    """Linear warm-up over ``warmup`` steps, then cosine decay to zero at ``total``."""
    if step < warmup:
        return peak * (step + 1) / warmup
    t = (step - warmup) / max(1, total - warmup)
    return peak * 0.5 * (1.0 + math.cos(math.pi * t))


class Schedule:
    """The learning rate of every step of a fit with ``steps_per_epoch`` steps per epoch."""

    def __init__(self, cfg: TrainConfig, steps_per_epoch: int):
        self.cfg = cfg
        self.total = steps_per_epoch * cfg.epochs
        self.warmup = max(1, int(cfg.warmup_epochs * steps_per_epoch))

    def __call__(self, step: int) -> float:
        if self.cfg.schedule == "constant":
            return self.cfg.lr
        return lr_at(step, self.total, self.warmup, self.cfg.lr)

    def apply(self, opt: Optimizer, step: int) -> None:
        for group in opt.param_groups:
            group["lr"] = self(step)
