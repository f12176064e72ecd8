"""Fixed-schedule training: the declared schedule, flow-aware augmentation, LOSO fold runner, checkpoints.

Honest protocol. A fold's prediction is the model (its EMA weights, when enabled) after the fixed,
pre-declared schedule in :class:`TrainConfig`; nothing looks at the held-out subject before the end.
Per-epoch held-out probabilities may be *recorded* (``FoldOutput.epoch_scores``) for the protocol
audit only; they never select anything. Class priors for the logit-adjusted loss come from the
training fold only.

Development protocol (how the defaults below were chosen): :func:`dev_subjects` splits the subjects
in two halves; candidate designs are compared by :func:`dev_cv`, subject-grouped CV inside the
development half only; the other half is never used for tuning. See docs/design-choices.md.
"""

from __future__ import annotations

import copy
import math
import os
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .data import CHANNELS, FlowDataset
from .errors import AM3FError
from .losses import class_priors, logit_adjusted_cross_entropy
from .model import ModelConfig
from .rundir import FoldOutput, dataset_info
from .utils import atomic_write, config_from_dict, progress
from .zoo import build_model, count_parameters, get_variant


# ----------------------------------------------------------------------------- the schedule
@dataclass(frozen=True)
class TrainConfig:
    """The whole training recipe as plain data (saved with every run and checkpoint)."""

    optimizer: str = "adamw"
    lr: float = 1e-2  # peak learning rate
    weight_decay: float = 1e-3
    epochs: int = 20
    batch_size: int = 64
    warmup_epochs: float = 3.0  # linear warm-up, then cosine decay to zero (per step)
    # loss (am3f.losses): logit adjustment strength, class-prior weight power, label smoothing
    tau: float = 1.0
    weight_power: float = 0.0
    label_smoothing: float = 0.0
    # augmentation (flow-aware, see augment())
    hflip: float = 0.5  # probability of a horizontal mirror (maps mirrored AND u negated)
    max_shift: float = 0.07  # random translation, fraction of the image side (2 px at 28)
    same_class_mix: float = 1.0  # probability of blending a sample with another of the SAME class
    # weight averaging: exponential moving average of the weights over the fixed schedule (0 = off)
    ema: float = 0.0
    tta_flip: bool = True  # test-time: average the probabilities of the image and its flow-aware mirror
    n_models: int = 1  # ensemble of independently seeded models per fold, probabilities averaged
    threads: int = 1  # torch CPU threads (CPU only; 1 avoids OpenMP spin-waits on a shared 2-core box)
    # added for the peers' published recipes (am3f.peers); the defaults are the behaviour from before
    schedule: str = "cosine"  # "cosine": linear warm-up then cosine decay (per step); "constant": lr throughout
    nesterov: bool = True  # optimizer "sgd" only: Nesterov momentum (0.9 either way)
    drop_last: bool = True  # drop the ragged last batch of an epoch (False: keep it, as a DataLoader does)

    def to_dict(self) -> dict:
        d = asdict(self)
        # fields added later are left out at their default, so the config.json (and config hash) of
        # every setting that existed before stays byte-identical
        for k in LATE_FIELDS:
            if d[k] == TrainConfig.__dataclass_fields__[k].default:
                del d[k]
        return d

    @classmethod
    def from_dict(cls, d: dict) -> TrainConfig:
        return config_from_dict(cls, d, "training")


LATE_FIELDS = ("schedule", "nesterov", "drop_last")
DEFAULT_TRAIN = TrainConfig()
# the peer is trained under the same protocol; only the model differs
STSTNET_TRAIN = DEFAULT_TRAIN


def resolve_variant(name: str, **train_overrides) -> tuple[ModelConfig, TrainConfig]:
    """Model config and training config of a named variant, plus explicit overrides (e.g. epochs)."""
    model_cfg, variant_train = get_variant(name)
    base = STSTNET_TRAIN if model_cfg.arch == "ststnet" else DEFAULT_TRAIN
    train_cfg = replace(base, **variant_train)
    overrides = {k: v for k, v in train_overrides.items() if v is not None}
    return model_cfg, replace(train_cfg, **overrides)


def loso_config(data: FlowDataset, variant: str, **train_overrides) -> dict:
    """The config.json of a LOSO run of ``variant`` on ``data`` (as it reads back from JSON): the CLI
    and the notebooks build it here, so one setting always makes one run directory."""
    import json


    model_cfg, train_cfg = resolve_variant(variant, **train_overrides)
    config = {"kind": "loso", "model": model_cfg.arch, "variant": variant, "model_config": model_cfg.to_dict(),
              "train_config": train_cfg.to_dict(),
              "parameters": count_parameters(build_model(model_cfg, image_size=data.image_size[0])),
              "dataset": dataset_info(data)}
    return json.loads(json.dumps(config))


# ----------------------------------------------------------------------------- augmentation
def hflip_flow(x: torch.Tensor) -> torch.Tensor:
    """Mirror flow images left-right: every map is mirrored and the horizontal flow u changes sign.

    Our maps are per-image min-max stretched to [0, 1], so u' = -u is 1 - u in image units (the
    stretch of -u is exactly 1 minus the stretch of u). v and strain are only mirrored."""
    x = x.flip(-1)
    u = CHANNELS.index("u")
    return torch.cat([x[:, :u], 1.0 - x[:, u:u + 1], x[:, u + 1:]], dim=1)


def random_shift(x: torch.Tensor, max_px: int, gen: torch.Generator) -> torch.Tensor:
    """Translate each image by an integer offset in [-max_px, max_px]^2, edges replicated.

    A translation of a flow field moves where the motion is, not its direction or size, so the
    vectors themselves are unchanged."""
    if max_px <= 0:
        return x
    n, c, h, w = x.shape
    padded = F.pad(x, (max_px,) * 4, mode="replicate")
    dy = torch.randint(0, 2 * max_px + 1, (n,), generator=gen)
    dx = torch.randint(0, 2 * max_px + 1, (n,), generator=gen)
    rows = (dy[:, None] + torch.arange(h)[None]).to(x.device)  # (n, h)
    cols = (dx[:, None] + torch.arange(w)[None]).to(x.device)  # (n, w)
    idx_n = torch.arange(n, device=x.device)[:, None, None, None]
    idx_c = torch.arange(c, device=x.device)[None, :, None, None]
    return padded[idx_n, idx_c, rows[:, None, :, None], cols[:, None, None, :]]


def same_class_partner(y: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """For every sample, a random sample of the same class in the batch (possibly itself)."""
    n = len(y)
    o1 = torch.argsort(y.cpu().double() + torch.rand(n, generator=gen, dtype=torch.float64) * 0.5)
    o2 = torch.argsort(y.cpu().double() + torch.rand(n, generator=gen, dtype=torch.float64) * 0.5)
    partner = torch.empty(n, dtype=torch.long)
    partner[o1] = o2
    return partner.to(y.device)


def augment(x: torch.Tensor, cfg: TrainConfig, gen: torch.Generator, y: torch.Tensor | None = None) -> torch.Tensor:
    """Flow-aware augmentation of a training batch (values in [0, 1], (u, v, strain) order).

    Optional same-class blending: x <- lam x + (1 - lam) x', x' another sample of the same class,
    lam ~ U(0.5, 1); the label is unchanged (a blend of two motions of one expression class)."""
    if cfg.same_class_mix > 0 and y is not None:
        partner = same_class_partner(y, gen)
        lam = 0.5 + 0.5 * torch.rand(len(x), generator=gen)
        lam = torch.where(torch.rand(len(x), generator=gen) < cfg.same_class_mix, lam, torch.ones_like(lam))
        lam = lam.to(x.device)[:, None, None, None]
        x = lam * x + (1 - lam) * x[partner]
    if cfg.hflip > 0:
        flip = (torch.rand(len(x), generator=gen) < cfg.hflip).to(x.device)
        x = torch.where(flip[:, None, None, None], hflip_flow(x), x)
    px = int(round(cfg.max_shift * x.shape[-1]))
    return random_shift(x, px, gen)


# ----------------------------------------------------------------------------- fitting
def lr_at(step: int, total: int, warmup: int, peak: float) -> float:
    if step < warmup:
        return peak * (step + 1) / warmup
    t = (step - warmup) / max(1, total - warmup)
    return peak * 0.5 * (1.0 + math.cos(math.pi * t))


@torch.no_grad()
def predict(model: nn.Module, x: np.ndarray | torch.Tensor, device: torch.device | str = "cpu",
            batch_size: int = 512, tta_flip: bool = False) -> np.ndarray:
    """Class probabilities (n, n_classes) of flow images x (n, 3, H, W) in [0, 1], (u, v, strain).

    ``tta_flip``: average with the prediction of the mirrored flow (maps mirrored, u negated)."""
    model.eval()
    x = torch.as_tensor(np.asarray(x, dtype=np.float32))
    out = []
    for i in range(0, len(x), batch_size):
        xb = x[i:i + batch_size].to(device)
        p = torch.softmax(model(xb).double(), dim=1)
        if tta_flip:
            p = 0.5 * (p + torch.softmax(model(hflip_flow(xb)).double(), dim=1))
        out.append(p.cpu())
    return torch.cat(out).numpy() if out else np.zeros((0, model.cfg.n_classes))


def fit(data: FlowDataset, model_cfg: ModelConfig, train_cfg: TrainConfig, *, seed: int = 0,
        device: torch.device | str = "cpu", eval_x: np.ndarray | None = None,
        show_progress: bool = False) -> tuple[nn.Module, np.ndarray | None]:
    """Train one model on ``data`` with the fixed schedule. Returns the final model (EMA weights when
    enabled) and, if ``eval_x`` is given, its probabilities on eval_x after every epoch (audit only)."""
    device = torch.device(device)
    if device.type == "cpu" and train_cfg.threads:
        torch.set_num_threads(train_cfg.threads)
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    model = build_model(model_cfg, image_size=data.image_size[0]).to(device)
    priors = class_priors(data.labels, model_cfg.n_classes).to(device)  # training fold only
    x_all = torch.from_numpy(np.ascontiguousarray(data.x, dtype=np.float32)).to(device)
    y_all = torch.from_numpy(data.labels.astype(np.int64)).to(device)
    n = len(y_all)
    bs = min(train_cfg.batch_size, n)
    # drop the ragged last batch (keeps BatchNorm statistics sane), unless the recipe keeps it
    steps_per_epoch = max(1, n // bs) if train_cfg.drop_last else math.ceil(n / bs)
    total = steps_per_epoch * train_cfg.epochs
    warmup = max(1, int(train_cfg.warmup_epochs * steps_per_epoch))
    if train_cfg.optimizer == "adamw":
        opt = torch.optim.AdamW(model.parameters(), lr=train_cfg.lr, weight_decay=train_cfg.weight_decay)
    elif train_cfg.optimizer == "adam":
        opt = torch.optim.Adam(model.parameters(), lr=train_cfg.lr, weight_decay=train_cfg.weight_decay)
    elif train_cfg.optimizer == "sgd":
        opt = torch.optim.SGD(model.parameters(), lr=train_cfg.lr, momentum=0.9, nesterov=train_cfg.nesterov,
                              weight_decay=train_cfg.weight_decay)
    else:
        raise AM3FError(f"unknown optimizer {train_cfg.optimizer!r} (adamw, adam or sgd)")
    if train_cfg.schedule not in ("cosine", "constant"):
        raise AM3FError(f"unknown schedule {train_cfg.schedule!r} (cosine or constant)")
    ema = copy.deepcopy(model).eval() if train_cfg.ema > 0 else None
    ema_params = [p for p in ema.parameters()] if ema is not None else []
    ema_bufs = [b for b in ema.buffers()] if ema is not None else []
    epoch_scores = []
    step = 0
    for _ in progress(range(train_cfg.epochs), desc="epochs", unit="ep", leave=False, disable=not show_progress):
        model.train()
        order = torch.randperm(n, generator=gen).to(device)
        for b in range(steps_per_epoch):
            idx = order[b * bs:(b + 1) * bs]
            xb = augment(x_all[idx], train_cfg, gen, y_all[idx])
            for group in opt.param_groups:
                group["lr"] = (lr_at(step, total, warmup, train_cfg.lr) if train_cfg.schedule == "cosine"
                               else train_cfg.lr)
            loss = logit_adjusted_cross_entropy(model(xb), y_all[idx], priors, train_cfg.tau,
                                                train_cfg.weight_power, train_cfg.label_smoothing)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            step += 1
            if ema is not None:
                with torch.no_grad():
                    torch._foreach_lerp_(ema_params, list(model.parameters()), 1.0 - train_cfg.ema)
                    for eb, mb in zip(ema_bufs, model.buffers()):
                        eb.copy_(mb)
        if eval_x is not None:
            epoch_scores.append(predict(ema if ema is not None else model, eval_x, device,
                                        tta_flip=train_cfg.tta_flip))
    final = ema if ema is not None else model
    final.eval()
    return final, (np.stack(epoch_scores) if eval_x is not None else None)


def fit_predict(train: FlowDataset, test_x: np.ndarray, model_cfg: ModelConfig, train_cfg: TrainConfig, *,
                seed: int, device: torch.device | str = "cpu", record_epochs: bool = False
                ) -> tuple[np.ndarray, np.ndarray | None]:
    """Fit ``n_models`` models (seeds derived from ``seed``) and average their test probabilities."""
    probs, epochs = [], []
    for k in range(train_cfg.n_models):
        model, ep = fit(train, model_cfg, train_cfg, seed=seed * 1000 + k, device=device,
                        eval_x=test_x if record_epochs else None)
        probs.append(predict(model, test_x, device, tta_flip=train_cfg.tta_flip))
        if ep is not None:
            epochs.append(ep)
    return np.mean(probs, axis=0), (np.mean(epochs, axis=0) if epochs else None)


class TrainRunner:
    """LOSO fold runner (see :func:`am3f.loso.run_loso`): fits on the training subjects only with the
    fixed schedule, then predicts the held-out subject once."""

    def __init__(self, model_cfg: ModelConfig, train_cfg: TrainConfig, device: torch.device | str = "cpu",
                 record_epochs: bool = True):
        self.model_cfg, self.train_cfg = model_cfg, train_cfg
        self.device = torch.device(device)
        self.record_epochs = record_epochs

    def __call__(self, train: FlowDataset, test: FlowDataset, *, seed: int, fold: int) -> FoldOutput:
        test_subjects = set(test.subjects.tolist())
        if test_subjects & set(train.subjects.tolist()):
            raise AssertionError("held-out subject found in the training set")
        t0 = time.perf_counter()
        scores, epoch_scores = fit_predict(train, test.x, self.model_cfg, self.train_cfg, seed=seed,
                                           device=self.device, record_epochs=self.record_epochs)
        priors = class_priors(train.labels, self.model_cfg.n_classes).tolist()
        info = {"fit_s": round(time.perf_counter() - t0, 3), "train_priors": [round(p, 4) for p in priors]}
        return FoldOutput(scores=scores, epoch_scores=epoch_scores, info=info)


# ----------------------------------------------------------------------------- development protocol
def dev_subjects(data: FlowDataset) -> list[str]:
    """The development half: within each source dataset, every second subject in sorted order
    (the 1st, 3rd, 5th, ...). Tuning uses only these; the rest is the untouched half."""
    out = []
    for ds in sorted(set(data.datasets.tolist())):
        subs = sorted(set(data.subjects[data.datasets == ds].tolist()))
        out += subs[0::2]
    return out


def holdout_subjects(data: FlowDataset) -> list[str]:
    dev = set(dev_subjects(data))
    return [s for s in data.subject_ids if s not in dev]


def dev_cv(data: FlowDataset, model_cfg: ModelConfig, train_cfg: TrainConfig, *, seeds=(0,), n_splits: int = 5,
           device: torch.device | str = "cpu") -> dict:
    """Subject-grouped ``n_splits``-fold CV inside the development half only; pooled UF1/UAR per seed."""
    from .metrics import megc_scores

    dev = data.subset(np.isin(data.subjects, dev_subjects(data)))
    fold_of = {}
    for ds in sorted(set(dev.datasets.tolist())):
        for i, s in enumerate(sorted(set(dev.subjects[dev.datasets == ds].tolist()))):
            fold_of[s] = i % n_splits
    folds = np.array([fold_of[s] for s in dev.subjects])
    out = {"per_seed": {}}
    for seed in seeds:
        pred = np.zeros(len(dev), dtype=int)
        for k in range(n_splits):
            te = folds == k
            scores, _ = fit_predict(dev.subset(~te), dev.x[te], model_cfg, train_cfg, seed=seed * 100 + k,
                                    device=device)
            pred[te] = scores.argmax(1)
        out["per_seed"][seed] = megc_scores(dev.labels, pred)
    out["uf1"] = float(np.mean([v["uf1"] for v in out["per_seed"].values()]))
    out["uar"] = float(np.mean([v["uar"] for v in out["per_seed"].values()]))
    return out


# ----------------------------------------------------------------------------- final model, checkpoints
CHECKPOINT_FORMAT = "am3f-checkpoint/1"


def train_final(data: FlowDataset, model_cfg: ModelConfig, train_cfg: TrainConfig, out: str | os.PathLike, *,
                seed: int = 0, device: torch.device | str = "cpu", variant: str | None = None,
                show_progress: bool = True) -> Path:
    """Fit on ALL subjects of ``data`` with the fixed schedule and save a checkpoint (first model of
    the ensemble only when n_models > 1: a checkpoint holds one model)."""
    model, _ = fit(data, model_cfg, train_cfg, seed=seed * 1000, device=device, show_progress=show_progress)
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
