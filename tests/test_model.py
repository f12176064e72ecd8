"""AM3F-FlowNet model and loss: shapes for every variant and size, parameter budget, loss identities."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from am3f.models.am3f_flownet import VARIANTS, AM3FFlowNet, ModelConfig
from am3f.models.registry import build_model, count_parameters, get_variant
from am3f.training.losses import class_priors, logit_adjusted_cross_entropy, prior_weights


@pytest.mark.parametrize("name", list(VARIANTS))
@pytest.mark.parametrize("size", [28, 64, 112])
def test_every_variant_every_size(name, size):
    torch.manual_seed(0)
    model = build_model(name, image_size=size).eval()
    x = torch.rand(2, 3, size, size)
    with torch.no_grad():
        out = model(x)
    assert out.shape == (2, 3)
    assert torch.isfinite(out).all()


@pytest.mark.parametrize("name", list(VARIANTS))
def test_parameter_budget(name):
    assert count_parameters(build_model(name)) <= 2_000_000


def test_branches_follow_the_flows():
    model = build_model("uv")
    assert list(model.branches) == ["u", "v"]
    assert len(build_model("full").branches) == 3
    assert len(build_model("strain").branches) == 1


def test_single_branch_sees_only_its_map():
    """The 'u' variant must ignore v and strain (the split is internal)."""
    torch.manual_seed(0)
    model = build_model("u").eval()
    x = torch.rand(4, 3, 28, 28)
    y = x.clone()
    y[:, 1:] = torch.rand(4, 2, 28, 28)
    with torch.no_grad():
        assert torch.allclose(model(x), model(y))


def test_ablation_switches():
    full = build_model("full")
    assert full.mofrw.flow_mlp is not None and full.mofrw.channel_mlps is not None
    plain = build_model("no_mofrw")
    assert plain.mofrw.flow_mlp is None and plain.mofrw.channel_mlps is None
    assert build_model("flow_weights_only").mofrw.channel_mlps is None
    assert build_model("channel_weights_only").mofrw.flow_mlp is None
    assert len(build_model("no_msff").msff["u"].attn) == 0
    assert get_variant("ce_loss")[1] == {"tau": 0.0}


def test_flow_weights_average_one():
    model = build_model("full").eval()
    with torch.no_grad():
        model(torch.rand(5, 3, 28, 28))
    w = model.mofrw.last_flow_weights
    assert w.shape == (5, 3)
    assert torch.allclose(w.mean(1), torch.ones(5), atol=1e-5)


def test_cam_target_layers_work_with_grad_cam():
    pytest.importorskip("pytorch_grad_cam")
    from pytorch_grad_cam import GradCAM

    model = build_model("full").eval()
    layers = model.cam_target_layers()
    assert len(layers) == 3
    with GradCAM(model=model, target_layers=layers[:1]) as cam:
        maps = cam(input_tensor=torch.rand(2, 3, 28, 28), targets=None)
    assert maps.shape == (2, 28, 28)


def test_config_round_trip():
    cfg = get_variant("uv")[0]
    assert ModelConfig.from_dict(cfg.to_dict()) == cfg
    m = build_model(cfg.to_dict())
    assert isinstance(m, AM3FFlowNet)


def test_ststnet_registered():
    model = build_model("ststnet")
    assert count_parameters(model) == 1683


# ----------------------------------------------------------------------------- losses
def test_logit_adjusted_loss_is_ce_on_adjusted_logits():
    torch.manual_seed(0)
    logits, y = torch.randn(16, 3), torch.randint(0, 3, (16,))
    priors = torch.tensor([0.6, 0.25, 0.15])
    for tau in (0.5, 1.0, 2.0):
        ref = F.cross_entropy(logits + tau * priors.log(), y)
        assert torch.allclose(logit_adjusted_cross_entropy(logits, y, priors, tau), ref)


def test_logit_adjusted_loss_reduces_to_ce_at_tau_zero():
    torch.manual_seed(1)
    logits, y = torch.randn(16, 3), torch.randint(0, 3, (16,))
    priors = torch.tensor([0.6, 0.25, 0.15])
    assert torch.allclose(logit_adjusted_cross_entropy(logits, y, priors, 0.0), F.cross_entropy(logits, y))


def test_prior_weighting():
    priors = torch.tensor([0.6, 0.25, 0.15])
    w = prior_weights(priors, 1.0)
    assert torch.allclose((priors * w).sum(), torch.tensor(1.0))
    assert torch.allclose(w * priors, torch.full((3,), 1 / 3), atol=1e-6)  # inverse frequency
    assert torch.allclose(prior_weights(priors, 0.0), torch.ones(3))
    torch.manual_seed(2)
    logits, y = torch.randn(16, 3), torch.randint(0, 3, (16,))
    per = F.cross_entropy(logits + priors.log(), y, reduction="none")
    got = logit_adjusted_cross_entropy(logits, y, priors, 1.0, weight_power=1.0)
    assert torch.allclose(got, (per * w[y]).mean())


def test_class_priors():
    p = class_priors(np.array([0, 0, 0, 1]), 3, smoothing=0.0)
    assert torch.allclose(p, torch.tensor([0.75, 0.25, 0.0]))
    p = class_priors(np.array([0, 0, 0, 1]), 3)
    assert (p > 0).all() and torch.isclose(p.sum(), torch.tensor(1.0))


@pytest.mark.parametrize("size", [28, 64, 112])
def test_strided_downsampling_and_strides(size):
    from dataclasses import replace

    for cfg in (replace(ModelConfig(), downsample="stride"), replace(ModelConfig(), first_stride=1, first_pool=3)):
        out = build_model(cfg).eval()(torch.rand(2, 3, size, size))
        assert out.shape == (2, 3)


@pytest.mark.parametrize("side", [3, 5, 7, 10, 14, 28, 4, 9])
@pytest.mark.parametrize("grid", [1, 2, 3])
def test_grid_pool_is_adaptive_average_pooling(side, grid):
    from am3f.models.am3f_flownet import grid_pool

    x = torch.randn(2, 4, side, side)
    assert torch.allclose(grid_pool(x, grid), F.adaptive_avg_pool2d(x, grid), atol=1e-6)


@pytest.mark.parametrize("side", [10, 5, 7, 3, 20])
@pytest.mark.parametrize("k", [2, 3])
def test_max_pool_is_ceil_mode_max_pooling_bit_for_bit(side, k):
    """The channels-last max-pool gives exactly F.max_pool2d's values and input gradient, also where
    the ReLU left ties at zero, and also under vmap (how the LOSO engine calls it)."""
    from torch.func import vmap

    from am3f.models.am3f_flownet import max_pool

    x = torch.relu(torch.randn(3, 4, 8, side, side)).requires_grad_()  # (models, N, C, H, W)
    upstream = torch.randn(3, 4, 8, -(-side // k), -(-side // k))
    want = F.max_pool2d(x.flatten(0, 1), k, k, ceil_mode=True).unflatten(0, (3, 4))
    got = vmap(lambda t: max_pool(t, k))(x)
    assert torch.equal(got, want)
    grad_want, = torch.autograd.grad(want, x, upstream)
    grad_got, = torch.autograd.grad(got, x, upstream)
    assert torch.equal(grad_got, grad_want)

