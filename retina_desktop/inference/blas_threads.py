"""numpy's matrix products on one thread while the app works between model calls.

OpenBLAS runs a product on a thread per core and leaves those threads spinning for a while
after it. The compiled model's own threads, which run next, then share this machine's two cores
with them: one familiarity distance (a 1 x 32 by 32 x n product) made the next model call take
13 ms instead of 7 (`benchmarks/predict_latency.py`). The app's matrices are far too small to
gain from threads, so around them BLAS is held to one (threadpoolctl, which knows every BLAS
numpy may be built with).
"""

from __future__ import annotations

import contextlib
import functools
import logging
from collections.abc import Iterator

log = logging.getLogger(__name__)


@functools.cache
def _controller():
    """The process's BLAS libraries, found once (a scan of the loaded libraries), or None."""
    try:
        from threadpoolctl import ThreadpoolController

        return ThreadpoolController()
    except Exception as err:  # noqa: BLE001 - an unusual build must still run, only slower
        log.debug("BLAS threads cannot be limited: %s", err)
        return None


@contextlib.contextmanager
def one_blas_thread() -> Iterator[None]:
    """Run the block with numpy's BLAS on one thread (the process's setting, restored after)."""
    controller = _controller()
    if controller is None:
        yield
        return
    with controller.limit(limits=1, user_api="blas"):
        yield
