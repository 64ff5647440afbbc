"""Getting LFW-a onto this machine, and knowing for sure that all of it arrived.

Every notebook starts from the same question: is the data set here, complete? ``fetch`` answers
it once and leaves a ``.complete`` marker, so later calls return at once. The data may come from
a zip or folder a course hands out, a folder of person folders, a web mirror, or the registry's
own addresses; whatever the source, the finished folder looks the same::

    <data_dir>/lfw-a/
        .complete              JSON: counts, source, date, and each file's size and sha256;
                               written last, only after verify()
        images/<Person>/<Person>_0001.jpg
        pairsDevTrain.txt      View 1: development
        pairsDevTest.txt
        pairs.txt              View 2: the ten-fold benchmark

Work happens in a ``.tmp-*`` folder that is renamed into place only once verified, so an
interrupted run can never pass for a finished one. A lock file (``.<name>.lock``) lets one
process at a time build or repair a data set; a second one waits and reuses the result.
``fetch`` stats every file the marker lists (cheap) and re-extracts only missing or resized
ones from the source; ``verify(deep=True)``/``fetch(deep=True)`` also compare contents.
Folders siamlib did not make are never deleted: a hand copy is checked and either accepted
or explained.

Run ``python -m siamlib.data fetch --source PATH`` or ``python -m siamlib.data verify`` from a
terminal; a failure prints what went wrong and what to do, and exits with status 2.
"""

from __future__ import annotations

import argparse
import errno
import hashlib
import http.client
import json
import os
import shutil
import sys
import urllib.error
import urllib.parse
import urllib.request
import uuid
import zipfile
import zlib
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath

from tqdm.auto import tqdm

from siamlib import __version__, locks, pairs, paths

SOURCE_ENV = "SIAMLIB_LFW_SOURCE"
IMAGES = "images"
MARKER = ".complete"
DOWNLOADS = "downloads"
IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".pgm"})

_TEMP_PREFIX = ".tmp-"
_TIMEOUT_S = 60
_CHUNK_BYTES = 1 << 20
_SHOWN_NAMES = 5
_UNREADABLE_PAIRS = "pair file "


class DataError(RuntimeError):
    """The data set is missing, incomplete or unreachable; the message says how to fix it."""


@dataclass(frozen=True)
class RemoteFile:
    """One file of a data set: its checksum and the addresses it is served from, tried in turn.

    ``browser_url`` is the page a person opens to download the file by hand when every
    address fails (Google Drive's direct links, for one, break when a file is popular).
    """

    name: str
    sha256: str
    urls: tuple[str, ...]
    browser_url: str | None = None


@dataclass(frozen=True)
class DatasetSpec:
    """What a finished data set holds, so that "complete" means the same on every machine.

    ``archive`` names the zip of person folders among ``files``. Counts left at None are not
    checked, which suits any folder-per-identity face set; ``pair_files`` may then be empty.
    """

    name: str
    files: tuple[RemoteFile, ...] = ()
    archive: str | None = None
    pair_files: tuple[str, ...] = ()
    num_people: int | None = None
    num_images: int | None = None

    def remote(self, name: str) -> RemoteFile:
        """The registry entry for ``name``; DataError when there is nowhere to download it from."""
        for remote in self.files:
            if remote.name == name:
                return remote
        raise DataError(
            f"{name} was not found in the source and {self.name} lists no address for it. "
            f"Put {name} in the source folder and run fetch again."
        )


_LFW_A_DRIVE_ID = "1p1wjaqpTh_5RHfJu4vUh8JJCdKwYMHCP"
_LFW_SITE = "vis-www.cs.umass.edu/lfw"


def _lfw_pair_file(name: str, sha256: str) -> RemoteFile:
    return RemoteFile(name, sha256, (f"http://{_LFW_SITE}/{name}", f"https://{_LFW_SITE}/{name}"))


LFW_A = DatasetSpec(
    name="lfw-a",
    files=(
        RemoteFile(
            "lfw2.zip",
            "90d45fb01b4a2940d445974900eaa21d4bb302b20fbbb2353a5709d79db5d962",
            (
                "https://drive.usercontent.google.com/download"
                f"?id={_LFW_A_DRIVE_ID}&export=download&confirm=t",
                f"https://drive.google.com/uc?export=download&id={_LFW_A_DRIVE_ID}&confirm=t",
            ),
            browser_url=f"https://drive.google.com/file/d/{_LFW_A_DRIVE_ID}/view",
        ),
        _lfw_pair_file(
            "pairsDevTrain.txt", "1d454dada7dfeca0e7eab6f65dc4e97a6312d44cf142207be28d688be92aabfa"
        ),
        _lfw_pair_file(
            "pairsDevTest.txt", "7cb06600ea8b2814ac26e946201cdb304296262aad67d046a16a7ec85d0ff87c"
        ),
        _lfw_pair_file(
            "pairs.txt", "ea42330c62c92989f9d7c03237ed5d591365e89b3e649747777b70e692dc1592"
        ),
    ),
    archive="lfw2.zip",
    pair_files=("pairsDevTrain.txt", "pairsDevTest.txt", "pairs.txt"),
    num_people=5_749,
    num_images=13_233,
)


# --- where things live --------------------------------------------------------------------------


def dataset_dir(data_dir: str | os.PathLike | None = None, spec: DatasetSpec = LFW_A) -> Path:
    """Where the finished data set lives (``<data_dir>/<spec.name>``), fetched or not."""
    root = Path(data_dir).expanduser() if data_dir is not None else paths.data_dir()
    return root / spec.name


def images_dir(data_dir: str | os.PathLike | None = None, spec: DatasetSpec = LFW_A) -> Path:
    """The folder of person folders inside the finished data set."""
    return dataset_dir(data_dir, spec) / IMAGES


def is_image(name: str) -> bool:
    """Images are known by extension only: decoding 13,233 files here would make checks slow."""
    return PurePosixPath(name).suffix.lower() in IMAGE_SUFFIXES


def _is_junk(name: str) -> bool:
    """Hidden entries and macOS zip metadata, which look like person folders but are not."""
    return name.startswith(".") or name == "__MACOSX"


# --- verify -------------------------------------------------------------------------------------


def verify(
    dataset_dir: str | os.PathLike, spec: DatasetSpec = LFW_A, deep: bool = False
) -> dict[str, int]:
    """Check a data set folder by content, so a partial copy is caught before training on it.

    Every file the marker lists must be there at its recorded size; ``deep`` also compares
    each file's sha256 with the marker's (or, where none was recorded, decodes each image),
    which reads every byte. Returns the counts: ``people``, ``images``, ``other_files``
    (ignored non-images) and ``pairs`` (lines of the pair files, whose images were all found).
    """
    folder = Path(dataset_dir)
    if not folder.is_dir():
        raise DataError(f"{folder} does not exist: run python -m siamlib.data fetch first.")
    counts, problems = _inspect(folder, spec)
    recorded = _recorded_files(folder)
    if recorded is not None:
        damaged = _damaged(folder, recorded, deep)
        if damaged:
            problems.append(_describe_damage(damaged))
    elif deep:
        problems += _undecodable(folder)
    if problems:
        if recorded is not None:
            advice = (
                "\nTo repair it, run python -m siamlib.data fetch [--source PATH]"
                f"{' --deep' if deep else ''}: it replaces only the damaged files, from the "
                "source the data set was made from when that is still there."
            )
        else:
            advice = (
                f"\nTo fix it, move {folder} out of the way and fetch the data again "
                f"(python -m siamlib.data fetch --source PATH)."
            )
        raise DataError(f"{folder} is not a complete copy of {spec.name}:\n"
                        + _bullets(problems) + advice)
    return counts


def _recorded_files(folder: Path) -> dict[str, list] | None:
    """What the marker promises: relative path -> [size, sha256 or None]; None without one.

    Markers written before siamlib recorded file lists have no ``files``: they are trusted as
    before (counts only), and ``verify(deep=True)`` decodes their images instead.
    """
    if not (folder / MARKER).is_file():
        return None
    try:
        files = read_marker(folder).get("files")
    except (OSError, ValueError, AttributeError):
        return None
    return files if isinstance(files, dict) else None


def _damaged(folder: Path, recorded: dict[str, list], deep: bool) -> dict[str, str]:
    """The recorded files that are missing or differ: relative path -> what is wrong.

    One stat per file (13,233 for LFW-a: a few hundredths of a second); ``deep`` hashes too.
    """
    damaged = {}
    for relative, (size, digest) in recorded.items():
        path = folder / relative
        try:
            found = path.stat().st_size
        except OSError:
            damaged[relative] = "missing"
            continue
        if found != size:
            damaged[relative] = f"{found:,} bytes, fetched with {size:,}"
        elif deep and digest is not None and sha256_of(path) != digest:
            damaged[relative] = "its content changed since fetch (sha256 differs)"
        elif deep and digest is None and is_image(path.name) and _undecodable_files([path]):
            damaged[relative] = "not a readable image"
    return damaged


def _describe_damage(damaged: dict[str, str]) -> str:
    shown = "; ".join(f"{name} ({what})" for name, what in list(damaged.items())[:_SHOWN_NAMES])
    more = f" and {len(damaged) - _SHOWN_NAMES:,} more" if len(damaged) > _SHOWN_NAMES else ""
    return f"{len(damaged):,} file(s) differ from what fetch recorded in {MARKER}: {shown}{more}"


def _undecodable(folder: Path) -> list[str]:
    images = folder / IMAGES
    if not images.is_dir():
        return []
    files = sorted(path for path in images.glob("*/*") if path.is_file() and is_image(path.name))
    bad = [str(path.relative_to(folder)) for path in _undecodable_files(files)]
    return [f"{_some(bad)} cannot be decoded"] if bad else []


def _undecodable_files(files: Sequence[Path]) -> list[Path]:
    """The files that no decoder can read (truncated JPEGs, which LFW-a has, still decode)."""
    from siamlib.images import ImageDecodeError, _native_stderr, decode_gray

    bad = []
    with _native_stderr():  # libjpeg's "Corrupt JPEG data" lines for LFW-a's truncated files
        for path in files:
            try:
                decode_gray(path)
            except (ImageDecodeError, ValueError):
                bad.append(path)
    return bad


def _inspect(
    folder: Path, spec: DatasetSpec, pair_paths: dict[str, Path] | None = None
) -> tuple[dict[str, int], list[str]]:
    """Counts and a list of everything wrong, so one error can report all problems at once.

    ``pair_paths`` are where the pair files came from (the user's own files, during a fetch),
    so that an error names a file the user can open instead of a staging copy.
    """
    images = folder / IMAGES
    if not images.is_dir():
        return {}, [f"there is no {IMAGES}/ folder of person folders in {folder}"]
    counts = _count_images(images)
    problems = _count_problems(counts, spec)
    counts["pairs"] = 0
    for name in spec.pair_files:
        try:
            wanted = pairs.read_pairs((pair_paths or {}).get(name, folder / name), images)
        except (OSError, ValueError) as error:
            problems.append(f"{_UNREADABLE_PAIRS}{name} cannot be read: {error}")
            continue
        counts["pairs"] += len(wanted)
        named = set(wanted["path_a"]) | set(wanted["path_b"])
        missing = sorted(
            str(Path(path).relative_to(folder)) for path in named if not Path(path).is_file()
        )
        if missing:
            problems.append(f"{_some(missing)} named in {name} missing")
    return counts, problems


def _count_images(images: Path) -> dict[str, int]:
    counts = Counter(people=0, images=0, other_files=0)
    for entry in images.iterdir():
        if not entry.is_dir() or _is_junk(entry.name):
            counts["other_files"] += 1
            continue
        counts["people"] += 1
        for file in entry.iterdir():
            counts["images" if file.is_file() and is_image(file.name) else "other_files"] += 1
    return dict(counts)


def _count_problems(counts: dict[str, int], spec: DatasetSpec) -> list[str]:
    expected = {"people": spec.num_people, "images": spec.num_images}
    return [
        f"expected {want:,} {what}, found {counts[what]:,}"
        for what, want in expected.items()
        if want is not None and counts[what] != want
    ]


def _some(names: Sequence[str]) -> str:
    shown = ", ".join(names[:_SHOWN_NAMES])
    more = f" and {len(names) - _SHOWN_NAMES:,} more" if len(names) > _SHOWN_NAMES else ""
    return f"{len(names):,} image{'s' if len(names) != 1 else ''} ({shown}{more})"


def _bullets(lines: Iterable[str]) -> str:
    return "\n".join(f"  - {line}" for line in lines)


# --- fetch --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Source:
    """Where each piece comes from: local paths where the source has them, else downloads."""

    description: str
    faces: Path | None = None  # a zip of person folders, or the folder that holds them
    pair_files: dict[str, Path] = field(default_factory=dict)
    mirrors: tuple[str, ...] = ()  # base URLs tried before the registry's own addresses


def fetch(
    source: str | os.PathLike | None = None,
    data_dir: str | os.PathLike | None = None,
    spec: DatasetSpec = LFW_A,
    progress: bool = True,
    deep: bool = False,
) -> Path:
    """Make the data set ready under ``data_dir`` and return its folder; cheap once done.

    ``source`` (else ``$SIAMLIB_LFW_SOURCE``, else the registry's addresses) is a zip, a folder
    holding the zip and pair files, a folder of person folders, or the http(s) URL of a folder
    serving the registry's file names. A finished folder is checked against its marker (one
    stat per file; ``deep``: every byte) and missing or damaged files are taken again from
    the source. Raises DataError, with what to do, when it cannot.
    """
    target = dataset_dir(data_dir, spec)
    if source is None:
        source = os.environ.get(SOURCE_ENV) or None
    if (target / MARKER).is_file() and not _work_left(target, spec, deep):
        return target  # nothing is written: a read-only shared copy works as it is
    root = target.parent
    with _writing(root, spec):
        root.mkdir(parents=True, exist_ok=True)
        with locks.waiting_lock(root / f".{spec.name}.lock", f"fetching {spec.name} into {root}"):
            return _fetch_locked(source, target, spec, progress, deep)


def _work_left(target: Path, spec: DatasetSpec, deep: bool) -> bool:
    """Whether a finished folder needs repairs or pair files; reads, never writes."""
    recorded = _recorded_files(target)
    if recorded is None:
        # A marker from before siamlib recorded file lists: trusted as before, except that a
        # missing images/ folder cannot pass for a finished data set.
        if not (target / IMAGES).is_dir():
            raise DataError(
                f"{target} has a {MARKER} marker but no {IMAGES}/ folder. Its marker is from an "
                f"older siamlib that recorded no file list, so it cannot be repaired in place: "
                f"move {target} aside and run python -m siamlib.data fetch --source PATH again."
            )
    elif _damaged(target, recorded, deep):
        return True
    return any(not (target / name).is_file() for name in spec.pair_files)


def _fetch_locked(
    source: str | os.PathLike | None, target: Path, spec: DatasetSpec, progress: bool, deep: bool
) -> Path:
    """The work of ``fetch``, by one process at a time (the caller holds the lock)."""
    root = target.parent
    if (target / MARKER).is_file():  # finished, perhaps by the process we waited for
        recorded = _recorded_files(target)
        damaged = _damaged(target, recorded, deep) if recorded is not None else {}
        if damaged:
            _repair(target, damaged, recorded, source, spec, progress)
        if any(not (target / name).is_file() for name in spec.pair_files):
            _add_pair_files(target, source, spec, progress)
        return target
    _remove_leftover_staging(root, spec)  # safe: under the lock, no other fetch is running
    if target.exists():
        return _adopt(target, spec)
    plan = _plan(source, spec)
    staging = root / f"{_TEMP_PREFIX}{spec.name}-{uuid.uuid4().hex[:8]}"
    staging.mkdir()
    try:
        pair_sources = _assemble(plan, staging, root / DOWNLOADS, spec, progress)
        counts, problems = _inspect(staging, spec, pair_sources)
        if problems and all(line.startswith(_UNREADABLE_PAIRS) for line in problems):
            raise DataError(  # the images are fine: do not blame the zip
                f"A pair file given for {spec.name} cannot be used:\n" + _bullets(problems)
                + "\nFix or replace that file and run fetch again."
            )
        if problems:
            raise DataError(
                f"{plan.description} does not hold a complete copy of {spec.name}:\n"
                + _bullets(problems)
                + f"\nGet a fresh copy of {_file_list(spec)} and run fetch again with it."
            )
        _write_marker(staging, counts, plan.description, _manifest(staging, spec))
        os.replace(staging, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


@contextmanager
def _writing(root: Path, spec: DatasetSpec) -> Iterator[None]:
    """A full disk or a read-only folder as one DataError; the callers leave nothing behind."""
    try:
        yield
    except OSError as error:
        if error.errno in (errno.ENOSPC, errno.EDQUOT):
            raise DataError(
                f"The disk holding {root} is full ({error.strerror}). Nothing half-written was "
                f"kept. Free some space, or fetch into another folder (--data-dir or "
                f"${paths.DATA_DIR_ENV}), then run fetch again."
            ) from error
        if isinstance(error, PermissionError) or error.errno == errno.EROFS:
            raise DataError(
                f"{root} is not writable ({error}), and {spec.name} there is not ready or "
                f"needs repair. Fetch into a folder you can write (--data-dir or "
                f"${paths.DATA_DIR_ENV}), or ask whoever owns {root} to run fetch once."
            ) from error
        raise


def _repair_plan(
    target: Path, source: str | os.PathLike | None, spec: DatasetSpec
) -> _Source | None:
    """Where damaged files can come from: the given source, else the one the folder was made
    from (if still there), else the registry's downloads; None when there is none."""
    if source is not None:
        return _plan(source, spec)
    recorded = str(read_marker(target).get("source", ""))
    if recorded and Path(recorded).exists():
        return _plan(recorded, spec)
    if spec.archive and any(remote.urls for remote in spec.files):
        return _plan(None, spec)
    return None


def _repair(
    target: Path,
    damaged: dict[str, str],
    recorded: dict[str, list],
    source: str | os.PathLike | None,
    spec: DatasetSpec,
    progress: bool,
) -> None:
    """Take only the damaged files again from the source, checked against the marker."""
    plan = _repair_plan(target, source, spec)
    if plan is None:
        raise DataError(
            f"{target} is damaged: {_describe_damage(damaged)}.\n"
            f"It was made from {read_marker(target).get('source')!r}, which is not here any "
            f"more, so the files cannot be taken again automatically. Put them back, or run\n"
            f"    python -m siamlib.data fetch --source PATH\n"
            f"with the zip or folder of {spec.name}: only the damaged files are replaced."
        )
    root = target.parent
    staging = root / f"{_TEMP_PREFIX}{spec.name}-{uuid.uuid4().hex[:8]}"
    staging.mkdir()
    try:
        wanted = {name.split("/", 1)[1] for name in damaged if name.startswith(f"{IMAGES}/")}
        if wanted:
            faces = plan.faces or _download(
                spec.remote(spec.archive), spec, root / DOWNLOADS, plan.mirrors, progress
            )
            if faces.is_dir():
                _copy_people(faces, staging / IMAGES, only=wanted)
            else:
                _extract_people(faces, staging / IMAGES, progress, only=wanted)
        for name in damaged:
            if name in spec.pair_files:
                found = plan.pair_files.get(name) or _download(
                    spec.remote(name), spec, root / DOWNLOADS, plan.mirrors, progress
                )
                shutil.copyfile(found, staging / name)
        still = _damaged(staging, {name: recorded[name] for name in damaged}, deep=True)
        if still:
            raise DataError(
                f"{target} is damaged ({_describe_damage(damaged)}), and {plan.description} "
                f"does not hold the files it was made from: {_describe_damage(still)}.\n"
                f"Run fetch --source with the copy {target.name} was made from, or move "
                f"{target} aside and fetch it afresh."
            )
        for name in damaged:
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            os.replace(staging / name, target / name)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    print(f"{target}: {len(damaged):,} missing or damaged file(s) taken again from "
          f"{plan.description}", file=sys.stderr)


def _add_pair_files(
    target: Path, source: str | os.PathLike | None, spec: DatasetSpec, progress: bool
) -> None:
    """Bring a finished folder up to date with pair files the registry gained since it was made
    (View 2's ``pairs.txt`` joined later), without touching its images."""
    plan = _plan(source, spec)
    for name in spec.pair_files:
        if (target / name).is_file():
            continue
        found = plan.pair_files.get(name) or _download(
            spec.remote(name), spec, target.parent / DOWNLOADS, plan.mirrors, progress
        )
        part = target / f"{_TEMP_PREFIX}{name}"
        try:
            shutil.copyfile(found, part)
            os.replace(part, target / name)
        finally:
            part.unlink(missing_ok=True)
    counts, problems = _inspect(target, spec, plan.pair_files)
    if problems:
        raise DataError(
            f"{target} gained the pair files {spec.name} lists now, but it is not complete:\n"
            + _bullets(problems)
            + "\nGet a fresh copy of the pair files and run fetch again."
        )
    recorded = _recorded_files(target)
    added = [target / name for name in spec.pair_files if f"{name}" not in (recorded or {})]
    files = None if recorded is None else {**recorded, **_entries(target, added)}
    _write_marker(target, counts, read_marker(target)["source"], files)


def _remove_leftover_staging(root: Path, spec: DatasetSpec) -> None:
    """Staging folders are siamlib's own, so the ones an interrupted run left are safe to drop."""
    for leftover in root.glob(f"{_TEMP_PREFIX}{spec.name}-*"):
        shutil.rmtree(leftover, ignore_errors=True)


def _adopt(target: Path, spec: DatasetSpec) -> Path:
    """Accept a folder with no marker only if it checks out; never delete it, it may be a user's."""
    counts, problems = _inspect(target, spec)
    if problems:
        raise DataError(
            f"{target} exists but is not a finished {spec.name} (it has no {MARKER} marker: an "
            f"earlier fetch was interrupted, or it was copied by hand), and it is incomplete:\n"
            + _bullets(problems)
            + f"\nNothing was deleted. Move or delete {target} yourself, then run "
            f"python -m siamlib.data fetch --source PATH again."
        )
    _write_marker(target, counts, "found in place", _manifest(target, spec))
    return target


def _write_marker(
    folder: Path, counts: dict[str, int], source: str, files: dict[str, list] | None
) -> None:
    """Written whole or not at all (a full disk must not leave half a marker to trust)."""
    marker = {
        **counts,
        "source": source,
        "completed": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    if files is not None:
        marker["files"] = files
    part = folder / f"{MARKER}.part"
    try:
        part.write_text(json.dumps(marker, indent=1) + "\n", encoding="utf-8")
        os.replace(part, folder / MARKER)
    finally:
        part.unlink(missing_ok=True)


def _manifest(folder: Path, spec: DatasetSpec) -> dict[str, list]:
    """Every image and pair file with its size and sha256, for the marker (about a second for
    LFW-a's 13,233 files, once per fetch)."""
    images = sorted(
        path for path in (folder / IMAGES).glob("*/*")
        if path.is_file() and is_image(path.name) and not _is_junk(path.parent.name)
    )
    return _entries(folder, [*images, *(folder / name for name in spec.pair_files)])


def _entries(folder: Path, files: Iterable[Path]) -> dict[str, list]:
    return {
        path.relative_to(folder).as_posix(): [path.stat().st_size, sha256_of(path)]
        for path in files
        if path.is_file()
    }


def read_marker(folder: str | os.PathLike) -> dict:
    """The counts, source and date a finished data set was made with."""
    marker = Path(folder) / MARKER
    try:
        content = json.loads(marker.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        content = None
    if not isinstance(content, dict):
        raise DataError(
            f"{marker} is damaged (not the JSON siamlib writes). Delete it and run "
            f"python -m siamlib.data fetch again: the folder is then checked file by file and "
            f"adopted if complete; nothing else is deleted."
        )
    return content


def _file_list(spec: DatasetSpec) -> str:
    names = [spec.archive, *spec.pair_files] if spec.archive else ["its person folders"]
    return ", ".join(names)


def _plan(source: str | os.PathLike | None, spec: DatasetSpec) -> _Source:
    if source is None:
        return _Source(description=f"the download addresses of {spec.name}")
    text = os.fspath(source)
    if text.startswith(("http://", "https://")):
        return _Source(description=text, mirrors=(text,))
    path = Path(text).expanduser().resolve()
    if path.is_file():
        return _Source(str(path), faces=path, pair_files=_pair_files_in(path.parent, spec, False))
    if path.is_dir():
        return _plan_folder(path, spec)
    raise DataError(
        f"The source {text} does not exist. Give a zip of {spec.name}, a folder holding "
        f"{_file_list(spec)}, a folder of person folders, or an http(s) URL of such a folder."
    )


def _plan_folder(folder: Path, spec: DatasetSpec) -> _Source:
    if spec.archive and (folder / spec.archive).is_file():
        zip_path = folder / spec.archive
        return _Source(str(zip_path), zip_path, _pair_files_in(folder, spec, False))
    relative = [path.relative_to(folder) for path in _files_under(folder)]
    people_root = _people_root(PurePosixPath(path.as_posix()) for path in relative)
    if people_root is None:
        expected = f"{spec.archive} nor " if spec.archive else ""
        raise DataError(
            f"{folder} holds neither {expected}person folders (<Name>/<Name>_0001.jpg, at any "
            f"depth). Point --source at the zip, the folder holding it, or the folder of folders."
        )
    return _Source(str(folder), folder / people_root, _pair_files_in(folder, spec, True))


def _files_under(folder: Path) -> Iterable[Path]:
    for parent, dirs, files in os.walk(folder):
        dirs[:] = [name for name in dirs if not _is_junk(name)]
        yield from (Path(parent, name) for name in files)


def _pair_files_in(folder: Path, spec: DatasetSpec, recursive: bool) -> dict[str, Path]:
    """The pair files beside the zip, or anywhere under a folder of folders (shallowest first)."""
    found = {}
    for name in spec.pair_files:
        if recursive:
            candidates = sorted(folder.rglob(name), key=lambda path: len(path.parts))
        else:
            candidates = [folder / name]
        existing = [path for path in candidates if path.is_file()]
        if existing:
            found[name] = existing[0]
    return found


def _people_root(files: Iterable[PurePosixPath]) -> PurePosixPath | None:
    """The folder of person folders: the one holding the most images one level down.

    Counting beats taking the shallowest, so a stray picture near the top of a course copy
    (``lfw2/lfw2/<Name>/...`` beside ``cover.jpg``) cannot win.
    """
    images_by_root = Counter(
        file.parent.parent
        for file in files
        if len(file.parts) >= 2 and is_image(file.name) and not any(map(_is_junk, file.parts))
    )
    if not images_by_root:
        return None
    return min(images_by_root, key=lambda root: (-images_by_root[root], len(root.parts)))


def _assemble(
    plan: _Source, staging: Path, downloads: Path, spec: DatasetSpec, progress: bool
) -> dict[str, Path]:
    """Gather every input first (downloads fail fast and cheap), then build the folder.

    Returns where each pair file came from, so errors can name the user's own file.
    """
    pair_sources = {
        name: plan.pair_files.get(name)
        or _download(spec.remote(name), spec, downloads, plan.mirrors, progress)
        for name in spec.pair_files
    }
    faces = plan.faces
    if faces is None:
        if spec.archive is None:
            raise DataError(f"{spec.name} has no archive to download; pass a source folder.")
        faces = _download(spec.remote(spec.archive), spec, downloads, plan.mirrors, progress)
    if faces.is_dir():
        _copy_people(faces, staging / IMAGES)
    else:
        _extract_people(faces, staging / IMAGES, progress)
    for name, path in pair_sources.items():
        shutil.copyfile(path, staging / name)
    return pair_sources


def _copy_people(people_root: Path, images: Path, only: set[str] | None = None) -> None:
    """Copy the person folders; ``only``: just these ``<Name>/<file>`` paths (a repair)."""
    images.mkdir()
    if only is not None:
        for relative in sorted(only):
            if (people_root / relative).is_file():
                (images / relative).parent.mkdir(exist_ok=True)
                shutil.copyfile(people_root / relative, images / relative)
        return
    for person in people_root.iterdir():
        if person.is_dir() and not _is_junk(person.name):
            shutil.copytree(person, images / person.name)


def _extract_people(
    zip_path: Path, images: Path, progress: bool, only: set[str] | None = None
) -> None:
    """Unzip only the person folders, wherever they sit in the zip, straight into ``images``;
    ``only``: just these ``<Name>/<file>`` paths (a repair)."""
    try:
        with zipfile.ZipFile(zip_path) as archive:
            members = [info for info in archive.infolist() if not info.is_dir()]
            _refuse_unsafe_names(zip_path, members)
            names = [PurePosixPath(info.filename) for info in members]
            people_root = _people_root(names)
            if people_root is None:
                raise DataError(
                    f"{zip_path} holds no person folders (<Name>/<Name>_0001.jpg at any depth)."
                )
            wanted = [
                (info, name.relative_to(people_root))
                for info, name in zip(members, names, strict=True)
                if _is_person_file(name, people_root)
                and (only is None or name.relative_to(people_root).as_posix() in only)
            ]
            for info, relative in tqdm(
                wanted, desc=f"Extracting {zip_path.name}", unit="file", disable=not progress
            ):
                destination = images / relative
                destination.parent.mkdir(parents=True, exist_ok=True)
                with archive.open(info) as member, open(destination, "wb") as out:
                    shutil.copyfileobj(member, out, _CHUNK_BYTES)
    except (zipfile.BadZipFile, EOFError, zlib.error) as error:
        raise DataError(
            f"The zip {zip_path} is damaged or truncated ({error}). Download it again "
            f"(compare its size with the original's) and run fetch again with the new copy."
        ) from error


def _refuse_unsafe_names(zip_path: Path, members: Iterable[zipfile.ZipInfo]) -> None:
    """A member named ``../x`` or ``/x`` would be written outside the data folder (zip slip)."""
    for info in members:
        name = PurePosixPath(info.filename)
        if name.is_absolute() or ".." in name.parts or ":" in name.parts[0]:
            raise DataError(
                f"The zip {zip_path} holds an unsafe path ({info.filename}) that would be written "
                f"outside the data folder; nothing was extracted from it. Use a trusted copy."
            )


def _is_person_file(name: PurePosixPath, people_root: PurePosixPath) -> bool:
    if not name.is_relative_to(people_root):
        return False
    relative = name.relative_to(people_root)
    return len(relative.parts) >= 2 and not any(map(_is_junk, relative.parts))


# --- download -----------------------------------------------------------------------------------


class _MirrorFailed(Exception):
    """A mirror answered, but not with the file (an HTML page, the wrong bytes)."""


def _download(
    remote: RemoteFile,
    spec: DatasetSpec,
    downloads: Path,
    mirrors: Sequence[str],
    progress: bool,
) -> Path:
    """The file, checksum-verified, from the cache or the first mirror that serves it intact."""
    destination = downloads / remote.name
    if destination.is_file() and sha256_of(destination) == remote.sha256:
        return destination
    downloads.mkdir(parents=True, exist_ok=True)
    part = destination.with_name(destination.name + ".part")
    mirror_urls = [f"{base.rstrip('/')}/{urllib.parse.quote(remote.name)}" for base in mirrors]
    addresses = [*mirror_urls, *remote.urls]
    failures = []
    for tried, url in enumerate(addresses, start=1):
        try:
            digest = _stream(url, part, remote.name, progress)
            if digest != remote.sha256:
                raise _MirrorFailed(
                    f"checksum mismatch: sha256 {digest[:12]}..., expected {remote.sha256[:12]}..."
                )
        except (OSError, http.client.HTTPException, ValueError, _MirrorFailed) as error:
            part.unlink(missing_ok=True)
            if isinstance(error, OSError) and error.errno in (errno.ENOSPC, errno.EDQUOT):
                raise  # no other address helps; fetch reports the full disk
            failures.append(f"{url}: {_describe(error)}")
            next_step = "; trying the next address" if tried < len(addresses) else ""
            print(f"{remote.name}: {failures[-1]}{next_step}", file=sys.stderr)
            continue
        os.replace(part, destination)
        return destination
    raise DataError(_manual_download_advice(remote, spec, failures))


def _stream(url: str, part: Path, name: str, progress: bool) -> str:
    """Write the response to ``part`` and return its sha256, computed on the way through."""
    request = urllib.request.Request(url, headers={"User-Agent": f"siamlib/{__version__}"})
    digest = hashlib.sha256()
    with urllib.request.urlopen(request, timeout=_TIMEOUT_S) as response:
        if response.headers.get_content_type() == "text/html":
            raise _MirrorFailed("served an HTML page instead of the file (quota or sign-in page?)")
        size = int(response.headers.get("Content-Length") or 0) or None
        with (
            open(part, "wb") as out,
            tqdm(
                total=size,
                desc=name,
                unit="B",
                unit_scale=True,
                unit_divisor=1024,
                disable=not progress,
            ) as bar,
        ):
            while chunk := response.read(_CHUNK_BYTES):
                out.write(chunk)
                digest.update(chunk)
                bar.update(len(chunk))
    return digest.hexdigest()


def sha256_of(path: Path) -> str:
    """A file's SHA-256, read in chunks (the data set's files and the run cache's alike)."""
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        while chunk := file.read(_CHUNK_BYTES):
            digest.update(chunk)
    return digest.hexdigest()


def _describe(error: BaseException) -> str:
    if isinstance(error, urllib.error.HTTPError):
        return f"HTTP {error.code} {error.reason}"
    if isinstance(error, urllib.error.URLError):
        return f"cannot connect ({error.reason})"
    return str(error) or type(error).__name__


def _manual_download_advice(remote: RemoteFile, spec: DatasetSpec, failures: list[str]) -> str:
    where = remote.browser_url or (remote.urls[0] if remote.urls else "wherever you got the rest")
    tried = f"every address failed:\n{_bullets(failures)}" if failures else "no address is known."
    return (
        f"Could not download {remote.name}; {tried}\n"
        f"What to do: download {remote.name} by hand from {where}, put it in one folder with "
        f"the other files of {spec.name} ({_file_list(spec)}), then run\n"
        f"    python -m siamlib.data fetch --source FOLDER\n"
        f"or set {SOURCE_ENV}=FOLDER before running the notebooks."
    )


# --- command line -------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m siamlib.data fetch|verify``: one line of summary, or the problem and status 2."""
    parser = argparse.ArgumentParser(
        prog="python -m siamlib.data", description=f"Get and check {LFW_A.name}."
    )
    commands = parser.add_subparsers(dest="command", required=True)
    fetch_parser = commands.add_parser("fetch", help="make the data set ready (idempotent)")
    fetch_parser.add_argument(
        "--source",
        help=f"zip, folder or http(s) URL to take the data from (default: ${SOURCE_ENV}, "
        "else the registry's addresses)",
    )
    verify_parser = commands.add_parser("verify", help="check a finished data set by content")
    for command in (fetch_parser, verify_parser):
        command.add_argument("--data-dir", help=f"default: ${paths.DATA_DIR_ENV} or data/")
        command.add_argument(
            "--deep", action="store_true",
            help="also compare every file's content with what fetch recorded (reads all bytes)",
        )
    args = parser.parse_args(argv)
    if args.command == "fetch" and args.source is not None and not args.source.strip():
        parser.error("--source is empty: name a zip, folder or URL, or leave --source out")
    try:
        if args.command == "fetch":
            folder = fetch(args.source, args.data_dir, LFW_A, deep=args.deep)
            counts = read_marker(folder)
        else:
            folder = dataset_dir(args.data_dir, LFW_A)
            counts = verify(folder, LFW_A, deep=args.deep)
    except DataError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(
        f"{LFW_A.name} ready at {folder}: {counts['people']:,} people, {counts['images']:,} "
        f"images, {counts['pairs']:,} pairs with all images present"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
