"""Sim-to-real pre-training (our addition): the model first learns on a large SYNTHETIC corpus
(procedural faces moved by action-unit-like motions, :mod:`am3f.synth`), then every LOSO fold starts
from those weights instead of a random initialisation and trains its declared schedule as usual.

No real sample is involved, so the pre-trained weights are the same for every fold, subject and
seed of a run: they are computed once (in the process that schedules the folds), cached on disk
and sent to the workers with the fold runner. ``TrainConfig.pretrain`` names the corpus and schedule
as ``"synthetic:<subjects>:<epochs>"`` (empty: no pre-training).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import torch

from .recipe import parse_pretrain
from .utils import atomic_write, publish_dir

CORPUS_SEED = 1000  # not the embedded default set's seed (0): a corpus of other identities


def synthetic_corpus(n_subjects: int) -> Path:
    """A synthetic corpus of ``n_subjects`` identities, generated once into the cache."""
    import os

    from .synth import SYNTH_VERSION, cache_dir, generate_synthetic

    final = cache_dir() / f"pretrain-corpus-v{SYNTH_VERSION}-{n_subjects}-{CORPUS_SEED}"
    if not (final / "labels.csv").is_file():
        tmp = final.parent / f".{final.name}.tmp-{os.getpid()}"
        generate_synthetic(tmp, n_subjects=n_subjects, seed=CORPUS_SEED)
        publish_dir(tmp, final)
    return final


def pretrained_state(model_cfg, train_cfg, fit: Callable) -> dict[str, torch.Tensor]:
    """The pre-trained weights for ``model_cfg`` under ``train_cfg.pretrain`` (cached by content).

    ``fit`` is :func:`am3f.train.fit`, handed in by the trainer so that this stage, which runs before
    any fold is trained, does not import the trainer back."""
    from .data import load_flow_dataset
    from .synth import cache_dir

    n_subjects, epochs = parse_pretrain(train_cfg.pretrain)
    recipe = replace(train_cfg, pretrain="", epochs=epochs, fold_group=1)
    key = hashlib.sha1(json.dumps([model_cfg.to_dict(), recipe.to_dict(), n_subjects, CORPUS_SEED],
                                  sort_keys=True, default=str).encode()).hexdigest()[:12]
    path = cache_dir() / "pretrained" / f"{model_cfg.arch}-{key}.pt"
    if not path.is_file():
        corpus = load_flow_dataset(synthetic_corpus(n_subjects), name="synthetic-pretrain")
        model, _ = fit(corpus, model_cfg, recipe, seed=CORPUS_SEED)
        state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
        atomic_write(path, lambda p: torch.save(state, p))
    return torch.load(path, map_location="cpu", weights_only=True)
