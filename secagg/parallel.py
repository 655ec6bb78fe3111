"""Threads for bulk work that releases the GIL: keystream fills and numpy arithmetic.

``cryptography``'s ``update_into`` and numpy's element-wise ufuncs release the GIL, so a
vector of d entries split into one contiguous range per core is filled and added on every
core at once (two threads ran 1.9-2.0x faster than one on the project's 2-core machine; see
``benchmarks/RESULTS.md``). The result never depends on the split: each range is written by
exactly one thread, and addition mod 2^b is exact.

The pool is process-wide and lazy. It is rebuilt after a ``fork`` (a child inherits the
parent's pool object but none of its threads) and when :func:`set_workers` changes its size.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, wait

from secagg.errors import ConfigError

__all__ = ["MAX_DEFAULT_WORKERS", "for_ranges", "set_workers", "split_ranges", "workers"]

MAX_DEFAULT_WORKERS = 8
"""The default pool size is the number of usable cores, at most this."""

MIN_RANGE = 1 << 16
"""Entries below which a range is not split further: a thread hand-off costs about as much
as filling and adding this many words."""


def _usable_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


_lock = threading.Lock()
_workers = min(_usable_cores(), MAX_DEFAULT_WORKERS)
_pool: ThreadPoolExecutor | None = None
_pool_pid = -1


def workers() -> int:
    """How many threads bulk work is split across (1 = inline, no pool)."""
    return _workers


def set_workers(n: int) -> None:
    """Use ``n`` >= 1 threads for bulk work from now on (benchmarks report 1 and 2)."""
    global _workers, _pool
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ConfigError(f"workers must be an int >= 1, got {n!r}", parameter="workers")
    with _lock:
        if n != _workers and _pool is not None:
            _pool.shutdown(wait=True)
            _pool = None
        _workers = n


def _executor() -> ThreadPoolExecutor:
    global _pool, _pool_pid
    with _lock:
        if _pool is None or _pool_pid != os.getpid():
            _pool = ThreadPoolExecutor(_workers, thread_name_prefix="secagg")
            _pool_pid = os.getpid()
        return _pool


def split_ranges(length: int, parts: int, align: int) -> list[tuple[int, int]]:
    """``[0, length)`` cut into at most ``parts`` contiguous ranges whose starts are multiples
    of ``align`` and that hold at least :data:`MIN_RANGE` entries each (one range if short)."""
    parts = max(1, min(parts, length // MIN_RANGE))
    if parts == 1:
        return [(0, length)]
    step = -(-length // parts)
    step = -(-step // align) * align
    return [(lo, min(lo + step, length)) for lo in range(0, length, step)]


def for_ranges(fn: Callable[[int, int], None], length: int, *, align: int = 1) -> None:
    """Call ``fn(lo, hi)`` once per range of :func:`split_ranges`, on the pool's threads.

    Returns when every call has returned (also when one raised, so no thread still writes
    into the caller's buffers); the exception of the lowest range that raised is re-raised.
    """
    ranges = split_ranges(length, _workers, align)
    if len(ranges) == 1:
        fn(*ranges[0])
        return
    pool = _executor()
    futures = [pool.submit(fn, lo, hi) for lo, hi in ranges[1:]]
    try:
        fn(*ranges[0])
    finally:
        wait(futures)
    for future in futures:
        future.result()
