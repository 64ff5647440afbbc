"""Files written so that nothing half-written is ever taken as finished.

Data sets, trained runs, imported runs and image caches are all made the same way: built in a
temporary sibling, checksummed, marked complete, and only then moved into place with one
rename. A killed process therefore leaves a hidden temporary folder (which the next builder,
holding the lock, removes), never a folder that looks finished. Two processes building the
same thing take turns behind a lock file; the second waits and then finds the first one's
result.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

from filelock import FileLock, Timeout


def sha256_of(path: str | os.PathLike) -> str:
    """A file's SHA-256 (data archives, pair files, run weights alike)."""
    with open(path, "rb") as file:
        return hashlib.file_digest(file, "sha256").hexdigest()


def short_hash(value) -> str:
    """Twelve hex digits naming a JSON-able value (run keys, cache keys, study names)."""
    encoded = json.dumps(value, sort_keys=True, default=str).encode()
    return hashlib.sha256(encoded).hexdigest()[:12]


def checksums(folder: Path, files: Iterable[Path] | None = None) -> dict[str, str]:
    """``relative/posix/path -> sha256`` for ``files`` (default: every file under ``folder``)."""
    files = sorted(p for p in folder.rglob("*") if p.is_file()) if files is None else files
    return {Path(p).relative_to(folder).as_posix(): sha256_of(p) for p in files}


def damaged(folder: Path, recorded: dict[str, str]) -> list[str]:
    """The recorded files that are missing or whose content changed, each with what is wrong."""
    problems = []
    for relative, digest in recorded.items():
        if not (folder / relative).is_file():
            problems.append(f"{relative} (missing)")
        elif sha256_of(folder / relative) != digest:
            problems.append(f"{relative} (content changed: sha256 differs)")
    return problems


@contextmanager
def waiting_lock(lock_file: str | os.PathLike, what: str) -> Iterator[None]:
    """Hold ``lock_file``; when another process holds it, say so once on stderr and wait.

    The lock is the operating system's (``filelock``), dropped when its process dies, so a
    killed run never leaves the folder locked. ``what`` names the work in the message.
    """
    lock = FileLock(lock_file)
    try:
        held = lock.acquire(timeout=0)
    except Timeout:
        print(f"Another process is {what}; waiting for it to finish (lock: {lock_file})",
              file=sys.stderr, flush=True)
        held = lock.acquire()
    with held:  # released when the block ends
        yield


@contextmanager
def staged(target: Path, folder: bool = True) -> Iterator[Path]:
    """A temporary sibling of ``target`` to build in; moved onto ``target`` if the block ends
    normally, removed if it raises.

    The caller writes, checks and marks inside the block; the final rename is atomic on one
    file system, so readers see either nothing or the finished result. ``target`` must not
    exist as a folder (a finished folder is never replaced: the caller decides what to do).
    """
    temporary = target.with_name(f".tmp-{target.name}-{os.getpid()}-{uuid.uuid4().hex[:8]}")
    if folder:
        temporary.mkdir(parents=True)
    try:
        yield temporary
        os.replace(temporary, target)
    except BaseException:
        if temporary.is_dir():
            shutil.rmtree(temporary, ignore_errors=True)
        else:
            temporary.unlink(missing_ok=True)
        raise
