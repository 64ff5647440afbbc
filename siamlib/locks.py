"""One process at a time: a lock file beside a shared folder (a data set, a run).

Two notebooks, or a notebook and the runner, may fetch the same data or train the same config
at once. Each holder of a lock does the work; whoever comes second waits, then finds the
finished result and reuses it instead of racing the first (two fetches used to delete each
other's staging folder, two trainings to collide at the final rename). The lock is ``filelock``'s
operating-system lock, which the system drops when its process dies, so a killed run never
leaves the folder locked.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from filelock import FileLock, Timeout


@contextmanager
def waiting_lock(lock_file: str | os.PathLike, what: str) -> Iterator[None]:
    """Hold ``lock_file``; when another process holds it, say so once on stderr and wait.

    ``what`` names the work in that message ("fetching lfw-a into data/"). Raises OSError
    (PermissionError on a read-only folder) when the lock file cannot be created.
    """
    lock = FileLock(Path(lock_file))
    try:
        lock.acquire(timeout=0)
    except Timeout:
        print(f"Another process is {what}; waiting for it to finish (lock: {lock_file})",
              file=sys.stderr, flush=True)
        lock.acquire()
    try:
        yield
    finally:
        lock.release()
