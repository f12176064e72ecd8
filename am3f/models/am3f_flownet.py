"""AM3F-FlowNet: one branch per optical-flow map, multi-scale fusion (MSFF), flow reweighting (MOFRW).

What the paper's abstract fixes, and where it lives here:

* input = horizontal flow u, vertical flow v, optical strain; **one branch per map** -> :class:`Branch`
* **MSFF**: features from several depths of each branch, each through spatial attention, fused
  -> :class:`SpatialAttention`, :class:`MSFF`
* **MOFRW**: channel attention in two steps, first one weight per optical flow as a whole, then one
  weight per channel inside each flow's features -> :class:`MOFRW`
* classification -> :class:`Head`; the logit-adjusted loss is in :mod:`am3f.training.losses`.

Everything else (widths, depths, attention forms, pooling) is *our choice*; see docs/design-choices.md.

The model takes ONE tensor (N, 3, H, W) in (u, v, strain) order with values in [0, 1] (what
:mod:`am3f.data.dataset` produces), normalises it and splits it internally, so pytorch-grad-cam and the LOSO
engine can treat it like any image classifier. It works for any input size >= 8 (28, 64, 112, ...).
A variant is a plain :class:`ModelConfig` in :data:`VARIANTS` (``am3f variants`` lists them);
:func:`am3f.models.registry.build_model` builds any of them, and every peer.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch
import torch.nn.functional as F
from torch import nn

from am3f.data.dataset import CHANNELS
from am3f.errors import AM3FError
from am3f.utils import config_from_dict, config_to_dict


# ----------------------------------------------------------------------------- config
@dataclass(frozen=True)
class ModelConfig:
    """Plain-data description of a model variant (saved in run directories and checkpoints)."""

    arch: str = "am3f"  # the registry name (am3f.models.registry.ARCHITECTURES)
    flows: tuple[str, ...] = CHANNELS  # which maps get a branch, a subset of ("u", "v", "strain")
    widths: tuple[int, ...] = (8, 16, 32)  # channels of each branch stage (one conv block per stage)
    first_stride: int = 3  # stride of the first conv (early downsampling keeps CPU training fast)
    first_pool: int = 2  # downsampling after stage 1 (later stages halve)
    downsample: str = "maxpool"  # between stages: "maxpool" or "stride" (strided conv, cheaper)
    msff: bool = True  # fuse every stage (each through spatial attention); False: last stage only, no attention
    msff_grid: int = 2  # attended maps are average-pooled to grid x grid cells (keeps coarse face layout)
    sa_kernel: int = 3  # spatial-attention conv kernel
    sa_descriptor: str = "mean_max"  # what spatial attention sees of the channels: "mean_max" (CBAM) or "mean"
    flow_weights: bool = True  # MOFRW step 1: one weight per optical flow
    channel_weights: bool = True  # MOFRW step 2: one weight per channel inside each flow
    reduction: int = 4  # MLP bottleneck of the channel-weight step
    dropout: float = 0.5
    n_classes: int = 3
    # input normalisation, applied inside the model: (x - mean) / std per (u, v, strain) channel.
    # u, v are centred at 0.5 so that zero padding reads as "no motion" and a mirrored u is exactly -u.
    mean: tuple[float, ...] = (0.5, 0.5, 0.0)
    std: tuple[float, ...] = (0.25, 0.25, 0.25)

    def to_dict(self) -> dict:
        return config_to_dict(self)

    @classmethod
    def from_dict(cls, d: dict) -> ModelConfig:
        return config_from_dict(cls, d, "model")


# Facial regions, (row, col) centres at 28x28: the fallback landmarks of HTNet's authors (the five points
# their code uses when MTCNN finds no face, clipped to [7, 21] and truncated), from which the HTNet peer
# takes its crops (am3f.models.peers.htnet). The authors index them row first, so by position (9, 11) is the
# upper-left area (image-left eye), (21, 10) the lower left (image-left mouth corner), (10, 21) the upper
# right (image-right eye), (20, 21) the lower right (image-right mouth corner). "left" = the image's left.
FACE_REGIONS: dict[str, tuple[int, int]] = {"left_eye": (9, 11), "right_eye": (10, 21), "left_mouth": (21, 10),
                                            "right_mouth": (20, 21)}


# ----------------------------------------------------------------------------- blocks
def conv_block(c_in: int, c_out: int, stride: int = 1) -> nn.Sequential:
    # ReLU not in place: under vmap, batch norm's output is a view, and an in-place ReLU on it costs the
    # backward a zero-filled copy of the whole map (CopySlices); out of place: a step 1-2 % faster, same numbers
    return nn.Sequential(nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False), nn.BatchNorm2d(c_out),
                         nn.ReLU())


def max_pool(x: torch.Tensor, k: int) -> torch.Tensor:
    """``F.max_pool2d(x, k, k, ceil_mode=True)``, the same numbers, computed on channels-last storage.

    Why: PyTorch's CPU max-pool kernel for NCHW storage loops over pixels one plane at a time (4.2 ms
    for a 17-fold LOSO batch's 1088 x 8 x 10 x 10 map on one core), its channels-last kernel runs
    across the channels in SIMD (0.5 ms, 0.9 ms with both layout copies): a LOSO training step
    ~5 % faster (benchmarks/bench_loso.py). Values and indices are identical; the permutes, unlike
    ``contiguous(memory_format=...)``, also work under ``torch.func.vmap``."""
    nhwc = x.permute(0, 2, 3, 1).contiguous().permute(0, 3, 1, 2)  # the same (N, C, H, W) tensor, stored NHWC
    return F.max_pool2d(nhwc, k, k, ceil_mode=True).contiguous()


class Branch(nn.Module):
    """A small CNN over ONE flow map; returns the feature map of every stage (shallow -> deep)."""

    def __init__(self, widths: tuple[int, ...], first_pool: int = 2, first_stride: int = 1,
                 downsample: str = "maxpool"):
        super().__init__()
        if downsample not in ("maxpool", "stride"):
            raise AM3FError(f"downsample must be 'maxpool' or 'stride', got {downsample!r}")
        chans = (1,) + tuple(widths)
        self.pools = [first_pool] + [2] * (len(widths) - 2)  # downsampling factor between stages
        strides = [first_stride] + (self.pools if downsample == "stride" else [1] * (len(widths) - 1))
        self.stages = nn.ModuleList(conv_block(chans[i], chans[i + 1], strides[i]) for i in range(len(widths)))
        self.maxpool = downsample == "maxpool"
        self.input = nn.Identity()  # the branch's normalised input map: a hook point (CAM "stage 0"), no weights

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = self.input(x)
        feats = []
        for i, stage in enumerate(self.stages):
            if i > 0 and self.maxpool:
                x = max_pool(x, self.pools[i - 1])
            x = stage(x)
            feats.append(x)
        return feats

    @property
    def last_conv(self) -> nn.Module:
        return self.stages[-1]


class SpatialAttention(nn.Module):
    """CBAM-style: a descriptor of the channels at every pixel ([mean, max], or the mean alone) ->
    conv -> sigmoid -> one weight per pixel, multiplying the map."""

    def __init__(self, kernel: int = 3, descriptor: str = "mean_max"):
        super().__init__()
        if descriptor not in ("mean_max", "mean"):
            raise AM3FError(f"spatial-attention descriptor must be 'mean_max' or 'mean', got {descriptor!r}")
        self.descriptor, self.pad = descriptor, kernel // 2
        self.conv = nn.Conv2d(2 if descriptor == "mean_max" else 1, 1, kernel, padding=kernel // 2)
        self.logits = nn.Identity()  # where the attention logits can be read (forward hook): weight = sigmoid

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = self.conv.weight
        # conv over the stacked [mean, max] = conv of the mean + conv of the max, without stacking them
        a = F.conv2d(x.mean(1, keepdim=True), w[:, :1], self.conv.bias, padding=self.pad)
        if self.descriptor == "mean_max":
            a = a + F.conv2d(x.amax(1, keepdim=True), w[:, 1:], None, padding=self.pad)
        return x * torch.sigmoid(self.logits(a))


def grid_pool(x: torch.Tensor, grid: int) -> torch.Tensor:
    """Average-pool (N, C, H, W) maps to grid x grid cells: adaptive average pooling, computed by the
    faster fixed-window ``avg_pool2d`` when the adaptive windows are all alike (10, 5 and 3 px sides
    to a 2x2 grid: windows 5/5, 3/2 and 2/1 as size/stride)."""
    h, w = x.shape[-2:]
    if h == w:
        starts = [i * h // grid for i in range(grid)]
        ends = [-(-(i + 1) * h // grid) for i in range(grid)]
        sizes, steps = {e - s for s, e in zip(starts, ends)}, {b - a for a, b in zip(starts, starts[1:])}
        if len(sizes) == 1 and len(steps) <= 1 and 0 not in steps:  # step 0: a map smaller than the grid
            size = sizes.pop()
            return F.avg_pool2d(x, size, steps.pop() if steps else size)
    return F.adaptive_avg_pool2d(x, grid)


class MSFF(nn.Module):
    """Multi-scale feature fusion for one branch: every stage through spatial attention, pooled to a
    grid x grid layout, concatenated into one vector. ``enabled=False`` keeps the last stage only."""

    def __init__(self, widths: tuple[int, ...], grid: int = 2, kernel: int = 3, enabled: bool = True,
                 descriptor: str = "mean_max"):
        super().__init__()
        self.enabled, self.grid = enabled, grid
        n = len(widths) if enabled else 0
        self.attn = nn.ModuleList(SpatialAttention(kernel, descriptor) for _ in range(n))
        self.out_dim = (sum(widths) if enabled else widths[-1]) * grid * grid

    def forward(self, feats: list[torch.Tensor]) -> torch.Tensor:
        if not self.enabled:
            return grid_pool(feats[-1], self.grid).flatten(1)
        return torch.cat([grid_pool(sa(f), self.grid).flatten(1) for sa, f in zip(self.attn, feats)], 1)


class MOFRW(nn.Module):
    """Multi-optical-flow feature reweighting, two steps of channel attention over the branch vectors:

    1. flow weights: an MLP over all branches' vectors gives one weight per flow (softmax, scaled so
       the weights average 1), multiplying that branch's whole vector;
    2. channel weights: per branch, a squeeze-excitation MLP gives one sigmoid weight per channel.

    With both steps off it is plain concatenation (the ``no_mofrw`` ablation)."""

    def __init__(self, n_flows: int, dim: int, flow_weights: bool = True, channel_weights: bool = True,
                 reduction: int = 4):
        super().__init__()
        self.n_flows = n_flows
        hidden = max(dim // reduction, 4)
        self.flow_mlp = (nn.Sequential(nn.Linear(n_flows * dim, hidden), nn.ReLU(inplace=True),
                                       nn.Linear(hidden, n_flows)) if flow_weights and n_flows > 1 else None)
        self.channel_mlps = (nn.ModuleList(nn.Sequential(nn.Linear(dim, hidden), nn.ReLU(inplace=True),
                                                         nn.Linear(hidden, dim)) for _ in range(n_flows))
                             if channel_weights else None)
        self.last_flow_weights: torch.Tensor | None = None  # (N, n_flows), for inspection

    def forward(self, vecs: list[torch.Tensor]) -> torch.Tensor:
        if self.flow_mlp is not None:
            w = torch.softmax(self.flow_mlp(torch.cat(vecs, 1)), dim=1) * self.n_flows
            self.last_flow_weights = w.detach()
            vecs = [v * w[:, i:i + 1] for i, v in enumerate(vecs)]
        if self.channel_mlps is not None:
            vecs = [v * torch.sigmoid(mlp(v)) for v, mlp in zip(vecs, self.channel_mlps)]
        return torch.cat(vecs, 1)


class Head(nn.Module):
    def __init__(self, dim: int, n_classes: int, dropout: float):
        super().__init__()
        self.drop = nn.Dropout(dropout)
        self.fc = nn.Linear(dim, n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.drop(x))


# ----------------------------------------------------------------------------- model
class AM3FFlowNet(nn.Module):
    def __init__(self, cfg: ModelConfig = ModelConfig(), image_size: int = 28):
        # image_size: the registry's common signature; this model works for any input size >= 8
        super().__init__()
        if not cfg.flows or any(f not in CHANNELS for f in cfg.flows) or len(set(cfg.flows)) != len(cfg.flows):
            raise AM3FError(f"flows must be distinct names from {CHANNELS}, got {cfg.flows}")
        self.cfg = cfg
        self.flow_index = [CHANNELS.index(f) for f in cfg.flows]
        self.register_buffer("mean", torch.tensor(cfg.mean, dtype=torch.float32).view(1, -1, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(cfg.std, dtype=torch.float32).view(1, -1, 1, 1), persistent=False)
        self.branches = nn.ModuleDict({f: Branch(cfg.widths, cfg.first_pool, cfg.first_stride, cfg.downsample)
                                       for f in cfg.flows})
        self.msff = nn.ModuleDict({f: MSFF(cfg.widths, cfg.msff_grid, cfg.sa_kernel, cfg.msff, cfg.sa_descriptor)
                                   for f in cfg.flows})
        dim = self.msff[cfg.flows[0]].out_dim
        self.mofrw = MOFRW(len(cfg.flows), dim, cfg.flow_weights, cfg.channel_weights, cfg.reduction)
        self.head = Head(len(cfg.flows) * dim, cfg.n_classes, cfg.dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = (x - self.mean) / self.std
        vecs = [self.msff[f](self.branches[f](x[:, i:i + 1])) for f, i in zip(self.cfg.flows, self.flow_index)]
        return self.head(self.mofrw(vecs))

    def cam_target_layers(self) -> list[nn.Module]:
        """Last conv block of every branch (pass one, or all, to pytorch-grad-cam's ``target_layers``)."""
        return [self.branches[f].last_conv for f in self.cfg.flows]


# ----------------------------------------------------------------------------- variants
FULL = ModelConfig()

# name -> (model config, overrides of the training config, one-line description)
VARIANTS: dict[str, tuple[ModelConfig, dict, str]] = {
    "full": (FULL, {}, "AM3F-FlowNet: u/v/strain branches, MSFF, two-step MOFRW, logit-adjusted loss"),
    "no_msff": (replace(FULL, msff=False), {}, "last stage only, no spatial attention"),
    "no_mofrw": (replace(FULL, flow_weights=False, channel_weights=False), {}, "plain concatenation of branches"),
    "flow_weights_only": (replace(FULL, channel_weights=False), {}, "MOFRW step 1 only (one weight per flow)"),
    "channel_weights_only": (replace(FULL, flow_weights=False), {}, "MOFRW step 2 only (per-channel weights)"),
    "ce_loss": (FULL, {"tau": 0.0}, "plain cross-entropy instead of logit adjustment"),
    "tau0.5": (FULL, {"tau": 0.5}, "logit adjustment with tau = 0.5"),
    "tau2": (FULL, {"tau": 2.0}, "logit adjustment with tau = 2"),
    "u": (replace(FULL, flows=("u",)), {}, "single branch: horizontal flow u"),
    "v": (replace(FULL, flows=("v",)), {}, "single branch: vertical flow v"),
    "strain": (replace(FULL, flows=("strain",)), {}, "single branch: optical strain"),
    "uv": (replace(FULL, flows=("u", "v")), {}, "two branches: u and v (no strain)"),
    "u_strain": (replace(FULL, flows=("u", "strain")), {}, "two branches: u and strain"),
    "v_strain": (replace(FULL, flows=("v", "strain")), {}, "two branches: v and strain"),
    "fast": (replace(FULL, sa_descriptor="mean", downsample="stride"), {},
             "mean-only spatial attention, strided-conv downsampling: ~15 % faster LOSO, no detectable accuracy "
             "difference (not the default: docs/design-choices.md, third round)"),
}
