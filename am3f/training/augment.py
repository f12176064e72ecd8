"""Flow-aware augmentation of training batches: same-class blending, mirror, translation.

A batch's random choices are drawn first (:func:`draw_augmentation`, from one generator per model in a
fixed order) and applied after (:func:`apply_augmentation`), so that a model's stream of choices is the
same whether its batch is augmented alone or stacked with other models' batches (the batched trainer,
:func:`am3f.training.fit.fit_group`). Images are (n, 3, H, W) in [0, 1], (u, v, strain) order.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Protocol

import torch

from am3f.data.dataset import CHANNELS

U = CHANNELS.index("u")


class AugmentationRecipe(Protocol):
    """The fields of :class:`am3f.training.recipe.TrainConfig` that augmentation reads."""

    same_class_mix: float  # probability of blending a sample with another of the same class
    hflip: float  # probability of a flow-aware mirror
    max_shift: float  # largest translation, a fraction of the image side


def hflip_flow(x: torch.Tensor) -> torch.Tensor:
    """Mirror flow images left-right: every map is mirrored and the horizontal flow u changes sign.

    Our maps are per-image min-max stretched to [0, 1], so u' = -u is 1 - u in image units (the
    stretch of -u is exactly 1 minus the stretch of u). v and strain are only mirrored."""
    x = x.flip(-1)
    return torch.cat([x[:, :U], 1.0 - x[:, U:U + 1], x[:, U + 1:]], dim=1)


def same_class_partner(y: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """For every sample, a random sample of the same class in the batch (possibly itself)."""
    n = len(y)
    o1 = torch.argsort(y.cpu().double() + torch.rand(n, generator=gen, dtype=torch.float64) * 0.5)
    o2 = torch.argsort(y.cpu().double() + torch.rand(n, generator=gen, dtype=torch.float64) * 0.5)
    partner = torch.empty(n, dtype=torch.long)
    partner[o1] = o2
    return partner


def draw_augmentation(y: torch.Tensor, cfg: AugmentationRecipe, gen: torch.Generator,
                      side: int) -> dict[str, torch.Tensor]:
    """The random choices of one batch's augmentation (see :func:`augment`), drawn from ``gen`` in a
    fixed order (:func:`apply_augmentation` applies them to one batch or to stacked batches)."""
    n = len(y)
    out = {}
    if cfg.same_class_mix > 0:
        out["partner"] = same_class_partner(y, gen)
        lam = 0.5 + 0.5 * torch.rand(n, generator=gen)
        out["lam"] = torch.where(torch.rand(n, generator=gen) < cfg.same_class_mix, lam, torch.ones_like(lam))
    if cfg.hflip > 0:
        out["flip"] = torch.rand(n, generator=gen) < cfg.hflip
    px = int(round(cfg.max_shift * side))
    if px > 0:
        out["dy"] = torch.randint(0, 2 * px + 1, (n,), generator=gen)
        out["dx"] = torch.randint(0, 2 * px + 1, (n,), generator=gen)
    return out


def source_pixels(n: int, h: int, w: int, max_px: int = 0, dy: torch.Tensor | None = None,
                  dx: torch.Tensor | None = None, flip: torch.Tensor | None = None) -> torch.Tensor:
    """(n, h * w): for every pixel of each output image, the flat index of the input pixel it shows
    after a translation by (dy - max_px, dx - max_px) with edges replicated, then, where ``flip``, a
    left-right mirror. One gather with it does both moves at once (pixels are copied, never mixed)."""
    rows, cols = torch.arange(h).expand(n, h), torch.arange(w).expand(n, w)
    if max_px:
        rows = (rows + dy.reshape(-1, 1).cpu() - max_px).clamp(0, h - 1)
        cols = (cols + dx.reshape(-1, 1).cpu() - max_px).clamp(0, w - 1)
    if flip is not None:
        cols = torch.where(flip.reshape(-1, 1).cpu(), w - 1 - cols, cols)
    return (rows[:, :, None] * w + cols[:, None, :]).reshape(n, h * w)


def move_pixels(x: torch.Tensor, source: torch.Tensor) -> torch.Tensor:
    """Images (n, c, h, w) rearranged by a :func:`source_pixels` index (the same for every channel)."""
    n, c, h, w = x.shape
    index = source.to(x.device)[:, None].expand(n, c, h * w)
    return x.reshape(n, c, h * w).gather(2, index).reshape(n, c, h, w)


def shift_images(x: torch.Tensor, dy: torch.Tensor, dx: torch.Tensor, max_px: int) -> torch.Tensor:
    """Translate image i by (dy[i] - max_px, dx[i] - max_px) pixels, edges replicated.

    A translation of a flow field moves where the motion is, not its direction or size, so the
    vectors themselves are unchanged."""
    n, _, h, w = x.shape
    return move_pixels(x, source_pixels(n, h, w, max_px, dy, dx))


def apply_augmentation(x: torch.Tensor, choices: dict[str, torch.Tensor], cfg: AugmentationRecipe) -> torch.Tensor:
    """Apply drawn choices to a batch ``x`` (n, 3, H, W), or to stacked batches (m, n, 3, H, W) with
    choices stacked the same way (partners index within their own batch).

    In this order: blend with the partner, mirror (:func:`hflip_flow`), translate (:func:`shift_images`).
    The mirror and the translation are one gather of pixels, then ``1 - u`` where mirrored: the same
    numbers, bit for bit, as applying them one after the other, three times faster on a LOSO batch."""
    stacked = x.shape[:-3]
    x = x.reshape(-1, *x.shape[-3:])
    n, _, h, w = x.shape
    if "partner" in choices:
        per_batch = stacked[-1]
        offset = (torch.arange(choices["partner"].numel()) // per_batch) * per_batch
        partner = (choices["partner"].reshape(-1).cpu() + offset).to(x.device)
        lam = choices["lam"].reshape(-1).to(x.device)[:, None, None, None]
        x = (lam * x).add_(x.index_select(0, partner).mul_(1 - lam))  # lam x + (1 - lam) x', in place
    flip = choices["flip"].reshape(-1) if "flip" in choices else None
    px = int(round(cfg.max_shift * w)) if "dy" in choices else 0
    if flip is not None or px:
        x = move_pixels(x, source_pixels(n, h, w, px, choices.get("dy"), choices.get("dx"), flip))
    if flip is not None:  # the gather made a new tensor: u of the mirrored images is negated in place
        flip = flip.to(x.device)
        x[flip, U] = 1.0 - x[flip, U]
    return x.reshape(*stacked, *x.shape[-3:])


def augment(x: torch.Tensor, cfg: AugmentationRecipe, gen: torch.Generator,
            y: torch.Tensor | None = None) -> torch.Tensor:
    """Flow-aware augmentation of a training batch (values in [0, 1], (u, v, strain) order).

    Optional same-class blending: x <- lam x + (1 - lam) x', x' another sample of the same class,
    lam ~ U(0.5, 1); the label is unchanged (a blend of two motions of one expression class).
    Then a flow-aware mirror (:func:`hflip_flow`) and a small translation."""
    if y is None:
        cfg = replace(cfg, same_class_mix=0.0)
        y = torch.zeros(len(x), dtype=torch.long)
    return apply_augmentation(x, draw_augmentation(y, cfg, gen, x.shape[-1]), cfg)
