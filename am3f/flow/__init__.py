"""Stage 1, frames to flow: reading onset/apex frames (``frames``), optical flow and strain and their
images (``optical_flow``), turning licensed raw databases into flow images (``extract``), the embedded
SYNTHETIC set (``synth``)."""
