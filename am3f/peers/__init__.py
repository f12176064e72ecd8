"""The peer architectures of the honest leaderboard, as our own PyTorch modules, and one registry of
every architecture the package can train.

Each peer module re-implements one published model faithfully to its authors' public code (see its
docstring for the repository, file and lines, what is ours, and the authors' training recipe):

* :mod:`.dualinception` -- Dual-Inception (Zhou et al., FG 2019), u and v Inception streams;
* :mod:`.offapexnet` -- OFF-ApexNet (Gan et al., SPIC 2019), u and v conv streams;
* :mod:`.rcn` -- RCN (Xia et al., IEEE TIP 2020), recurrent convolutional network, base variant;
* :mod:`.htnet` -- HTNet (Wang et al., Neurocomputing 2024), hierarchical transformer over four
  facial-region crops, plus the declared reduced ``htnet-small``.

All take ONE tensor (N, 3, H, W) in (u, v, strain) order with values in [0, 1], exactly like
AM3F-FlowNet, and return logits (N, n_classes); each has ``cam_target_layers()``.

:data:`ARCHITECTURES` maps an architecture name (the ``arch`` of a model config; what ``am3f loso
--model`` takes) to its :class:`ArchSpec`. :data:`PEER_VARIANTS` holds the named variants of the
peers: ``<arch>`` under OUR declared schedule (:class:`am3f.train.TrainConfig` defaults, like
STSTNet) and ``<arch>-authors`` under the recipe published in the authors' code (optimizer,
learning rate, epochs, batch size, plain cross-entropy, no augmentation, no test-time flip), always
scored at the last epoch. ``am3f.model.get_variant`` / ``build_model`` and
``am3f.train.resolve_variant`` consult them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from torch import nn

from ..errors import AM3FError
from ..model import FULL, STSTNET
from .dualinception import DualInception, DualInceptionConfig
from .htnet import HTNet, HTNetConfig
from .offapexnet import OFFApexNet, OFFApexNetConfig
from .rcn import RCN, RCNConfig


# ----------------------------------------------------------------------------- configs of the peers
DUALINCEPTION = DualInceptionConfig()
OFFAPEXNET = OFFApexNetConfig()
RCN_BASE = RCNConfig()
HTNET = HTNetConfig()
# ours, declared: the published HTNet at 1/8 of its width (dim 32 instead of 256), same depth, heads,
# patches and regions, for CPU LOSO runs
HTNET_SMALL = HTNetConfig(arch="htnet-small", dim=32)

CONFIG_CLASSES: dict[str, type] = {"dualinception": DualInceptionConfig, "offapexnet": OFFApexNetConfig,
                                   "rcn": RCNConfig, "htnet": HTNetConfig, "htnet-small": HTNetConfig}
MODEL_CLASSES: dict[str, type[nn.Module]] = {"dualinception": DualInception, "offapexnet": OFFApexNet,
                                             "rcn": RCN, "htnet": HTNet, "htnet-small": HTNet}


def peer_config_from_dict(d: dict):
    """A peer's config from its dict form (what config.json records), chosen by ``d["arch"]``."""
    arch = d.get("arch")
    if arch not in CONFIG_CLASSES:
        raise AM3FError(f"unknown architecture {arch!r} (known: {', '.join(ARCHITECTURES)})")
    return CONFIG_CLASSES[arch].from_dict(d)


def build_peer(cfg, image_size: int = 28) -> nn.Module:
    if cfg.arch not in MODEL_CLASSES:
        raise AM3FError(f"unknown architecture {cfg.arch!r} (known: {', '.join(ARCHITECTURES)})")
    return MODEL_CLASSES[cfg.arch](cfg, image_size=image_size)


# ----------------------------------------------------------------------------- training recipes
# Everything our declared schedule adds beyond a plain fit, switched off: no weight decay, no warm-up
# or cosine decay (constant rate), plain cross-entropy (tau 0), no augmentation, no test-time flip,
# no weight averaging, one model per fold, the ragged last batch kept (as a DataLoader does).
_PLAIN = dict(weight_decay=0.0, warmup_epochs=0.0, schedule="constant", tau=0.0, weight_power=0.0,
              label_smoothing=0.0, hflip=0.0, max_shift=0.0, same_class_mix=0.0, ema=0.0, tta_flip=False,
              n_models=1, drop_last=False)

AUTHORS_RECIPES: dict[str, dict] = {
    # dual_inception.py: Adam(lr=0.0001), categorical cross-entropy, batch_size=3, epochs=40
    "dualinception": dict(_PLAIN, optimizer="adam", lr=1e-4, epochs=40, batch_size=3),
    # no authors' code; the Off-TANet re-implementation's train_arg.py: Adam, lr 1e-4, 3000 epochs, batch 64
    "offapexnet": dict(_PLAIN, optimizer="adam", lr=1e-4, epochs=3000, batch_size=64),
    # ModelTrain_Final.py + README: SGD(lr=0.0005, momentum=0.9) (constant: the StepLR is never stepped),
    # cross-entropy, 20 epochs, batch 64
    "rcn": dict(_PLAIN, optimizer="sgd", nesterov=False, lr=5e-4, epochs=20, batch_size=64),
    # main_HTNet.py: Adam(lr=0.00005), cross-entropy, batch 256, 800 epochs
    "htnet": dict(_PLAIN, optimizer="adam", lr=5e-5, epochs=800, batch_size=256),
}
AUTHORS_RECIPES["htnet-small"] = AUTHORS_RECIPES["htnet"]


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
