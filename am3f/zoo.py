"""Every architecture the package trains, and every named variant: one registry for the CLI, the
training code and the notebooks.

* :data:`ARCHITECTURES`: name (the ``arch`` of a model config, what ``am3f loso --model`` takes) ->
  :class:`ArchSpec` (default config, input, public source, published parameter count, variants);
* :data:`VARIANTS`: name -> (model config, training-config overrides, description): AM3F-FlowNet's
  ablations (:data:`am3f.model.VARIANTS`), and for each peer ``<arch>`` (our declared schedule)
  and ``<arch>-authors`` (the recipe in its authors' code, :data:`am3f.peers.AUTHORS_RECIPES`);
* :func:`build_model`, :func:`get_variant`, :func:`model_config_from_dict`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from torch import nn

from .errors import AM3FError
from .model import FULL, STSTNET, AM3FFlowNet, ModelConfig, STSTNetScratch
from .model import VARIANTS as AM3F_VARIANTS
from .peers import (
    AUTHORS_RECIPES,
    DUALINCEPTION,
    HTNET,
    HTNET_SMALL,
    OFFAPEXNET,
    RCN_BASE,
    build_peer,
    peer_config_from_dict,
)


# ----------------------------------------------------------------------------- the registry
@dataclass(frozen=True)
class ArchSpec:
    """What the package knows about one architecture."""

    name: str
    config: object  # the default model config (ModelConfig for am3f/ststnet, a peer config otherwise)
    input: str  # what the authors' model is fed, and how we convert our (u, v, strain) in [0, 1]
    source: str  # public code (repository, file) or "ours"
    paper: str
    params: int | None  # parameter count of the public model (3 classes, 28x28); None: ours
    params_note: str  # where that number comes from
    variants: tuple[str, ...]  # named variants; the first is the default of `am3f loso --model NAME`
    builder: Callable[..., nn.Module] | None = None  # (config, image_size) -> model; None: am3f.model's own
    reduced: bool = False  # a declared reduction of a published configuration

    @property
    def default_variant(self) -> str:
        return self.variants[0]


def _specs() -> dict[str, ArchSpec]:
    return {
        "am3f": ArchSpec(
            "am3f", FULL, "(u, v, strain) in [0, 1], normalised inside the model; one branch per map",
            "ours (this package)", "Fu et al., Entropy 2023 (AM3F-FlowNet; our reading, see docs/design-choices.md)",
            None, "ours: no public model", ("full",)),
        "ststnet": ArchSpec(
            "ststnet", STSTNET, "BGR (strain, v, u) x 255, as cv2.imread gives the PNG; three shallow streams",
            "github.com/christy1206/STSTNet (MATLAB); published per-subject weights",
            "Liong et al., FG 2019", 1683, "the published per-subject weights (am3f.ststnet)", ("ststnet",)),
        "dualinception": ArchSpec(
            "dualinception", DUALINCEPTION,
            "u and v, each repeated on 3 channels, [0, 1], 28x28; two Inception streams",
            "github.com/xly135846/MEGC2019 dual_inception.py (Keras; in the repository's history)",
            "Zhou, Mao & Xue, FG 2019", 6_449_963, "counted layer by layer from the Keras definition",
            ("dualinception", "dualinception-authors"), build_peer),
        "offapexnet": ArchSpec(
            "offapexnet", OFFAPEXNET, "u and v, one channel each, [0, 1], 28x28; two conv streams",
            "no authors' code; layer sizes of github.com/ECNU-Cross-Innovation-Lab/PRICAI2021-Off-TANet "
            "models/off_apexnet.py",
            "Gan et al., Signal Processing: Image Communication 2019", 2_664_475,
            "counted layer by layer; equals the 2.66M of the Off-TANet README",
            ("offapexnet", "offapexnet-authors"), build_peer),
        "rcn": ArchSpec(
            "rcn", RCN_BASE, "(u, v, strain) in [0, 1] as the RGB PNG through ToTensor(); any size",
            "github.com/xiazhaoqiang/ParameterFreeRCNs-MicroExpressionRec RCNs.py RecNet",
            "Xia et al., IEEE TIP 2020", 15_331, "the authors' RecNet(3, 32, 3, 1) counted by running their code",
            ("rcn", "rcn-authors"), build_peer),
        "htnet": ArchSpec(
            "htnet", HTNET, "BGR x 255 of the flow, mosaic of four 14x14 crops at fixed eye/mouth-corner "
            "positions (the authors' fallback landmarks), 28x28",
            "github.com/wangzhifengharrison/HTNet Model.py, main_HTNet.py", "Wang et al., Neurocomputing 2024",
            139_582_982, "the authors' HTNet(28, 7, dim 256, heads 3, 3 levels, (2, 2, 10)) counted by running "
            "their code", ("htnet", "htnet-authors"), build_peer),
        "htnet-small": ArchSpec(
            "htnet-small", HTNET_SMALL, "as htnet", "ours: a DECLARED REDUCTION of htnet (dim 32 instead of 256)",
            "Wang et al., Neurocomputing 2024 (reduced)", None, "ours: reduced configuration, no public model",
            ("htnet-small", "htnet-small-authors"), build_peer, reduced=True),
    }


ARCHITECTURES: dict[str, ArchSpec] = _specs()


# ----------------------------------------------------------------------------- named variants
def _peer_variants() -> dict[str, tuple[object, dict, str]]:
    out: dict[str, tuple[object, dict, str]] = {}
    for arch, cfg in (("dualinception", DUALINCEPTION), ("offapexnet", OFFAPEXNET), ("rcn", RCN_BASE),
                      ("htnet", HTNET), ("htnet-small", HTNET_SMALL)):
        recipe = AUTHORS_RECIPES[arch]
        reduced = " (declared reduced HTNet)" if arch == "htnet-small" else ""
        whose = ("the Off-TANet re-implementation's recipe (no authors' code)" if arch == "offapexnet"
                 else "its authors' recipe")
        out[arch] = (cfg, {}, f"peer {arch}{reduced} under our declared schedule (like ststnet)")
        out[f"{arch}-authors"] = (cfg, dict(recipe),
                                  f"peer {arch}{reduced} under {whose}: {recipe['optimizer']} "
                                  f"lr {recipe['lr']:g}, {recipe['epochs']} epochs, batch {recipe['batch_size']}, "
                                  f"plain CE, no augmentation, last epoch")
    return out


# name -> (model config, overrides of the training config, one-line description), like am3f.model.VARIANTS
PEER_VARIANTS: dict[str, tuple[object, dict, str]] = _peer_variants()
VARIANTS: dict[str, tuple[object, dict, str]] = {**AM3F_VARIANTS, **PEER_VARIANTS}


def get_variant(name: str) -> tuple[object, dict]:
    """Model config and training overrides of a named variant (:data:`VARIANTS`)."""
    if name not in VARIANTS:
        raise AM3FError(f"unknown variant {name!r} (known: {', '.join(VARIANTS)})")
    cfg, train_overrides, _ = VARIANTS[name]
    return cfg, dict(train_overrides)


def model_config_from_dict(d: dict):
    """A model config from its dict form (config.json, checkpoints): :class:`ModelConfig` for
    am3f/ststnet, the peer's config class otherwise (chosen by the ``"arch"`` key)."""
    if d.get("arch", "am3f") in ("am3f", "ststnet"):
        return ModelConfig.from_dict(d)
    return peer_config_from_dict(d)


def build_model(spec: str | ModelConfig | dict | object = "full", image_size: int = 28) -> nn.Module:
    """A fresh model from a variant name, a model config (:class:`ModelConfig` or a peer's) or its
    dict form (with an ``"arch"`` key: any name of :data:`ARCHITECTURES`)."""
    if isinstance(spec, str):
        spec = get_variant(spec)[0]
    elif isinstance(spec, dict):
        spec = model_config_from_dict(spec)
    if spec.arch == "am3f":
        return AM3FFlowNet(spec)
    if spec.arch == "ststnet":
        return STSTNetScratch(spec, image_size=image_size)
    return build_peer(spec, image_size=image_size)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
