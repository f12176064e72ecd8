"""The peer architectures of the honest leaderboard, as our own PyTorch modules.

Each peer module re-implements one published model faithfully to its authors' public code (see its
docstring for the repository, file and lines, what is ours, and the authors' training recipe):

* :mod:`.ststnet` -- STSTNet (Liong et al., FG 2019), three shallow streams; its published weights;
* :mod:`.dualinception` -- Dual-Inception (Zhou et al., FG 2019), u and v Inception streams;
* :mod:`.offapexnet` -- OFF-ApexNet (Gan et al., SPIC 2019), u and v conv streams;
* :mod:`.rcn` -- RCN (Xia et al., IEEE TIP 2020), recurrent convolutional network, base variant;
* :mod:`.htnet` -- HTNet (Wang et al., Neurocomputing 2024), hierarchical transformer over four
  facial-region crops, plus the declared reduced ``htnet-small``.

All take ONE tensor (N, 3, H, W) in (u, v, strain) order with values in [0, 1], exactly like
AM3F-FlowNet, and return logits (N, n_classes); each has ``cam_target_layers()``.

:data:`AUTHORS_RECIPES` holds the training recipe published in each peer's code (optimizer, learning
rate, epochs, batch size, plain cross-entropy, no augmentation, no test-time flip), always scored at
the last epoch. The registry of every architecture and variant (which builds them) is :mod:`am3f.models.registry`.
"""

from __future__ import annotations

from .dualinception import DualInceptionConfig
from .htnet import HTNetConfig
from .offapexnet import OFFApexNetConfig
from .rcn import RCNConfig
from .ststnet import STSTNetConfig

# ----------------------------------------------------------------------------- configs of the peers
STSTNET = STSTNetConfig()
DUALINCEPTION = DualInceptionConfig()
OFFAPEXNET = OFFApexNetConfig()
RCN_BASE = RCNConfig()
HTNET = HTNetConfig()
# ours, declared: the published HTNet at 1/8 of its width (dim 32 instead of 256), same depth, heads,
# patches and regions, for CPU LOSO runs
HTNET_SMALL = HTNetConfig(arch="htnet-small", dim=32)


# ----------------------------------------------------------------------------- training recipes
# Everything our declared schedule adds beyond a plain fit, switched off: no weight decay, no warm-up
# or cosine decay (constant rate), plain cross-entropy (tau 0), no augmentation, no test-time flip,
# no weight averaging, one model per fold, the ragged last batch kept (as a DataLoader does).
_PLAIN = dict(weight_decay=0.0, warmup_epochs=0.0, schedule="constant", tau=0.0, weight_power=0.0,
              label_smoothing=0.0, hflip=0.0, max_shift=0.0, same_class_mix=0.0, ema=0.0, tta_flip=False,
              n_models=1, drop_last=False)

AUTHORS_RECIPES: dict[str, dict] = {
    # main.py (PyTorch, the code whose per-subject .pth weights are published): Adam(lr=0.00005),
    # cross-entropy, batch 256, 800 epochs. The repository's MATLAB script trains 500; we follow the
    # PyTorch script because the published weights, which we reproduce exactly, are its output.
    "ststnet": dict(_PLAIN, optimizer="adam", lr=5e-5, epochs=800, batch_size=256),
    # dual_inception.py: Adam(lr=0.0001), categorical cross-entropy, batch_size=3, epochs=40
    "dualinception": dict(_PLAIN, optimizer="adam", lr=1e-4, epochs=40, batch_size=3),
    # no authors' code; the Off-TANet re-implementation's train_arg.py: Adam, lr 1e-4, 3000 epochs, batch 64
    "offapexnet": dict(_PLAIN, optimizer="adam", lr=1e-4, epochs=3000, batch_size=64),
    # ModelTrain_Final.py + README: SGD(lr=0.0005, momentum=0.9) (constant: the StepLR is never stepped),
    # cross-entropy, 20 epochs, batch 64
    "rcn": dict(_PLAIN, optimizer="sgd", nesterov=False, lr=5e-4, epochs=20, batch_size=64),
    # main_HTNet.py: Adam(lr=0.00005), cross-entropy, batch 256, 800 epochs
    "htnet": dict(_PLAIN, optimizer="adam", lr=5e-5, epochs=800, batch_size=256),
}
AUTHORS_RECIPES["htnet-small"] = AUTHORS_RECIPES["htnet"]
