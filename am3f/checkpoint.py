"""The final model: trained on ALL subjects with the declared schedule, saved as a checkpoint that
``am3f predict`` loads (config, weights, class names, input normalisation)."""

from __future__ import annotations

import os
from pathlib import Path

import torch
from torch import nn

from .data import CHANNELS, FlowDataset
from .errors import AM3FError
from .losses import class_priors
from .model import ModelConfig
from .recipe import TrainConfig
from .utils import atomic_write
from .zoo import build_model, count_parameters

CHECKPOINT_FORMAT = "am3f-checkpoint/1"


def train_final(data: FlowDataset, model_cfg, train_cfg: TrainConfig, out: str | os.PathLike, *,
                seed: int = 0, device: torch.device | str = "cpu", variant: str | None = None,
                threads: int = 1, show_progress: bool = True) -> Path:
    """Fit on ALL subjects of ``data`` with the whole recipe (:func:`am3f.runner.fit_members`: teachers,
    pre-training, seeds) and save a checkpoint (first model of the ensemble only when n_models > 1: a
    checkpoint holds one model)."""
    import numpy as np

    from .runner import fit_members

    if train_cfg.input_norm:
        raise AM3FError("input_norm 'dataset' standardises each image with its source dataset's statistics; a "
                        "checkpoint cannot know the source dataset of the images it will be given")
    model = fit_members(data, [np.arange(len(data))], model_cfg, train_cfg, seed=seed, device=device,
                        threads=threads, show_progress=show_progress)[0][0][0]
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    ckpt = {
        "format": CHECKPOINT_FORMAT,
        "variant": variant,
        "model_config": model_cfg.to_dict(),
        "train_config": train_cfg.to_dict(),
        "class_names": list(data.class_names),
        "channels": list(CHANNELS),
        "image_size": list(data.image_size),
        "normalisation": ({"input": "(u, v, strain), pixel / 255 in [0, 1]; per-image min-max stretched flow PNGs",
                           "mean": list(model_cfg.mean), "std": list(model_cfg.std),
                           "applied": "inside the model: (x - mean) / std"} if isinstance(model_cfg, ModelConfig) else
                          {"input": "(u, v, strain), pixel / 255 in [0, 1]; per-image min-max stretched flow PNGs",
                           "applied": f"inside the model: the {model_cfg.arch} authors' input conversion"}),
        "train_priors": class_priors(data.labels, model_cfg.n_classes).tolist(),
        "trained_on": {"dataset": data.name, "n_samples": len(data), "n_subjects": len(data.subject_ids),
                       "synthetic": data.synthetic},
        "seed": seed,
        "parameters": count_parameters(model),
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
    }
    return atomic_write(out, lambda p: torch.save(ckpt, p))


def load_checkpoint(path: str | os.PathLike, device: torch.device | str = "cpu") -> tuple[nn.Module, dict]:
    """Model (eval mode, on ``device``) and the checkpoint's metadata (everything but the weights)."""
    path = Path(path)
    if not path.is_file():
        raise AM3FError(f"{path}: checkpoint not found")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unreadable file is a user error here
        # torch's unpickling errors run to several lines of advice about weights_only; the first says it
        first = next((line.strip() for line in str(exc).splitlines() if line.strip()), type(exc).__name__)
        raise AM3FError(f"{path}: not an am3f checkpoint (written by `am3f train`); torch says: {first}") from None
    if not isinstance(ckpt, dict) or ckpt.get("format") != CHECKPOINT_FORMAT:
        raise AM3FError(f"{path}: not an am3f checkpoint (format {CHECKPOINT_FORMAT} expected)")
    model = build_model(dict(ckpt["model_config"]), image_size=ckpt["image_size"][0])
    model.load_state_dict(ckpt["state_dict"])
    meta = {k: v for k, v in ckpt.items() if k != "state_dict"}
    return model.to(device).eval(), meta
