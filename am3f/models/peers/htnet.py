"""HTNet (Wang, Zhang, Luo & Sankaranarayana, "HTNet for micro-expression recognition",
Neurocomputing 602, 2024; arXiv 2307.14637), re-implemented in PyTorch.

Source: the authors' PyTorch code, github.com/wangzhifengharrison/HTNet (commit 91cf4bd):
``Model.py`` (classes ``HTNet``, ``Transformer``, ``Attention``, ``FeedForward``, ``LayerNorm``,
``Aggregate``) and ``main_HTNet.py`` (input preparation and training).

Architecture (``Model.py``; the configuration of ``main_HTNet.py`` lines 222-231:
``image_size=28, patch_size=7, dim=256, heads=3, num_hierarchies=3, block_repeats=(2, 2, 10),
num_classes=3``, defaults ``mlp_mult=4, channels=3, dropout=0``):

* patch embedding: 7x7 patches of the 28x28 image (a 4x4 grid) -> 1x1 conv to ``dim``;
* three hierarchy levels, bottom first, with widths dim x (1, 2, 4) and heads x (1, 2, 4). At
  level l the grid is cut into 2^l x 2^l blocks and a transformer (``block_repeats[l]`` pre-norm
  layers of multi-head self-attention + 1x1-conv MLP, a learned position embedding) runs inside
  each block only; an aggregation (3x3 conv -> channel LayerNorm -> MaxPool 3, stride 2) then
  merges neighbouring blocks for the next level (none after the top);
* head: channel LayerNorm -> global mean -> Linear(4 dim, 3).

Parameters for 3 classes at 28x28: **139,582,982** (counted by running the authors' ``Model.py``
with that configuration; the same number is computed layer by layer in docs/peers.md).

The input HTNet sees is not the flow image itself but a 28x28 mosaic of four 14x14 crops around
facial landmarks (``main_HTNet.py`` ``crop_optical_flow_block``, lines 100-130, and lines 202-205):
top row [crop 0 | crop 1], bottom row [crop 3 | crop 4] (crop 2, the nose, is computed and unused),
each crop ``flow[p0 - 7 : p0 + 7, p1 - 7 : p1 + 7]`` around landmark p of MTCNN (facenet-pytorch)
run on the apex frame resized to 28x28, landmarks clipped to [7, 21] and truncated to int
(lines 54-97). The flow image is read with ``cv2.imread`` (BGR, i.e. (strain, v, u), raw 0..255,
no normalisation); it is the very file of our composite set (``datasets/STSNet_whole_norm_u_v_os``
in their repository is byte-identical to ``flows/`` of ours).

What is ours:

* FIXED region positions. Our package sees flow images only (no apex frames, so no landmarks can
  be detected), and it cannot download a landmark model. We use the authors' own fallback
  landmarks, the five points their code substitutes whenever MTCNN finds no face in the 28x28
  apex frame (lines 76-82): (9.53, 11.06), (21.40, 10.92), (15.38, 17.38), (10.26, 22.12),
  (20.58, 22.26) -> clipped and truncated (9, 11), (21, 10), (15, 17), (10, 21), (20, 21). With the
  authors' indexing (first coordinate = row) the crops are rows 2:16 x cols 4:18 (upper left: the
  image-left eye), rows 14:28 x cols 3:17 (lower left: the image-left mouth corner), rows 3:17 x
  cols 14:28 (upper right: the other eye) and rows 13:27 x cols 14:28 (lower right: the other mouth
  corner) -- the four areas of the paper (left/right eye, left/right lip). Our images are aligned
  face crops, so fixed positions are a fair stand-in for per-image landmarks.
* input conversion: (u, v, strain) in [0, 1] -> BGR (strain, v, u) x 255 rounded, as ``cv2.imread``
  gives the PNG; other input sizes are area-resampled to 28x28 first.
* ``einops`` rearrangements written with reshape/permute (same element order); the authors'
  default PyTorch initialisation is kept.
* ``htnet-small`` is a DECLARED REDUCED configuration (ours, not the authors'): dim 32 instead of
  256, same depth, heads, patches and regions, ~2.2M parameters, for CPU LOSO runs; the published
  configuration is ``htnet``.

The authors' recipe (``main_HTNet.py``): ``torch.optim.Adam(lr=0.00005)`` (lines 162, 240), batch
256 (line 163), 800 epochs (line 164), ``nn.CrossEntropyLoss()`` (line 171), training batches in a
fixed order (``DataLoader(dataset_train, batch_size=batch_size)``, no shuffle, line 244), last
batch kept, no augmentation. NB the script reports, per subject, the predictions of the epoch with
the BEST TEST accuracy (lines 294-298: ``if best_accuracy_for_each_subject <= val_acc`` on the
held-out subject, then ``best_total_pred``; lines 314-317 print "best UF1 / best UAR"). We never do
that: our runs are scored after the last epoch.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from am3f.models.am3f_flownet import FACE_REGIONS

from .common import PeerConfigMixin, resize_to

# The authors' fallback landmarks after clipping to [7, 21] and int truncation, in their (row, col)
# use, and the order their mosaic takes them: [0 | 1] over [3 | 4] (see the module docstring), i.e.
# (9, 11) image-left eye, (21, 10) image-left mouth corner, (10, 21) right eye, (20, 21) right mouth
# corner. Defined in am3f.models.am3f_flownet.FACE_REGIONS, beside the 28x28 geometry they refer to.
REGION_CENTRES: tuple[tuple[int, int], ...] = tuple(
    FACE_REGIONS[name] for name in ("left_eye", "left_mouth", "right_eye", "right_mouth"))
HALF = 7  # crops are 14x14


@dataclass(frozen=True)
class HTNetConfig(PeerConfigMixin):
    arch: str = "htnet"  # "htnet" (published) or "htnet-small" (declared reduced)
    n_classes: int = 3
    image_size: int = 28
    patch_size: int = 7
    dim: int = 256
    heads: int = 3
    num_hierarchies: int = 3
    block_repeats: tuple[int, ...] = (2, 2, 10)  # transformer layers per level, bottom first
    mlp_mult: int = 4
    dropout: float = 0.0


class ChannelLayerNorm(nn.Module):
    """LayerNorm over the channel dimension of (N, C, H, W), biased variance, eps 1e-5."""

    def __init__(self, dim: int, eps: float = 1e-5):
        super().__init__()
        self.eps = eps
        self.g = nn.Parameter(torch.ones(1, dim, 1, 1))
        self.b = nn.Parameter(torch.zeros(1, dim, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        var = torch.var(x, dim=1, unbiased=False, keepdim=True)
        mean = torch.mean(x, dim=1, keepdim=True)
        return (x - mean) / (var + self.eps).sqrt() * self.g + self.b


class PreNorm(nn.Module):
    def __init__(self, dim: int, fn: nn.Module):
        super().__init__()
        self.norm = ChannelLayerNorm(dim)
        self.fn = fn

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fn(self.norm(x))


class FeedForward(nn.Module):
    def __init__(self, dim: int, mult: int, dropout: float):
        super().__init__()
        self.net = nn.Sequential(nn.Conv2d(dim, dim * mult, 1), nn.GELU(), nn.Dropout(dropout),
                                 nn.Conv2d(dim * mult, dim, 1), nn.Dropout(dropout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class Attention(nn.Module):
    """Multi-head self-attention over the pixels of a feature map (1x1-conv projections); the head
    width is dim // heads, as in the authors' code."""

    def __init__(self, dim: int, heads: int, dropout: float):
        super().__init__()
        self.heads, self.dim_head = heads, dim // heads
        inner = self.dim_head * heads
        self.scale = self.dim_head ** -0.5
        self.to_qkv = nn.Conv2d(dim, inner * 3, 1, bias=False)
        self.drop = nn.Dropout(dropout)
        self.to_out = nn.Sequential(nn.Conv2d(inner, dim, 1), nn.Dropout(dropout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, _, h, w = x.shape
        # 'b (h d) x y -> b h (x y) d'
        q, k, v = (t.reshape(b, self.heads, self.dim_head, h * w).transpose(-1, -2)
                   for t in self.to_qkv(x).chunk(3, dim=1))
        attn = self.drop(torch.softmax(q @ k.transpose(-1, -2) * self.scale, dim=-1))
        out = (attn @ v).transpose(-1, -2).reshape(b, self.heads * self.dim_head, h, w)
        return self.to_out(out)


class Transformer(nn.Module):
    def __init__(self, dim: int, seq_len: int, depth: int, heads: int, mlp_mult: int, dropout: float):
        super().__init__()
        self.pos_emb = nn.Parameter(torch.randn(seq_len))
        self.layers = nn.ModuleList(nn.ModuleList([PreNorm(dim, Attention(dim, heads, dropout)),
                                                   PreNorm(dim, FeedForward(dim, mlp_mult, dropout))])
                                    for _ in range(depth))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        x = x + self.pos_emb[:h * w].reshape(1, 1, h, w)
        for attn, ff in self.layers:
            x = attn(x) + x
            x = ff(x) + x
        return x


class BlockTransformer(nn.Module):
    """One hierarchy level's transformer run inside each of blocks x blocks blocks of the map
    ('b c (b1 h) (b2 w) -> (b b1 b2) c h w' and back); input and output (N, C, H, W), so the level
    can be a Grad-CAM target."""

    def __init__(self, transformer: Transformer, blocks: int):
        super().__init__()
        self.transformer, self.blocks = transformer, blocks

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, hh, ww = x.shape
        k = self.blocks
        h, w = hh // k, ww // k
        x = x.reshape(n, c, k, h, k, w).permute(0, 2, 4, 1, 3, 5).reshape(n * k * k, c, h, w)
        x = self.transformer(x)
        return x.reshape(n, k, k, c, h, w).permute(0, 3, 1, 4, 2, 5).reshape(n, c, hh, ww)


def aggregate(dim: int, dim_out: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(dim, dim_out, 3, padding=1), ChannelLayerNorm(dim_out),
                         nn.MaxPool2d(3, stride=2, padding=1))


def region_mosaic(x: torch.Tensor) -> torch.Tensor:
    """The authors' 28x28 input: four 14x14 crops at the fixed region centres, [0 | 1] over [2 | 3]."""
    crops = [x[..., r - HALF:r + HALF, c - HALF:c + HALF] for r, c in REGION_CENTRES]
    return torch.cat([torch.cat(crops[:2], dim=-1), torch.cat(crops[2:], dim=-1)], dim=-2)


class HTNet(nn.Module):
    def __init__(self, cfg: HTNetConfig = HTNetConfig(), image_size: int = 28):
        super().__init__()
        if cfg.image_size % cfg.patch_size:
            raise ValueError("image_size must be divisible by patch_size")
        self.cfg = cfg
        p, levels = cfg.patch_size, cfg.num_hierarchies
        fmap = cfg.image_size // p
        seq_len = (fmap // 2 ** (levels - 1)) ** 2  # held constant across the hierarchy
        mults = [2 ** i for i in range(levels)]
        dims = [m * cfg.dim for m in mults]
        repeats = tuple(cfg.block_repeats)
        if len(repeats) != levels:
            raise ValueError(f"block_repeats needs one entry per hierarchy level ({levels}), got {repeats}")
        self.patch_embed = nn.Conv2d(3 * p * p, dims[0], 1)
        self.levels = nn.ModuleList(
            BlockTransformer(Transformer(dims[i], seq_len, repeats[i], m * cfg.heads, cfg.mlp_mult, cfg.dropout),
                             2 ** (levels - 1 - i)) for i, m in enumerate(mults))
        self.aggregates = nn.ModuleList(aggregate(dims[i], dims[i + 1]) for i in range(levels - 1))
        self.head_norm = ChannelLayerNorm(dims[-1])
        self.head = nn.Linear(dims[-1], cfg.n_classes)

    def to_htnet_input(self, x: torch.Tensor) -> torch.Tensor:
        """(u, v, strain) in [0, 1] -> the authors' input: the region mosaic of the BGR 0..255 image."""
        x = resize_to(x, self.cfg.image_size)
        return region_mosaic(torch.round(x.flip(1) * 255.0))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.to_htnet_input(x)
        n, c, hh, ww = x.shape
        p = self.cfg.patch_size
        # 'b c (h p1) (w p2) -> b (p1 p2 c) h w'
        x = x.reshape(n, c, hh // p, p, ww // p, p).permute(0, 3, 5, 1, 2, 4).reshape(n, p * p * c, hh // p, ww // p)
        x = self.patch_embed(x)
        for i, level in enumerate(self.levels):
            x = level(x)
            if i < len(self.aggregates):
                x = self.aggregates[i](x)
        return self.head(self.head_norm(x).mean(dim=(2, 3)))

    def cam_target_layers(self) -> list[nn.Module]:
        """The bottom level's block transformer: its 4x4 token map is the four facial regions (2x2
        tokens each). NB the map is in mosaic coordinates, not in those of the flow image."""
        return [self.levels[0]]
