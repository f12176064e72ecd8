"""Stage 6, from predictions to what the companion reports: intervals and paired comparisons
(``stats``), the results and ablation tables (``tables``), every architecture under one protocol
(``leaderboard``), the honest ensemble (``ensemble``), what shortcuts would add (``audit``), figures
(``plots``), Markdown / LaTeX / CSV and PNG / PDF output (``writers``), class activation maps
(``gradcam``) and their checks (``cam_eval``)."""
