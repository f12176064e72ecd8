"""Your own architecture through the whole harness: ``--model PATH.py:FACTORY``, ``--model
package.module:FACTORY``, or a name an installed package registers in the ``am3f.models`` entry-point group.

The contract (checked on a dummy batch before anything trains, :func:`check_contract`):

* ``FACTORY(num_classes=3) -> torch.nn.Module``;
* the module takes ONE tensor (N, 3, H, W): the flow maps (u, v, strain), values in [0, 1], as every
  model here does, and returns logits (N, num_classes);
* it runs under ``torch.func.vmap`` (the engine trains many folds' copies of it in one computation):
  no in-place change of its input, no data-dependent Python control flow;
* optional: ``cam_target_layers()`` -> the layers whose activations the CAM maps use.

A run's config.json records where the model came from (:func:`model_source`: the file's absolute path
and SHA-256, or the module's package and version), so a run is never resumed with other code. This
module imports no torch until a model is built.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import sys
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

from am3f.errors import AM3FError
from am3f.utils import config_from_dict, config_to_dict

ENTRY_POINT_GROUP = "am3f.models"


def is_reference(name: str) -> bool:
    """Whether ``name`` names a factory (``file.py:factory`` or ``module:factory``), not a registry name."""
    return isinstance(name, str) and ":" in name


def short_name(name: str) -> str:
    """What tables and figures call a user model: ``my_model.py:build`` for a file (its folder left out),
    the module reference or entry-point name as given otherwise."""
    where, _, factory = str(name).rpartition(":")
    return f"{Path(where).name}:{factory}" if where.endswith(".py") else str(name)


@cache
def entry_points() -> dict[str, str]:
    """{name: "module:factory"} of the installed packages' ``am3f.models`` entry points."""
    from importlib.metadata import entry_points as installed

    return {ep.name: ep.value for ep in installed(group=ENTRY_POINT_GROUP)}


def _split(ref: str) -> tuple[str, str]:
    where, _, factory = ref.rpartition(":")
    if not where or not factory.isidentifier():
        raise AM3FError(f"--model {ref!r}: expected PATH.py:FACTORY or package.module:FACTORY")
    return where, factory


def model_source(ref: str) -> dict:
    """Where the factory ``ref`` comes from, as config.json records it."""
    where, factory = _split(ref)
    if where.endswith(".py"):
        path = Path(where).expanduser().resolve()
        if not path.is_file():
            raise AM3FError(f"--model {ref!r}: no such file {path}")
        return {"path": str(path), "sha256": hashlib.sha256(path.read_bytes()).hexdigest(), "factory": factory}
    from importlib.metadata import PackageNotFoundError, version

    top = where.split(".")[0]
    try:
        release = version(top)
    except PackageNotFoundError:
        release = None
    return {"module": where, "package": top, "version": release, "factory": factory, "sha256": module_sha256(where)}


def module_sha256(where: str) -> str:
    """SHA-256 of a module's code, whatever its version says: every .py file of its top-level package
    (a factory may use its siblings; names and contents, in sorted order), or the module's own file."""
    top = where.split(".")[0]
    try:
        spec = importlib.util.find_spec(top)
    except (ImportError, ValueError) as exc:
        raise AM3FError(f"--model {where}: cannot find module {top}: {exc}") from None
    if spec is None:
        raise AM3FError(f"--model {where}: no module named {top!r}")
    if spec.submodule_search_locations:
        files = sorted((f.relative_to(Path(base)).as_posix(), f) for base in spec.submodule_search_locations
                       for f in Path(base).rglob("*.py"))
    elif spec.origin and Path(spec.origin).is_file():
        files = [(Path(spec.origin).name, Path(spec.origin))]
    else:
        raise AM3FError(f"--model {where}: module {top} has no source file to record (built in or frozen)")
    h = hashlib.sha256()
    for name, path in files:
        h.update(name.encode() + b"\0" + path.read_bytes() + b"\0")
    return h.hexdigest()


def load_factory(ref: str):
    """The factory function ``ref`` names (a file is imported once per process, under a name of its hash)."""
    where, factory = _split(ref)
    if where.endswith(".py"):
        path = Path(where).expanduser().resolve()
        if not path.is_file():
            raise AM3FError(f"--model {ref!r}: no such file {path}")
        name = "am3f_user_model_" + hashlib.sha256(path.read_bytes()).hexdigest()[:16]
        module = sys.modules.get(name)
        if module is None:
            spec = importlib.util.spec_from_file_location(name, path)
            module = importlib.util.module_from_spec(spec)
            sys.modules[name] = module
            try:
                spec.loader.exec_module(module)
            except (Exception, SystemExit) as exc:  # noqa: BLE001 - the user's file: say what broke, in one line
                del sys.modules[name]
                raise AM3FError(f"--model {ref!r}: importing {path.name} failed: {type(exc).__name__}: {exc}") from None
    else:
        try:
            module = importlib.import_module(where)
        except ImportError as exc:
            raise AM3FError(f"--model {ref!r}: cannot import {where}: {exc}") from None
    fn = getattr(module, factory, None)
    if not callable(fn):
        raise AM3FError(f"--model {ref!r}: {where} has no function {factory!r}")
    return fn


@dataclass(frozen=True)
class UserModelConfig:
    """A user model as plain data: ``arch`` is the reference (``file.py:factory``, ``module:factory``
    or an entry-point name), ``source`` where its code came from."""

    arch: str = ""
    n_classes: int = 3
    source: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return config_to_dict(self)

    @classmethod
    def from_dict(cls, d: dict) -> UserModelConfig:
        return config_from_dict(cls, d, "model")

    @property
    def factory_ref(self) -> str:
        """The factory to load: the recorded file (absolute), else the module or entry point."""
        if "path" in self.source:
            path = Path(self.source["path"])
            if path.is_file() and hashlib.sha256(path.read_bytes()).hexdigest() != self.source.get("sha256"):
                raise AM3FError(f"--model {self.arch!r}: {path} changed since this run was configured "
                                f"(SHA-256 {self.source.get('sha256', '')[:12]}...); use a new --out for the new code")
            return f"{path}:{self.source['factory']}"
        if "module" in self.source and self.source.get("sha256"):
            if module_sha256(self.source["module"]) != self.source["sha256"]:
                raise AM3FError(f"--model {self.arch!r}: the code of {self.source['package']} changed since this run "
                                f"was configured (SHA-256 {self.source['sha256'][:12]}...); use a new --out for "
                                f"the new code")
        return entry_points().get(self.arch, self.arch)


def user_config(name: str) -> UserModelConfig:
    """The config of the user model ``name`` (a factory reference or an entry-point name), its contract
    checked (:func:`check_contract`, once per process and version of the code)."""
    ref = entry_points().get(name, name)
    cfg = UserModelConfig(arch=name, source=model_source(ref))
    _checked(cfg.arch, tuple(sorted(cfg.source.items())))
    return cfg


@cache
def _checked(arch: str, source: tuple) -> None:
    check_contract(UserModelConfig(arch=arch, source=dict(source)))


def build_user_model(cfg: UserModelConfig, image_size: int = 28):
    try:
        model = load_factory(cfg.factory_ref)(num_classes=cfg.n_classes)
    except AM3FError:
        raise
    except SystemExit as exc:  # a factory (or its file) that calls sys.exit() would end am3f silently
        raise AM3FError(f"--model {cfg.arch!r}: the factory called sys.exit({exc.code!r}) instead of returning "
                        f"a model") from None
    except Exception as exc:  # noqa: BLE001
        raise AM3FError(f"--model {cfg.arch!r}: the factory failed: {type(exc).__name__}: {exc}") from None
    from torch import nn

    if not isinstance(model, nn.Module):
        raise AM3FError(f"--model {cfg.arch!r}: the factory returned {type(model).__name__}, not a torch.nn.Module")
    return model


def check_contract(cfg: UserModelConfig, image_size: int = 28) -> None:
    """Build the model and run what the engine will run on a dummy batch: a forward pass (shape
    (N, num_classes)), and a training step of two stacked copies under ``torch.func.vmap``. Any
    failure is one line saying what is wrong."""
    import torch
    from torch.func import functional_call, stack_module_state, vmap

    _refuse_too_large(cfg)  # before anything is allocated: a model too large fails in one line, not by memory
    model = build_user_model(cfg, image_size)
    x = torch.rand(4, 3, image_size, image_size)
    what = f"--model {cfg.arch!r}"
    try:
        out = model.eval()(x)
    except Exception as exc:  # noqa: BLE001
        raise AM3FError(f"{what}: forward on a (4, 3, {image_size}, {image_size}) batch failed: "
                        f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}") from None
    if not isinstance(out, torch.Tensor) or tuple(out.shape) != (4, cfg.n_classes):
        shape = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise AM3FError(f"{what}: must return logits of shape (N, {cfg.n_classes}); got {shape} for N = 4")
    params, buffers = stack_module_state([model.train()] * 2)
    params = {k: v.detach().requires_grad_() for k, v in params.items()}
    base = __import__("copy").deepcopy(model).to("meta")
    try:
        logits = vmap(lambda p, b, xx: functional_call(base, (p, b), (xx,)), randomness="same")(
            params, buffers, torch.stack([x, x]))
        logits.sum().backward()
    except Exception as exc:  # noqa: BLE001
        raise AM3FError(f"{what}: does not train under torch.func.vmap, as the engine trains it: "
                        f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}") from None


# copies of the weights the contract check holds at once: the model, two stacked copies and their gradients;
# training holds as many (weights, gradients, optimizer state)
_CONTRACT_COPIES = 5


def _refuse_too_large(cfg: UserModelConfig) -> None:
    """Count the model's parameters on torch's meta device (nothing allocated) and refuse, in one line,
    one whose float32 weights cannot even be checked here (``_CONTRACT_COPIES`` copies of them). A
    factory that cannot build on the meta device is measured later, as it trains (:func:`am3f.protocol.memory.plan`)."""
    import torch

    from am3f import utils

    try:
        with torch.device("meta"):
            model = load_factory(cfg.factory_ref)(num_classes=cfg.n_classes)
        n_params = sum(p.numel() for p in model.parameters())
    except AM3FError:
        raise
    except (Exception, SystemExit):  # noqa: BLE001 - the real build reports the factory's own errors
        return
    need, free = n_params * 4 * _CONTRACT_COPIES, utils.available_bytes()
    if need > free:
        gib = 1024 ** 3
        raise AM3FError(f"--model {cfg.arch!r}: {n_params:,} parameters need about {need / gib:.1f} GiB before any "
                        f"activation (weights, gradients, optimizer state); {free / gib:.1f} GiB is available here")
