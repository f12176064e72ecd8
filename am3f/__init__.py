"""am3f: a reproducible companion to AM3F-FlowNet for micro-expression recognition.

Pipeline, one module per stage: ``flow`` (frames -> u, v, strain) -> ``data`` (flow-image datasets)
-> ``model`` (AM3F-FlowNet) / ``ststnet`` (peer) -> ``train`` (fixed-schedule fitting) -> ``loso``
(leave-one-subject-out runs saved to disk) -> ``metrics`` / ``report`` (tables and figures).
"""

__version__ = "0.1.0"
