"""Stage 5, the evaluation protocol: a fold's rows (``folds``), MEGC2019's scores of pooled predictions
(``metrics``), the development half (``development``), memory-sized fold groups (``memory``),
a recipe applied to a group of folds (``fold_runner``), the LOSO engine (``engine``) and what its fork
server preloads (``worker_preload``), run folders on disk (``run_folder``), starting and resuming runs
(``launch``), cross-fitted tuning (``tuning``), the final model on all subjects (``checkpoint``)."""
