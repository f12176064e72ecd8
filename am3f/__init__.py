"""am3f: a reproducible companion to AM3F-FlowNet for micro-expression recognition.

Data flows one way, one module per stage::

    frames -> flow -> data -> model / ststnet -> train -> loso -> rundir -> metrics -> tables / plots

Pipeline
    ``frames``    read onset/apex frames and clips, crop the face (same box for both), spot the apex
    ``flow``      optical flow u, v and optical strain; flow images on disk (PNG / .npz, read and written)
    ``extract``   turn a licensed raw CASME II / SAMM / SMIC-HS copy into flow images (composite layout)
    ``synth``     the embedded SYNTHETIC set (procedural faces, known motion) and its ground truth
    ``data``      flow-image datasets in the composite layout (``FlowDataset``); the synthetic default
    ``model``     AM3F-FlowNet: one branch per map, MSFF, MOFRW, head; named ablation variants
    ``ststnet``   the STSTNet peer and its published per-subject weights
    ``losses``    the logit-adjusted, class-prior-weighted loss
    ``train``     the declared training schedule, flow-aware augmentation, fold runner, checkpoints
    ``loso``      the leave-one-subject-out engine (resumable, shardable)
    ``rundir``    the run directory: writing folds, merging, reading runs back (``load_run``)
    ``metrics``   MEGC2019 scores: UF1, UAR, accuracy of pooled predictions; mean ± std over seeds

Results
    ``tables``    results, published peers and ablation tables
    ``audit``     what best-test-epoch picking and other shortcuts would add to our own runs
    ``plots``     flow pictures, class-score bars, confusion matrices
    ``gradcam``   class activation maps per branch and class (pytorch-grad-cam; default chosen by measurement)
    ``cam_eval``  measuring those maps: mass on the known motion (synthetic), deletion / insertion faithfulness
    ``writers``   Markdown / LaTeX / CSV tables and PNG + PDF figures, labelled SYNTHETIC when they are
    ``explorer``  browsing a run sample by sample (ipywidgets)

Notebooks and command line
    ``notebook``  what every notebook starts with (``setup``, ``ensure_run``, fold models)
    ``reproduce`` run all notebooks with papermill (``am3f reproduce``)
    ``cli``       the ``am3f`` command (also ``python -m am3f``)
    ``errors``    the one exception type for problems a user can fix
    ``utils``     device choice, seeding, progress bars, atomic file writes, config parsing
"""

__version__ = "0.1.0"
