"""Grad-CAM (pytorch-grad-cam) on our models: per branch, per class, class-averaged, and checked
against the known moving regions of the synthetic set.

Our models take ONE (N, 3, H, W) tensor in (u, v, strain) order, so pytorch-grad-cam treats them
like any image classifier. ``model.cam_target_layers()`` lists one layer per branch (AM3F-FlowNet:
the last conv block of the u, v and strain branches; STSTNet: its three streams); a map is computed
for each branch on its own, upsampled by pytorch-grad-cam to the flow image's size.

Maps are min-max scaled per image by pytorch-grad-cam (0..1), which is what makes maps of different
samples comparable enough to average per class.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

from .data import CHANNELS, CLASS_NAMES, FlowDataset


# ----------------------------------------------------------------------------- maps
def branch_names(model: nn.Module) -> list[str]:
    """Names of the layers returned by ``model.cam_target_layers()``, in that order."""
    layers = model.cam_target_layers()
    cfg = getattr(model, "cfg", None)
    if cfg is not None and getattr(cfg, "arch", "am3f") == "am3f" and len(cfg.flows) == len(layers):
        return list(cfg.flows)
    return [f"stream{i + 1}" for i in range(len(layers))]


def _as_tensor(x: np.ndarray | torch.Tensor) -> torch.Tensor:
    t = torch.as_tensor(np.asarray(x, dtype=np.float32)) if not isinstance(x, torch.Tensor) else x.float()
    return t.unsqueeze(0) if t.ndim == 3 else t


def gradcam_maps(model: nn.Module, x: np.ndarray | torch.Tensor, target_classes: Sequence[int] | int | None = None,
                 branch: str | int = 0, batch_size: int = 64) -> np.ndarray:
    """Grad-CAM of one branch for every sample: float32 (N, H, W) in [0, 1].

    ``target_classes``: one class for all samples, one per sample, or None = the predicted class.
    ``branch``: a name from :func:`branch_names` or an index into ``model.cam_target_layers()``.
    """
    from pytorch_grad_cam import GradCAM
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    model.eval()
    layers = model.cam_target_layers()
    idx = branch_names(model).index(branch) if isinstance(branch, str) else int(branch)
    x = _as_tensor(x)
    device = next(model.parameters()).device
    if target_classes is None:
        with torch.no_grad():
            target_classes = model(x.to(device)).argmax(1).cpu().tolist()
    elif isinstance(target_classes, (int, np.integer)):
        target_classes = [int(target_classes)] * len(x)
    target_classes = [int(c) for c in target_classes]
    out = []
    with GradCAM(model=model, target_layers=[layers[idx]]) as cam:
        for start in range(0, len(x), batch_size):
            xb = x[start:start + batch_size].to(device)
            tb = [ClassifierOutputTarget(c) for c in target_classes[start:start + batch_size]]
            out.append(cam(input_tensor=xb, targets=tb).astype(np.float32))
    return np.concatenate(out) if out else np.zeros((0,) + tuple(x.shape[2:]), np.float32)


def all_branch_maps(model: nn.Module, x: np.ndarray | torch.Tensor,
                    target_classes: Sequence[int] | int | None = None) -> dict[str, np.ndarray]:
    """{branch name: (N, H, W) maps} for every branch of the model."""
    return {name: gradcam_maps(model, x, target_classes, i) for i, name in enumerate(branch_names(model))}


def per_class_maps(model: nn.Module, x: np.ndarray | torch.Tensor,
                   n_classes: int = len(CLASS_NAMES)) -> dict[str, np.ndarray]:
    """{branch: (N, n_classes, H, W)}: what each branch looks at *for* each class, on every sample."""
    out = {}
    for i, name in enumerate(branch_names(model)):
        out[name] = np.stack([gradcam_maps(model, x, c, i) for c in range(n_classes)], axis=1)
    return out


def class_averaged_maps(model: nn.Module, data: FlowDataset, by: str = "label",
                        max_per_class: int | None = None, seed: int = 0) -> dict[str, np.ndarray]:
    """{branch: (n_classes, H, W)}: Grad-CAM for class c averaged over the samples of class c.

    ``by='label'`` groups by ground truth (target = the true class); ``by='pred'`` groups by the
    model's prediction. Classes with no sample give an all-NaN map. ``max_per_class`` subsamples
    (deterministically) to keep CPU time small.
    """
    n_classes = len(data.class_names)
    x = torch.from_numpy(data.x)
    if by == "pred":
        model.eval()
        with torch.no_grad():
            groups = model(x.to(next(model.parameters()).device)).argmax(1).cpu().numpy()
    elif by == "label":
        groups = data.labels
    else:
        raise ValueError(f"by must be 'label' or 'pred', got {by!r}")
    rng = np.random.default_rng(seed)
    names = branch_names(model)
    h, w = data.image_size
    out = {n: np.full((n_classes, h, w), np.nan, np.float32) for n in names}
    for c in range(n_classes):
        idx = np.flatnonzero(groups == c)
        if max_per_class is not None and len(idx) > max_per_class:
            idx = np.sort(rng.choice(idx, max_per_class, replace=False))
        if len(idx) == 0:
            continue
        for i, n in enumerate(names):
            out[n][c] = gradcam_maps(model, x[idx], c, i).mean(axis=0)
    return out


# ----------------------------------------------------------------------------- checked against known motion
def cam_mass_in_mask(cam: np.ndarray, mask: np.ndarray) -> float:
    """Share of the CAM's total mass that falls inside ``mask`` (1 = all attention on the mask)."""
    cam = np.clip(np.asarray(cam, dtype=np.float64), 0, None)
    total = cam.sum()
    return float((cam * mask).sum() / total) if total > 0 else float("nan")


def cam_mass_report(model: nn.Module, data: FlowDataset, max_samples: int | None = 60, seed: int = 0,
                    threshold: float = 0.3):
    """Per branch, on synthetic data: mean share of CAM mass (target = true class) inside the true
    moving regions, beside the regions' share of the image (what a uniform map would score).

    Returns a pandas DataFrame with one row per branch; raises ValueError without ground truth.
    """
    import pandas as pd

    from .synth import ground_truth_root, true_motion_mask

    root = ground_truth_root(data)
    if root is None:
        raise ValueError("CAM mass needs the synthetic set's ground truth (gt/); this dataset has none")
    idx = np.arange(len(data))
    if max_samples is not None and len(idx) > max_samples:
        idx = np.sort(np.random.default_rng(seed).choice(idx, max_samples, replace=False))
    masks = np.stack([true_motion_mask(root, data.sample_ids[i], data.image_size, threshold) for i in idx])
    x = torch.from_numpy(data.x[idx])
    rows = []
    for i, name in enumerate(branch_names(model)):
        cams = gradcam_maps(model, x, data.labels[idx], i)
        shares = np.array([cam_mass_in_mask(c, m) for c, m in zip(cams, masks)])
        rows.append({"branch": name, "CAM mass in moving regions": float(np.nanmean(shares)),
                     "area of moving regions": float(masks.mean()),
                     "ratio (1 = chance)": float(np.nanmean(shares) / masks.mean()) if masks.mean() else float("nan"),
                     "samples": len(idx)})
    return pd.DataFrame(rows)


# ----------------------------------------------------------------------------- figures
def plot_sample_cams(x: np.ndarray, cams: dict[str, np.ndarray], title: str = "", face: np.ndarray | None = None,
                     mask: np.ndarray | None = None, alpha: float = 0.5):
    """One row per branch: the flow channel that branch sees, its Grad-CAM over it, and (synthetic
    only) the CAM over the face with the true moving regions outlined. ``x``: (3, H, W); ``cams``:
    {branch: (H, W)}."""
    import matplotlib.pyplot as plt

    names = list(cams)
    ncols = 3 if face is not None else 2
    fig, axes = plt.subplots(len(names), ncols, figsize=(2.3 * ncols, 2.2 * len(names)), squeeze=False)
    for r, name in enumerate(names):
        ch = CHANNELS.index(name) if name in CHANNELS else None
        base = x[ch] if ch is not None else x.mean(axis=0)
        axes[r, 0].imshow(base, cmap="gray")
        axes[r, 0].set_title(f"{name} input" if ch is not None else "input (mean of channels)", fontsize=8)
        axes[r, 1].imshow(base, cmap="gray")
        axes[r, 1].imshow(cams[name], cmap="jet", alpha=alpha, vmin=0, vmax=1)
        axes[r, 1].set_title(f"Grad-CAM, {name} branch", fontsize=8)
        if face is not None:
            import cv2

            cam_big = cv2.resize(cams[name].astype(np.float32), (face.shape[1], face.shape[0]),
                                 interpolation=cv2.INTER_LINEAR)
            axes[r, 2].imshow(face, cmap="gray")
            axes[r, 2].imshow(cam_big, cmap="jet", alpha=alpha, vmin=0, vmax=1)
            if mask is not None:
                m_big = cv2.resize(mask.astype(np.float32), (face.shape[1], face.shape[0]),
                                   interpolation=cv2.INTER_NEAREST)
                axes[r, 2].contour(m_big, levels=[0.5], colors="white", linewidths=1)
            axes[r, 2].set_title("on the face (white: true motion)", fontsize=8)
    for ax in axes.ravel():
        ax.set_xticks([])
        ax.set_yticks([])
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    cam_scale = plt.cm.ScalarMappable(cmap="jet", norm=plt.Normalize(0, 1))
    bar = fig.colorbar(cam_scale, ax=axes.ravel().tolist(), orientation="horizontal", fraction=0.04, pad=0.03)
    bar.set_label("Grad-CAM (0 = no evidence, 1 = strongest evidence for the class in this image)", fontsize=7)
    bar.ax.tick_params(labelsize=7)
    return fig


def plot_class_maps(maps: dict[str, np.ndarray], class_names: Sequence[str] = CLASS_NAMES, title: str = ""):
    """Grid of class-averaged maps: rows = branches, columns = classes."""
    import matplotlib.pyplot as plt

    names = list(maps)
    fig, axes = plt.subplots(len(names), len(class_names), figsize=(2.2 * len(class_names), 2.1 * len(names)),
                             squeeze=False)
    for r, name in enumerate(names):
        for c, cname in enumerate(class_names):
            ax = axes[r, c]
            m = maps[name][c]
            if np.isnan(m).all():
                ax.text(0.5, 0.5, "no samples", ha="center", va="center", transform=ax.transAxes, fontsize=8)
            else:
                ax.imshow(m, cmap="jet", vmin=0, vmax=1)
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title(cname, fontsize=9)
            if c == 0:
                ax.set_ylabel(f"{name} branch", fontsize=9)
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    return fig


def describe_branches(model: nn.Module, x: np.ndarray | torch.Tensor):
    """What each branch of AM3F-FlowNet computes on ``x`` (one sample or a batch): the feature-map
    shape of every stage, the MSFF vector length, and the MOFRW weight given to that flow.

    Read through forward hooks, so it shows exactly what the model's own forward pass does.
    """
    import pandas as pd

    if not hasattr(model, "branches"):
        raise ValueError("describe_branches needs a branch model (AM3F-FlowNet)")
    model.eval()
    feats: dict[str, list] = {}
    hooks = [model.branches[f].register_forward_hook(lambda m, i, o, f=f: feats.__setitem__(f, o))
             for f in model.cfg.flows]
    hooks += [model.msff[f].register_forward_hook(lambda m, i, o, f=f: feats.__setitem__(f + "/msff", o))
              for f in model.cfg.flows]
    try:
        with torch.no_grad():
            probs = torch.softmax(model(_as_tensor(x)), 1)
    finally:
        for h in hooks:
            h.remove()
    weights = model.mofrw.last_flow_weights
    rows = []
    for i, f in enumerate(model.cfg.flows):
        rows.append({"branch": f, "input channel": f"{f} (1 x {tuple(_as_tensor(x).shape[2:])})",
                     "stage outputs (C x H x W)": ", ".join("x".join(map(str, t.shape[1:])) for t in feats[f]),
                     "MSFF vector": int(feats[f + "/msff"].shape[1]),
                     "MOFRW flow weight": float(weights[:, i].mean()) if weights is not None else float("nan")})
    return pd.DataFrame(rows), probs.numpy()


def heldout_class_averaged_maps(models: dict, data: FlowDataset, max_per_class: int | None = None
                                ) -> dict[str, np.ndarray]:
    """Class-averaged maps over held-out samples only: ``models`` maps a subject to the model of the
    fold that held it out; each subject's maps come from its own fold model, then the per-class
    averages are pooled, weighted by sample counts. {branch: (n_classes, H, W)}, NaN where a class
    has no sample."""
    n_classes = len(data.class_names)
    sums: dict[str, np.ndarray] = {}
    counts = np.zeros(n_classes)
    for subject, model in models.items():
        part = data.subset(data.subjects == subject)
        avg = class_averaged_maps(model, part, max_per_class=max_per_class)
        n_c = np.bincount(part.labels, minlength=n_classes).astype(float)
        if max_per_class is not None:
            n_c = np.minimum(n_c, max_per_class)
        for branch, maps in avg.items():
            sums[branch] = sums.get(branch, 0) + np.nan_to_num(maps) * n_c[:, None, None]
        counts += n_c
    denom = np.where(counts > 0, counts, np.nan)[:, None, None]
    return {b: (s / denom).astype(np.float32) for b, s in sums.items()}
