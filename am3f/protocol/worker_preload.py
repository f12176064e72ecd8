"""What the fork server of the local LOSO workers imports before it forks any (``engine.WORKER_PRELOAD``).

The trainer, so that each forked worker starts with it in memory; and, in the fork server only, a quick
exit: when the command that started it ends, the server would otherwise tear torch's modules down
(0.5 s on 2 cores) while still holding the command's stdout and stderr, so that a caller reading them
waits too. The workers never run it (a forked worker ends with ``os._exit``), and importing this module
anywhere else changes nothing.
"""

import atexit
import os
import sys

import am3f.protocol.fold_runner  # noqa: F401  (the preload itself)


def _imported_by_the_fork_server() -> bool:
    from multiprocessing import forkserver

    frame = sys._getframe()
    while frame is not None:
        if frame.f_code is forkserver.main.__code__:
            return True
        frame = frame.f_back
    return False


if _imported_by_the_fork_server():
    atexit.register(os._exit, 0)
