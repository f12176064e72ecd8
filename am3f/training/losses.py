"""Logit-adjusted, class-prior-weighted cross-entropy (Menon et al., ICLR 2021).

Training loss, with class priors pi estimated from the *training fold only*::

    loss_i = w[y_i] * CE(z_i + tau * log(pi), y_i)

* ``tau * log(pi)`` is the logit adjustment: rare classes must win by a larger margin during
  training, so at test time the **plain logits** ``z`` are (for tau = 1) Bayes-consistent for the
  balanced error, i.e. what UF1 / UAR reward. tau = 0 gives plain cross-entropy.
* ``w[c] = pi_c ** (-weight_power)``, normalised so that sum_c pi_c w[c] = 1 (the average sample
  weight is 1). This is the "class-prior weighting" (our choice of form): ``weight_power = 0`` means
  no weighting (the default, since the adjustment already balances), 1 means inverse-frequency weights.
  Both knobs live in :class:`am3f.training.recipe.TrainConfig`.
* optional label smoothing, applied to the adjusted logits as in :func:`torch.nn.functional.cross_entropy`.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F


def class_priors(labels: np.ndarray | torch.Tensor, n_classes: int, smoothing: float = 1.0) -> torch.Tensor:
    """Class frequencies of ``labels`` (pass the TRAINING labels), with additive smoothing so an
    absent class gets a finite log prior."""
    labels = torch.as_tensor(np.asarray(labels), dtype=torch.long)
    counts = torch.bincount(labels, minlength=n_classes).double() + smoothing
    return (counts / counts.sum()).float()


def prior_weights(priors: torch.Tensor, power: float) -> torch.Tensor:
    """Per-class weights pi^-power with sum_c pi_c w_c = 1."""
    w = priors.double() ** (-power)
    return (w / (priors.double() * w).sum()).float()


def logit_adjusted_cross_entropy(logits: torch.Tensor, target: torch.Tensor, priors: torch.Tensor,
                                 tau: float = 1.0, weight_power: float = 0.0,
                                 label_smoothing: float = 0.0) -> torch.Tensor:
    """Mean over the batch of w[y] * CE(logits + tau * log(priors), y)."""
    priors = priors.to(logits.device, logits.dtype)  # (C,), or (N, C): one prior per sample
    adjusted = logits + tau * torch.log(priors)
    if weight_power and priors.ndim > 1:
        raise ValueError("class-prior weights need one prior for the batch, not one per sample")
    weight = prior_weights(priors, weight_power).to(logits.device, logits.dtype) if weight_power else None
    # F.cross_entropy with weights divides by the summed weights; we want a plain mean of w_i * l_i
    per_sample = F.cross_entropy(adjusted, target, reduction="none", label_smoothing=label_smoothing)
    if weight is not None:
        per_sample = per_sample * weight[target]
    return per_sample.mean()

