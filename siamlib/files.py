"""Files built in a hidden temporary sibling and renamed into place, so nothing half-written
passes for finished; two processes building one thing take turns behind a lock file."""

import hashlib
import json
import os
import shutil
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from filelock import FileLock, Timeout
from pooch import file_hash


def short_hash(value) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()[:12]


def checksums(folder: Path) -> dict[str, str]:
    return {path.relative_to(folder).as_posix(): file_hash(str(path))
            for path in sorted(folder.rglob("*")) if path.is_file()}


def damaged(folder: Path, recorded: dict[str, str]) -> list[str]:
    return [f"{relative} (content changed: sha256 differs)" if (folder / relative).is_file()
            else f"{relative} (missing)" for relative, digest in recorded.items()
            if not (folder / relative).is_file() or file_hash(str(folder / relative)) != digest]


@contextmanager
def waiting_lock(lock_file: str | os.PathLike, what: str) -> Iterator[None]:
    """The operating system drops the lock when its process dies: a killed run leaves none."""
    lock = FileLock(lock_file)
    try:
        held = lock.acquire(timeout=0)
    except Timeout:
        print(f"Another process is {what}; waiting for it to finish (lock: {lock_file})",
              file=sys.stderr, flush=True)
        held = lock.acquire()
    with held:
        yield


@contextmanager
def staged(target: Path, folder: bool = True) -> Iterator[Path]:
    """Renamed onto ``target`` (atomic) if the block ends, removed if it raises; not over a full
    folder: remove it first."""
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
