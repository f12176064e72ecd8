"""pytest for the whole checkout: notebooks checked by nbval run in the committed outputs' environment.

Every item collected from a ``.ipynb`` (nbval starts one kernel per notebook) runs with
:func:`am3f.app.reproduce.kernel_env`: embedded synthetic set, real data switched off (even with
``$AM3F_SHARED`` set for the real-data tests, as in CI), CPU, no progress bars, and one fresh output
folder per pytest session (so 03-08 reuse the run 02 made in this session, as when the committed
outputs were made by ``am3f reproduce --in-place``, and nothing stale from ``out/runs`` is read).
"""

import os
import shutil
import tempfile

import pytest

_OUT: list[str] = []


def _session_out() -> str:
    if not _OUT:
        _OUT.append(tempfile.mkdtemp(prefix="am3f-nbval-"))
    return os.path.join(_OUT[0], "out")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item, nextitem):
    if item.path.suffix != ".ipynb":
        yield
        return
    from am3f.app.reproduce import kernel_env

    saved = dict(os.environ)
    os.environ.clear()
    os.environ.update(kernel_env(_session_out(), base=saved))
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


def pytest_sessionfinish(session, exitstatus):
    while _OUT:
        shutil.rmtree(_OUT.pop(), ignore_errors=True)
