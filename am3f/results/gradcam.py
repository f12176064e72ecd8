"""Class activation maps (pytorch-grad-cam) on our models: per branch, per class, class-averaged.

Our models take ONE (N, 3, H, W) tensor in (u, v, strain) order, so pytorch-grad-cam treats them
like any image classifier. A map is computed for each branch on its own (AM3F-FlowNet: the conv
blocks of the u, v or strain branch; STSTNet: one of its three streams) and upsampled by
pytorch-grad-cam to the flow image's size.

The default (:data:`DEFAULT_METHOD`, :data:`DEFAULT_LAYERS`, :data:`DEFAULT_FLIP`) was chosen by
measurement on the synthetic set's known motion (:mod:`am3f.results.cam_eval`, docs/design-choices.md,
"Feature visualisation"): **LayerCAM of the first stage times LayerCAM of the last stage**, each
averaged over the flow image and its flow-aware mirror (as the model predicts). The fine first stage
(10x10 cells) says where, the deep last stage says which region speaks for the class; their product
keeps what both agree on.

Maps are min-max scaled per image (0..1, pytorch-grad-cam's ``scale_cam_image``), which is what
makes maps of different samples comparable enough to average per class. A branch the model gives no
weight (MOFRW flow weight 0) has no gradient: its map is all zeros.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

from am3f.data.dataset import CHANNELS, CLASS_NAMES, FlowDataset
from am3f.protocol.folds import held_out_rows

# ----------------------------------------------------------------------------- methods, layers, targets
# Methods: pytorch-grad-cam's classes, and "attention" = the model's own MSFF spatial-attention maps
# (read through forward hooks; no gradients, the same for every class).
# Layers of a branch: "input" (the branch's normalised input map: a LayerCAM/HiResCAM there is
# gradient x input), "stage1".."stage3", "first", "last", "all" (every stage given to pytorch-grad-cam
# at once: its own aggregation, the mean of the per-stage maps), or a product of such parts joined
# by "*" (e.g. "first*last": the maps multiplied, then scaled again).
CAM_METHODS = ("gradcam", "gradcam++", "hirescam", "layercam", "attention")
LAYER_PARTS = ("input", "stage1", "stage2", "stage3", "first", "last", "all")
TARGET_CHOICES = ("logit", "softmax", "contrast")
DEFAULT_METHOD = "layercam"
DEFAULT_LAYERS = "first*last"
DEFAULT_TARGET = "logit"
DEFAULT_FLIP = True


def _cam_class(method: str):
    import pytorch_grad_cam as pgc

    classes = {"gradcam": pgc.GradCAM, "gradcam++": pgc.GradCAMPlusPlus, "hirescam": pgc.HiResCAM,
               "layercam": pgc.LayerCAM}
    if method not in classes:
        raise ValueError(f"unknown CAM method {method!r} (choose from {', '.join(CAM_METHODS)})")
    return classes[method]


class ContrastTarget:
    """Class score minus the mean of all class scores: what separates class c from the others (a
    change that raises every logit alike, e.g. "there is motion", does not count)."""

    def __init__(self, category: int):
        self.category = category

    def __call__(self, output: torch.Tensor) -> torch.Tensor:
        return output[..., self.category] - output.mean(-1)


def _target(kind: str, category: int):
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputSoftmaxTarget, ClassifierOutputTarget

    kinds = {"logit": ClassifierOutputTarget, "softmax": ClassifierOutputSoftmaxTarget, "contrast": ContrastTarget}
    if kind not in kinds:
        raise ValueError(f"unknown CAM target {kind!r} (choose from {', '.join(TARGET_CHOICES)})")
    return kinds[kind](int(category))


# ----------------------------------------------------------------------------- layers
def branch_names(model: nn.Module) -> list[str]:
    """Names of the layers returned by ``model.cam_target_layers()``, in that order."""
    layers = model.cam_target_layers()
    cfg = getattr(model, "cfg", None)
    if cfg is not None and len(getattr(cfg, "flows", ())) == len(layers):  # one branch per flow map
        return list(cfg.flows)
    return [f"stream{i + 1}" for i in range(len(layers))]


def _branch_index(model: nn.Module, branch: str | int) -> int:
    return branch_names(model).index(branch) if isinstance(branch, str) else int(branch)


def branch_layers(model: nn.Module, branch: str | int, part: str = "last") -> list[nn.Module]:
    """The layers of one branch that one part of a layer spec names (see :data:`LAYER_PARTS`).

    AM3F-FlowNet: the conv blocks of the branch (shallow -> deep), or its input hook. A model without
    stages per branch (STSTNet: one block per stream) has one layer, which every part then means."""
    idx = _branch_index(model, branch)
    if not hasattr(model, "branches"):
        return [model.cam_target_layers()[idx]]
    br = model.branches[branch_names(model)[idx]]
    stages = list(br.stages)
    named = {"input": [br.input], "first": stages[:1], "last": stages[-1:], "all": stages}
    named.update({f"stage{k + 1}": [s] for k, s in enumerate(stages)})
    if part not in named:
        raise ValueError(f"unknown layer {part!r} for a {len(stages)}-stage branch (choose from "
                         f"{', '.join(named)}, or parts joined by '*')")
    return named[part]


def _as_tensor(x: np.ndarray | torch.Tensor) -> torch.Tensor:
    t = torch.as_tensor(np.asarray(x, dtype=np.float32)) if not isinstance(x, torch.Tensor) else x.float()
    return t.unsqueeze(0) if t.ndim == 3 else t


def predicted_classes(model: nn.Module, x: np.ndarray | torch.Tensor, flip: bool = DEFAULT_FLIP) -> np.ndarray:
    """The model's predicted class per sample (with ``flip``: as the LOSO runs predict, averaging the
    probabilities of the flow image and its flow-aware mirror)."""
    from am3f.training.fit import predict

    return predict(model, _as_tensor(x), next(model.parameters()).device, tta_flip=flip).argmax(1)


def _classes(model: nn.Module, x: torch.Tensor, target_classes, flip: bool) -> list[int]:
    if target_classes is None:
        return predicted_classes(model, x, flip).tolist()
    if isinstance(target_classes, (int, np.integer)):
        return [int(target_classes)] * len(x)
    return [int(c) for c in target_classes]


# ----------------------------------------------------------------------------- maps
def _scale(maps: np.ndarray) -> np.ndarray:
    from pytorch_grad_cam.utils.image import scale_cam_image

    return scale_cam_image(maps).astype(np.float32) if len(maps) else maps.astype(np.float32)


def attention_maps(model: nn.Module, x: np.ndarray | torch.Tensor, branch: str | int = 0,
                   layers: str = "all") -> np.ndarray:
    """The model's own MSFF spatial-attention maps of one branch, (N, H, W) in [0, 1].

    Read through forward hooks on the attention logits (sigmoid of them = the weight MSFF
    multiplies each position by), upsampled and scaled like a CAM; ``layers``: one part of
    :data:`LAYER_PARTS` (not "input"); "all" averages the stages' maps."""
    from pytorch_grad_cam.utils.image import scale_cam_image

    if not hasattr(model, "msff") or not model.cfg.msff:
        raise ValueError("attention maps need AM3F-FlowNet with MSFF (its spatial attention)")
    name = branch_names(model)[_branch_index(model, branch)]
    all_stages = list(model.branches[name].stages)
    stages = branch_layers(model, name, layers)
    if any(s not in all_stages for s in stages):
        raise ValueError("attention maps exist for the stages only, not the input")
    convs = [model.msff[name].attn[all_stages.index(s)].logits for s in stages]
    x = _as_tensor(x)
    got: list[torch.Tensor] = []
    hooks = [c.register_forward_hook(lambda m, i, o: got.append(torch.sigmoid(o[:, 0]).detach().cpu()))
             for c in convs]
    model.eval()
    try:
        with torch.no_grad():
            model(x.to(next(model.parameters()).device))
    finally:
        for h in hooks:
            h.remove()
    size = (x.shape[-1], x.shape[-2])
    return _scale(np.mean([scale_cam_image(g.numpy(), size) for g in got], axis=0))


def _cam_of_part(model: nn.Module, x: torch.Tensor, classes: list[int], branch: str | int, part: str,
                 method: str, target: str, batch_size: int) -> np.ndarray:
    if method == "attention":
        return attention_maps(model, x, branch, part)
    cam_class = _cam_class(method)
    device = next(model.parameters()).device
    out = []
    with cam_class(model=model, target_layers=branch_layers(model, branch, part)) as cam:
        cam.compute_input_gradient = True  # so the "input" hook (a pass-through) gets gradients too
        for start in range(0, len(x), batch_size):
            xb = x[start:start + batch_size].to(device)
            tb = [_target(target, c) for c in classes[start:start + batch_size]]
            out.append(cam(input_tensor=xb, targets=tb).astype(np.float32))
    return np.concatenate(out)


def gradcam_maps(model: nn.Module, x: np.ndarray | torch.Tensor, target_classes: Sequence[int] | int | None = None,
                 branch: str | int = 0, batch_size: int = 64, *, method: str = DEFAULT_METHOD,
                 layers: str = DEFAULT_LAYERS, target: str = DEFAULT_TARGET, flip: bool = DEFAULT_FLIP
                 ) -> np.ndarray:
    """A class activation map of one branch for every sample: float32 (N, H, W) in [0, 1].

    ``target_classes``: one class for all samples, one per sample, or None = the predicted class.
    ``branch``: a name from :func:`branch_names` or an index into ``model.cam_target_layers()``.
    ``method``: one of :data:`CAM_METHODS` (pytorch-grad-cam's implementations, or the MSFF attention);
    ``layers``: parts of :data:`LAYER_PARTS` joined by "*" (their maps multiplied); ``target``: the
    score explained, ``logit`` (the class logit), ``softmax`` (its probability) or ``contrast``
    (logit minus the mean logit); ``flip``: average each map with the map of the flow-aware mirror
    image, mirrored back (the model's test-time prediction averages both views).
    Defaults: the choice measured best on known motion (module doc).
    """
    from am3f.training.augment import hflip_flow

    x = _as_tensor(x)
    if len(x) == 0:
        return np.zeros((0,) + tuple(x.shape[2:]), np.float32)
    model.eval()
    classes = _classes(model, x, target_classes, flip)
    parts, seen = [], []
    for part in layers.split("*"):
        ids = [id(m) for m in branch_layers(model, branch, part)]
        if ids not in seen:  # STSTNet: "first" and "last" are the same layer, use it once
            seen.append(ids)
            parts.append(part)
    maps = []
    for part in parts:
        m = _cam_of_part(model, x, classes, branch, part, method, target, batch_size)
        if flip:
            mirrored = _cam_of_part(model, hflip_flow(x), classes, branch, part, method, target, batch_size)
            m = _scale((m + mirrored[..., ::-1]) / 2)
        maps.append(m)
    return _scale(np.prod(maps, axis=0)) if len(maps) > 1 else maps[0]


def all_branch_maps(model: nn.Module, x: np.ndarray | torch.Tensor,
                    target_classes: Sequence[int] | int | None = None, **cam) -> dict[str, np.ndarray]:
    """{branch name: (N, H, W) maps} for every branch of the model (``cam``: options of :func:`gradcam_maps`)."""
    return {name: gradcam_maps(model, x, target_classes, i, **cam) for i, name in enumerate(branch_names(model))}


def per_class_maps(model: nn.Module, x: np.ndarray | torch.Tensor,
                   n_classes: int = len(CLASS_NAMES), **cam) -> dict[str, np.ndarray]:
    """{branch: (N, n_classes, H, W)}: what each branch looks at *for* each class, on every sample."""
    out = {}
    for i, name in enumerate(branch_names(model)):
        out[name] = np.stack([gradcam_maps(model, x, c, i, **cam) for c in range(n_classes)], axis=1)
    return out


def class_averaged_maps(model: nn.Module, data: FlowDataset, by: str = "label",
                        max_per_class: int | None = None, seed: int = 0, **cam) -> dict[str, np.ndarray]:
    """{branch: (n_classes, H, W)}: the map for class c averaged over the samples of class c.

    ``by='label'`` groups by ground truth (target = the true class); ``by='pred'`` groups by the
    model's prediction. Classes with no sample give an all-NaN map. ``max_per_class`` subsamples
    (deterministically) to keep CPU time small. ``cam``: options of :func:`gradcam_maps`.
    """
    n_classes = len(data.class_names)
    x = torch.from_numpy(data.x)
    if by == "pred":
        groups = predicted_classes(model, x, cam.get("flip", DEFAULT_FLIP))
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
            out[n][c] = gradcam_maps(model, x[idx], c, i, **cam).mean(axis=0)
    return out


# ----------------------------------------------------------------------------- figures
METHOD_TITLES = {"gradcam": "Grad-CAM", "gradcam++": "Grad-CAM++", "hirescam": "HiResCAM", "layercam": "LayerCAM",
                 "attention": "MSFF attention"}


def method_label(method: str = DEFAULT_METHOD, layers: str = DEFAULT_LAYERS, flip: bool = DEFAULT_FLIP) -> str:
    """How a map was made, for titles: e.g. 'LayerCAM, first x last stage, + mirror'."""
    where = " x ".join(p if p.startswith("stage") or p == "input" else f"{p} stage" if p != "all" else "all stages"
                       for p in layers.split("*"))
    return f"{METHOD_TITLES.get(method, method)}, {where}" + (", + mirror" if flip else "")


def plot_sample_cams(x: np.ndarray, cams: dict[str, np.ndarray], title: str = "", face: np.ndarray | None = None,
                     mask: np.ndarray | None = None, alpha: float = 0.5, label: str = "LayerCAM"):
    """One row per branch: the flow channel that branch sees, its map over it, and (synthetic only)
    the map over the face with the true moving regions outlined. ``x``: (3, H, W); ``cams``:
    {branch: (H, W)}; ``label``: the method's name in the panel titles."""
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
        axes[r, 1].set_title(f"{label}, {name} branch", fontsize=8)
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
    bar.set_label(f"{label} (0 = no evidence, 1 = strongest evidence for the class in this image)", fontsize=7)
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


def heldout_class_averaged_maps(models: dict, data: FlowDataset, max_per_class: int | None = None, **cam
                                ) -> dict[str, np.ndarray]:
    """Class-averaged maps over held-out samples only: ``models`` maps a subject to the model of the
    fold that held it out; each subject's maps come from its own fold model, then the per-class
    averages are pooled, weighted by sample counts. {branch: (n_classes, H, W)}, NaN where a class
    has no sample."""
    n_classes = len(data.class_names)
    sums: dict[str, np.ndarray] = {}
    counts = np.zeros(n_classes)
    for subject, model in models.items():
        part = data.subset(held_out_rows(data, subject))
        avg = class_averaged_maps(model, part, max_per_class=max_per_class, **cam)
        n_c = np.bincount(part.labels, minlength=n_classes).astype(float)
        if max_per_class is not None:
            n_c = np.minimum(n_c, max_per_class)
        for branch, maps in avg.items():
            sums[branch] = sums.get(branch, 0) + np.nan_to_num(maps) * n_c[:, None, None]
        counts += n_c
    denom = np.where(counts > 0, counts, np.nan)[:, None, None]
    return {b: (s / denom).astype(np.float32) for b, s in sums.items()}
