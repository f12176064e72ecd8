"""Every architecture the package trains, and every named variant: the one registry that the CLI, the
training code and the notebooks read.

* :data:`ARCHITECTURES`: name (the ``arch`` of a model config, what ``am3f loso --model`` takes) ->
  :class:`ArchSpec`: where its default config and its module are, what it is fed, its public source
  and published parameter count. The registry is plain data: a spec names its config and model as
  ``"module:attribute"``, imported when first used, so reading the names (the command line's
  choices) imports no torch. Building a model, reading a config back from JSON and listing the
  variants all go through the spec: there is no per-architecture branch anywhere else.
* :data:`VARIANTS` (computed on first use): name -> (model config, training-recipe overrides,
  description): AM3F-FlowNet's ablations (:data:`am3f.models.am3f_flownet.VARIANTS`), and for each peer ``<arch>``
  (our declared schedule) and, where its authors published one, ``<arch>-authors`` (their recipe,
  :data:`am3f.models.peers.AUTHORS_RECIPES`).
* :func:`build_model`, :func:`get_variant`, :func:`model_config_from_dict`, :func:`model_variant`.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from importlib import import_module

from am3f.errors import AM3FError


def _resolve(ref: str):
    module, _, attribute = ref.partition(":")
    return getattr(import_module(module), attribute)


# ----------------------------------------------------------------------------- the registry
@dataclass(frozen=True)
class ArchSpec:
    """What the package knows about one architecture."""

    name: str
    display_name: str  # in tables and figures
    config_ref: str  # "module:NAME" of its default config (a frozen dataclass with to_dict/from_dict)
    model_ref: str  # "module:Class": Class(config, image_size=...) builds the model
    input: str  # what the authors' model is fed, and how we convert our (u, v, strain) in [0, 1]
    source: str  # public code (repository, file) or "ours"
    paper: str
    params: int | None  # parameter count of the public model (3 classes, 28x28); None: ours
    params_note: str  # where that number comes from
    default_variant: str = ""  # what `am3f loso --model NAME` trains; "": the variant named like the architecture
    description: str = ""  # of its `<name>` variant (peers; "": generated)
    reduction_of: str = ""  # the registry name of the published model this is a declared reduction of ("": none)
    # False: ours (AM3F-FlowNet), whose variants are its ablations (am3f.models.am3f_flownet.VARIANTS)
    peer: bool = True
    recipe_source: str = "its authors' recipe"  # whose recipe its `<name>-authors` variant follows
    # LOSO folds trained together (TrainConfig.fold_group) under our declared schedule, and under its authors'
    # recipe: the size that trained fastest per fold, measured (benchmarks/bench_peers.py --groups; table and
    # reasons in docs/design-choices.md, "Fold groups sized by measurement"). Part of the recipe: it changes float
    # rounding, so a new value changes the variant's config hash and its results. Peers only: AM3F-FlowNet's variants
    # (its ablations) train with TrainConfig's default, 17, where batching pays.
    fold_group: int = 17
    authors_fold_group: int = 17
    # train in channels-last memory (TrainConfig.channels_last) under both recipes: True where it trained faster
    # per fold, measured (benchmarks/bench_peers.py --layouts; docs/design-choices.md, "Where a peer's step goes")
    channels_last: bool = False

    def __post_init__(self) -> None:
        if not self.default_variant:
            object.__setattr__(self, "default_variant", self.name)

    @property
    def reduced(self) -> bool:
        return bool(self.reduction_of)

    @property
    def config(self):
        """The default model config."""
        return _resolve(self.config_ref)

    def config_from_dict(self, d: dict):
        return type(self.config).from_dict(d)

    def build(self, cfg, image_size: int = 28):
        return _resolve(self.model_ref)(cfg, image_size=image_size)

    @property
    def variants(self) -> tuple[str, ...]:
        """Its named variants (:data:`VARIANTS`), the default first."""
        return tuple(n for n, (cfg, _, _) in _variants().items() if cfg.arch == self.name)


ARCHITECTURES: dict[str, ArchSpec] = {spec.name: spec for spec in (
    ArchSpec("am3f", "AM3F-FlowNet (ours)", "am3f.models.am3f_flownet:FULL", "am3f.models.am3f_flownet:AM3FFlowNet",
             "(u, v, strain) in [0, 1], normalised inside the model; one branch per map",
             "ours (this package)", "Fu et al., Entropy 2023 (AM3F-FlowNet; our reading, see docs/design-choices.md)",
             None, "ours: no public model", default_variant="full", peer=False),
    ArchSpec("ststnet", "STSTNet", "am3f.models.peers:STSTNET", "am3f.models.peers.ststnet:STSTNet",
             "BGR (strain, v, u) x 255, as cv2.imread gives the PNG; three shallow streams",
             "github.com/christy1206/STSTNet (MATLAB); published per-subject weights",
             "Liong et al., FG 2019", 1683, "the published per-subject weights (am3f.models.peers.ststnet)",
             description="peer STSTNet (Liong et al. 2019) trained from scratch under the same protocol",
             fold_group=1, authors_fold_group=1, channels_last=True),
    ArchSpec("dualinception", "Dual-Inception", "am3f.models.peers:DUALINCEPTION",
             "am3f.models.peers.dualinception:DualInception",
             "u and v, each repeated on 3 channels, [0, 1], 28x28; two Inception streams",
             "github.com/xly135846/MEGC2019 dual_inception.py (Keras; in the repository's history)",
             "Zhou, Mao & Xue, FG 2019", 6_449_963, "counted layer by layer from the Keras definition",
             fold_group=1, authors_fold_group=1, channels_last=True),
    ArchSpec("offapexnet", "OFF-ApexNet", "am3f.models.peers:OFFAPEXNET", "am3f.models.peers.offapexnet:OFFApexNet",
             "u and v, one channel each, [0, 1], 28x28; two conv streams",
             "no authors' code; layer sizes of github.com/ECNU-Cross-Innovation-Lab/PRICAI2021-Off-TANet "
             "models/off_apexnet.py",
             "Gan et al., Signal Processing: Image Communication 2019", 2_664_475,
             "counted layer by layer; equals the 2.66M of the Off-TANet README",
             recipe_source="the Off-TANet re-implementation's recipe (no authors' code)",
             fold_group=1, authors_fold_group=1, channels_last=True),
    ArchSpec("rcn", "RCN", "am3f.models.peers:RCN_BASE", "am3f.models.peers.rcn:RCN",
             "(u, v, strain) in [0, 1] as the RGB PNG through ToTensor(); any size",
             "github.com/xiazhaoqiang/ParameterFreeRCNs-MicroExpressionRec RCNs.py RecNet",
             "Xia et al., IEEE TIP 2020", 15_331, "the authors' RecNet(3, 32, 3, 1) counted by running their code",
             fold_group=1, authors_fold_group=1, channels_last=True),
    ArchSpec("htnet", "HTNet", "am3f.models.peers:HTNET", "am3f.models.peers.htnet:HTNet",
             "BGR x 255 of the flow, mosaic of four 14x14 crops at fixed eye/mouth-corner "
             "positions (the authors' fallback landmarks), 28x28",
             "github.com/wangzhifengharrison/HTNet Model.py, main_HTNet.py", "Wang et al., Neurocomputing 2024",
             139_582_982, "the authors' HTNet(28, 7, dim 256, heads 3, 3 levels, (2, 2, 10)) counted by running "
             "their code", fold_group=1, authors_fold_group=1),
    ArchSpec("htnet-small", "HTNet-small (reduced)", "am3f.models.peers:HTNET_SMALL", "am3f.models.peers.htnet:HTNet",
             "as htnet",
             "ours: a DECLARED REDUCTION of htnet (dim 32 instead of 256)",
             "Wang et al., Neurocomputing 2024 (reduced)", None, "ours: reduced configuration, no public model",
             reduction_of="htnet", fold_group=1, authors_fold_group=1),
)}


# ----------------------------------------------------------------------------- named variants
def _peer_variants(spec: ArchSpec, authors_recipes: dict) -> dict[str, tuple[object, dict, str]]:
    reduced = f" (declared reduced {ARCHITECTURES[spec.reduction_of].display_name})" if spec.reduced else ""
    ours = spec.description or f"peer {spec.name}{reduced} under our declared schedule (like ststnet)"
    layout = {"channels_last": True} if spec.channels_last else {}
    out = {spec.name: (spec.config, {"fold_group": spec.fold_group, **layout}, ours)}
    recipe = authors_recipes.get(spec.name)
    if recipe is not None:
        out[f"{spec.name}-authors"] = (spec.config, dict(recipe, fold_group=spec.authors_fold_group, **layout),
                                       f"peer {spec.name}{reduced} under {spec.recipe_source}: {recipe['optimizer']} "
                                       f"lr {recipe['lr']:g}, {recipe['epochs']} epochs, batch {recipe['batch_size']}, "
                                       f"plain CE, no augmentation, last epoch")
    return out


@cache
def _variants() -> dict[str, tuple[object, dict, str]]:
    from am3f.models.am3f_flownet import VARIANTS as AM3F_VARIANTS
    from am3f.models.peers import AUTHORS_RECIPES

    peers: dict[str, tuple[object, dict, str]] = {}
    for spec in ARCHITECTURES.values():
        if spec.peer:
            peers.update(_peer_variants(spec, AUTHORS_RECIPES))
    return {**AM3F_VARIANTS, **peers}


def __getattr__(name: str):
    # VARIANTS and PEER_VARIANTS are computed on first use: they hold model configs (torch imports)
    if name == "VARIANTS":
        return _variants()
    if name == "PEER_VARIANTS":
        return {n: v for n, v in _variants().items() if ARCHITECTURES[v[0].arch].peer}
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def is_user_model(name: str) -> bool:
    """A model of the user's (``file.py:factory``, ``module:factory``, an ``am3f.models`` entry point)."""
    from am3f.models.user_model import entry_points, is_reference

    return isinstance(name, str) and name not in ARCHITECTURES and (is_reference(name) or name in entry_points())


def get_variant(name: str) -> tuple[object, dict]:
    """Model config and training overrides of a named variant (:data:`VARIANTS`); a user model is its
    own single variant, trained with the declared schedule (am3f.models.user_model)."""
    variants = _variants()
    if name not in variants and is_user_model(name):
        from am3f.models.user_model import user_config

        return user_config(name), {}
    if name not in variants:
        raise AM3FError(f"unknown variant {name!r} (known: {', '.join(variants)})")
    cfg, train_overrides, _ = variants[name]
    return cfg, dict(train_overrides)


def model_variant(model: str | None = None, variant: str | None = None) -> str:
    """The variant a (model, variant) request names: the ONE rule of the command line, the notebooks
    and the benchmarks. Neither: ``full`` (AM3F-FlowNet); a model alone: its default variant; a
    variant alone: that variant (it names its architecture); both: they must agree."""
    if model and is_user_model(model):
        if variant and variant != model:
            raise AM3FError(f"model {model!r} is your own: it has no named variants (got {variant!r})")
        return model
    if model and model not in ARCHITECTURES:
        raise AM3FError(f"unknown model {model!r} (known: {', '.join(ARCHITECTURES)}, or your own as "
                        f"PATH.py:FACTORY / package.module:FACTORY)")
    if not variant:
        return ARCHITECTURES[model or "am3f"].default_variant
    arch = get_variant(variant)[0].arch
    if model and arch != model:
        raise AM3FError(f"variant {variant!r} is of model {arch!r}, not {model!r} "
                        f"(variants of {model}: {', '.join(ARCHITECTURES[model].variants)})")
    return variant


def model_config_from_dict(d: dict):
    """A model config from its dict form (config.json, checkpoints), of the class its ``"arch"`` names."""
    arch = d.get("arch", "am3f")
    if is_user_model(arch):
        from am3f.models.user_model import UserModelConfig

        return UserModelConfig.from_dict(d)
    if arch not in ARCHITECTURES:
        raise AM3FError(f"unknown architecture {arch!r} (known: {', '.join(ARCHITECTURES)})")
    return ARCHITECTURES[arch].config_from_dict(d)


def build_model(spec: str | dict | object = "full", image_size: int = 28):
    """A fresh model from a variant name, a model config or its dict form (with an ``"arch"`` key)."""
    if isinstance(spec, str):
        spec = get_variant(spec)[0]
    elif isinstance(spec, dict):
        spec = model_config_from_dict(spec)
    if is_user_model(spec.arch):
        from am3f.models.user_model import build_user_model

        return build_user_model(spec, image_size=image_size)
    return ARCHITECTURES[spec.arch].build(spec, image_size=image_size)


def display_name(arch: str) -> str:
    """How tables name an architecture (a user model: by its reference, without the file's folder)."""
    if arch in ARCHITECTURES:
        return ARCHITECTURES[arch].display_name
    from am3f.models.user_model import short_name

    return short_name(arch)


def count_parameters(model) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
