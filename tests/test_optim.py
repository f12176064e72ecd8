"""The recipe's optimizers (am3f.training.optim) update weights bit for bit as torch.optim's classes the
engine used before (Adam/AdamW fused, SGD foreach), without importing torch._dynamo."""

import subprocess
import sys

import pytest
import torch

from am3f.training.optim import make_optimizer
from am3f.training.recipe import TrainConfig


def _net():
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4), torch.nn.Flatten(),
                               torch.nn.Linear(4 * 6 * 6, 3), torch.nn.Linear(3, 3))


def _reference(params, cfg: TrainConfig):
    if cfg.optimizer == "adam":
        return torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay, fused=True)
    if cfg.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay, fused=True)
    return torch.optim.SGD(params, lr=cfg.lr, momentum=0.9, nesterov=cfg.nesterov, weight_decay=cfg.weight_decay,
                           foreach=True)


def _train(make, cfg: TrainConfig) -> list[torch.Tensor]:
    net = _net()
    opt = make(list(net.parameters()), cfg)
    g = torch.Generator().manual_seed(1)
    for step in range(6):
        opt.param_groups[0]["lr"] = cfg.lr * (1 + step) / 6  # a schedule changes lr between steps
        x = torch.randn(5, 3, 8, 8, generator=g)
        # the last layer gets no gradient in the first steps: torch.optim skips such parameters
        out = net[:4](x) if step < 2 else net(x)
        opt.zero_grad()
        out.square().mean().backward()
        opt.step()
    return [p.detach().clone() for p in net.parameters()]


@pytest.mark.parametrize("optimizer,weight_decay,nesterov", [
    ("adam", 0.0, True), ("adam", 1e-3, True), ("adamw", 0.05, True),
    ("sgd", 0.0, True), ("sgd", 5e-4, True), ("sgd", 5e-4, False)])
def test_updates_are_bit_for_bit_torch_optims(optimizer, weight_decay, nesterov):
    cfg = TrainConfig(optimizer=optimizer, lr=0.01, weight_decay=weight_decay, nesterov=nesterov)
    ours, theirs = _train(make_optimizer, cfg), _train(_reference, cfg)
    assert all(torch.equal(a, b) for a, b in zip(ours, theirs))
    assert not torch.equal(ours[-1], _net()[-1].weight.detach())  # the late layer did train


def test_training_a_fold_does_not_import_torch_dynamo():
    code = ("import sys, numpy as np\n"
            "from am3f.data.dataset import load_dataset\n"
            "from am3f.training.recipe import resolve_variant\n"
            "from am3f.training.fit import fit_group\n"
            "from dataclasses import replace\n"
            "data = load_dataset(None)\n"
            "model_cfg, train_cfg = resolve_variant('ststnet-authors')\n"
            "fit_group(data, [np.arange(40)], model_cfg, replace(train_cfg, epochs=1), eval_sets=[np.arange(40, 50)])\n"
            "print('torch._dynamo' in sys.modules)\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "False"
