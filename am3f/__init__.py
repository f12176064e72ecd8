"""am3f: a reproducible companion to AM3F-FlowNet for micro-expression recognition.

Data flows one way, one subpackage per stage; each imports only the stages before it (tests/test_structure.py)::

    flow -> data -> models -> training -> protocol -> results -> app

``flow``      frames to flow: onset/apex frames and the face crop, optical flow u, v and optical strain, flow
              images on disk, turning licensed raw databases into flow images, the embedded SYNTHETIC set
``data``      flow images to a dataset (``FlowDataset``, the composite layout) and the shipped manifest of the
              real set (``am3f data verify``)
``models``    AM3F-FlowNet (one branch per flow map, MSFF, MOFRW), the peers with their authors' recipes, the
              registry of every architecture and named variant (plain data), your own model
``training``  the recipe (``TrainConfig``), the logit-adjusted loss, augmentation, optimizer and schedule,
              and the fit: one model, or a group of folds' models in one vmapped loop
``protocol``  leave-one-subject-out and its relatives: a fold's rows (computed only here), MEGC2019's UF1 /
              UAR, the development half, the LOSO engine (resumable, shardable, memory-sized groups), run
              folders, starting and resuming runs, cross-fitted tuning, the final model on all subjects
``results``   intervals and paired comparisons, tables, the leaderboard, the ensemble, the protocol audit,
              plots, class activation maps and their checks, writers of Markdown / LaTeX / CSV / PNG / PDF
``app``       the ``am3f`` command, notebook helpers, the explorer widget, ``am3f reproduce`` (papermill)

Each stage's ``__init__.py`` says what each of its modules does. At the top level: ``errors`` (the one
exception type for problems a user can fix) and ``utils`` (device choice, progress, atomic writes).
"""

__version__ = "0.1.0"
