"""One BLAS thread for processes whose own threads or processes already keep every core busy."""

from __future__ import annotations

__all__ = ["one_blas_thread"]


def one_blas_thread() -> None:
    """Limit numpy's BLAS (OpenBLAS, MKL) to one thread in this process.

    The engine multiplies small matrices (a chunk's 30 snore windows at a time). Where a server's request
    threads and workers, or parallel training processes, already use every core, more BLAS threads only
    spin against them: on a 2-core machine one chunk's features take 2.1 ms on one BLAS thread against
    6 to 11 ms with two. Without threadpoolctl (the ``server`` and ``train`` extras bring it) this does nothing.
    """
    try:
        from threadpoolctl import threadpool_limits  # type: ignore[import-untyped]
    except ImportError:  # pragma: no cover - depends on the install
        return
    threadpool_limits(limits=1, user_api="blas")
