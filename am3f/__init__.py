"""am3f: a reproducible companion to AM3F-FlowNet for micro-expression recognition.

Data flows one way, one module per stage::

    frames -> flow -> data -> model / peers -> zoo -> recipe -> folds -> augment -> train -> runner -> loso
           -> rundir -> runs -> tune -> metrics -> stats -> tables / leaderboard / plots

Pipeline
    ``frames``    read onset/apex frames and clips, crop the face (same box for both), spot the apex
    ``flow``      optical flow u, v and optical strain; flow images on disk (PNG / .npz, read and written)
    ``extract``   turn a licensed raw CASME II / SAMM / SMIC-HS copy into flow images (composite layout)
    ``synth``     the embedded SYNTHETIC set (procedural faces, known motion) and its ground truth
    ``data``      flow-image datasets in the composite layout (``FlowDataset``); the synthetic default
    ``manifest``  is my data the same? the shipped manifest of the real set, ``am3f data verify``
    ``model``     AM3F-FlowNet: one branch per map, MSFF, MOFRW, head; named ablation variants
    ``peers``     STSTNet (and its published weights), Dual-Inception, OFF-ApexNet, RCN, HTNet, with their
                  authors' recipes
    ``zoo``       every architecture and named variant in one registry (plain data); ``build_model``
    ``usermodel`` your own architecture (``--model PATH.py:FACTORY``, entry points): contract check, source
    ``recipe``    the training recipe (``TrainConfig``), validated when built; ``resolve_variant``
    ``folds``     a fold's train/test rows (LOSO or cross-database), its seed, its group: computed only here
    ``losses``    the logit-adjusted, class-prior-weighted loss
    ``augment``   flow-aware augmentation of training batches (blend, mirror, shift), drawn per model
    ``optim``     the recipe's optimizer and learning-rate schedule
    ``train``     the batched fit (many models in one vmapped loop) and prediction
    ``runner``    a whole recipe applied to a group of folds (rows, seeds, members); the LOSO fold runner
    ``development``  the development half and its subject-grouped CV: how designs are chosen
    ``tune``      honest tuning, cross-fitted: a recipe chosen per subject half, used for the other half
    ``memory``    what a model needs in memory: fold groups under a declared budget, workers that fit
    ``checkpoint``  the final model trained on all subjects, saved and loaded (``am3f train`` / ``predict``)
    ``loso``      the leave-one-subject-out engine (resumable, shardable)
    ``rundir``    the run directory: writing folds, merging, reading runs back (``load_run``)
    ``runs``      a run's configuration and hash, starting / resuming it, a fold's model again
    ``metrics``   MEGC2019 scores: UF1, UAR, accuracy of pooled predictions; mean ± std over seeds

Results
    ``stats``     how sure a score is: subject-bootstrap 95 % intervals (stratified by dataset), paired
                  comparisons of two runs (Δ, interval, p) (``am3f compare``)
    ``tables``    results, published peers and ablation tables
    ``leaderboard``  every architecture under one honest protocol, beside its published number
    ``ensemble``  the honest ensemble of tuned architectures (members chosen by the cross-fitted rule)
    ``audit``     what best-test-epoch picking and other shortcuts would add to our own runs
    ``plots``     flow pictures, class-score bars, confusion matrices
    ``gradcam``   class activation maps per branch and class (pytorch-grad-cam; default chosen by measurement)
    ``cam_eval``  measuring those maps: mass on the known motion (synthetic), deletion / insertion faithfulness
    ``writers``   Markdown / LaTeX / CSV tables and PNG + PDF figures, labelled SYNTHETIC when they are
    ``explorer``  browsing a run sample by sample (ipywidgets)

Notebooks and command line
    ``notebook``  what every notebook starts with (``setup``, the SYNTHETIC banner), teaching helpers
    ``reproduce`` run all notebooks with papermill (``am3f reproduce``)
    ``cli``       the ``am3f`` command's parser and entry point (also ``python -m am3f``)
    ``commands``  what each ``am3f`` command does
    ``errors``    the one exception type for problems a user can fix
    ``utils``     device choice, progress bars, atomic file writes, config parsing
"""

__version__ = "0.1.0"
