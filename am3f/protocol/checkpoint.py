"""The final model: trained on ALL subjects with the declared schedule, saved as a checkpoint that
``am3f predict`` loads (config, weights, class names, input normalisation).

A checkpoint of a user's model (:mod:`am3f.models.user_model`) carries what it needs to be built again: for
the file form, the file's text, name, SHA-256 and factory (``model_code``), so it still predicts after
the file moved, changed or was never copied to the machine it is shared to; for the module and
entry-point forms, the module, package, version and code SHA-256, so a machine without that code is
told exactly what to install."""

from __future__ import annotations

import os
from pathlib import Path

import torch
from torch import nn

from am3f.data.dataset import CHANNELS, FlowDataset
from am3f.errors import AM3FError
from am3f.models.am3f_flownet import ModelConfig
from am3f.models.registry import build_model, count_parameters
from am3f.training.losses import class_priors
from am3f.training.recipe import TrainConfig
from am3f.utils import atomic_write

CHECKPOINT_FORMAT = "am3f-checkpoint/1"


def train_final(data: FlowDataset, model_cfg, train_cfg: TrainConfig, out: str | os.PathLike, *,
                seed: int = 0, device: torch.device | str = "cpu", variant: str | None = None,
                threads: int = 1, show_progress: bool = True) -> Path:
    """Fit on ALL subjects of ``data`` with the whole recipe (:func:`am3f.protocol.fold_runner.fit_members`: seeds,
    members) and save a checkpoint (first model of the ensemble only when n_models > 1: a checkpoint
    holds one model)."""
    import numpy as np

    from am3f.protocol.fold_runner import fit_members

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
    code = stored_model_code(model_cfg)
    if code:
        ckpt["model_code"] = code
    return atomic_write(out, lambda p: torch.save(ckpt, p))


def stored_model_code(model_cfg) -> dict | None:
    """The text of a file-form user model as it was trained (its SHA-256 checked against the one the
    run recorded), or None for every other model."""
    import hashlib

    source = getattr(model_cfg, "source", None) or {}
    if "path" not in source:
        return None
    data = Path(source["path"]).read_bytes()
    if hashlib.sha256(data).hexdigest() != source.get("sha256"):
        raise AM3FError(f"{source['path']} changed while the model trained; train again")
    return {"file_name": Path(source["path"]).name, "sha256": source["sha256"], "factory": source["factory"],
            "text": data.decode("utf-8")}


def _user_model_config(ckpt: dict, path: Path) -> tuple[dict, str]:
    """(model config to build, which code is used) of a checkpoint: the file it was trained from when it
    is still there unchanged, else the copy stored in the checkpoint; a module or entry point must be
    importable here with the same code (one line saying what is missing otherwise)."""
    import hashlib

    from am3f.models.registry import ARCHITECTURES, is_user_model

    config = dict(ckpt["model_config"])
    source = config.get("source") or {}
    if config.get("arch") in ARCHITECTURES:
        return config, ""
    if "path" in source:
        original = Path(source["path"])
        if original.is_file() and hashlib.sha256(original.read_bytes()).hexdigest() == source.get("sha256"):
            return config, f"model code: {original} (the file it was trained from, unchanged)"
        code = ckpt.get("model_code")
        why = "changed since training" if original.is_file() else "not found"
        if not code:
            raise AM3FError(f"{path}: its model file {original} is {why}, and this checkpoint holds no "
                            f"copy of it (made before checkpoints stored their model's code): train it again")
        copy = _write_stored_code(code)
        return ({**config, "source": {**source, "path": str(copy)}},
                f"model code: the copy of {code['file_name']} stored in the checkpoint (SHA-256 "
                f"{code['sha256'][:12]}...; {original} is {why})")
    what = (f"module {source.get('module')} of package {source.get('package')} "
            f"{source.get('version') or '(no version)'}, code SHA-256 {str(source.get('sha256'))[:12]}...")
    if not is_user_model(config.get("arch", "")) and ":" not in str(config.get("arch")):
        raise AM3FError(f"{path}: its model {config.get('arch')!r} is an am3f.models entry point ({what}) that is not "
                        f"installed here: install that package")
    from am3f.models.user_model import module_sha256

    try:
        here = module_sha256(source["module"]) if source.get("module") else None
    except AM3FError:
        raise AM3FError(f"{path}: its model needs {what}, which is not importable here: install it") from None
    if source.get("sha256") and here != source["sha256"]:
        raise AM3FError(f"{path}: its model was trained with {what}; the code installed here differs (SHA-256 "
                        f"{str(here)[:12]}...): install the version it was trained with")
    return config, f"model code: {what}, as installed here"


def _write_stored_code(code: dict) -> Path:
    """The stored model file, written once per content to a cache folder, so the model builds as any file does."""
    import tempfile

    from am3f.utils import atomic_write_text

    folder = Path(tempfile.gettempdir()) / "am3f-checkpoint-models" / code["sha256"][:16]
    target = folder / code["file_name"]
    if not target.is_file():
        atomic_write_text(target, code["text"])
    return target


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
    model_config, code_used = _user_model_config(ckpt, path)
    model = build_model(model_config, image_size=ckpt["image_size"][0])
    model.load_state_dict(ckpt["state_dict"])
    meta = {k: v for k, v in ckpt.items() if k not in ("state_dict", "model_code")}
    meta["model_code_used"] = code_used
    return model.to(device).eval(), meta
