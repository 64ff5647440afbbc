"""Finished runs to share: an instructor trains once, students import the archive and load.

An archive is a plain ``.tar.gz`` or ``.zip`` of run folders as training left them: each run's
``COMPLETE`` marker already records the SHA-256 of its files, so each run is checked against its
own marker on export and again on import, and its folder name against its config's cache key
(else ``train`` would load weights that another configuration trained). Export leaves out,
saying why, a run it cannot vouch for. Import unpacks into a temporary folder beside the runs
(tar members through Python's ``data`` filter: nothing outside it, no absolute links), checks
every run, and only then renames each into place, so a damaged, unsafe or foreign archive is
refused with one line and the runs folder stays as it was. A run trained on an identity folder
this machine lacks is left out (its key hashes that folder's files); the rest import. A finished
local run is never overwritten by a different one; a damaged or unfinished local folder is set
aside, as training does. A run of another Keras version or numeric policy imports with a warning.

    python -m siamlib.runs export runs-cpu.tar.gz [--only koch all_pairs]
    python -m siamlib.runs import runs-cpu.tar.gz

or from a notebook ``runs.export_runs("runs-cpu.tar.gz")`` / ``runs.import_runs(...)``.
"""

from __future__ import annotations

import argparse
import errno
import gzip
import json
import re
import sys
import tarfile
import tempfile
import warnings
import zipfile
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from siamlib import paths
from siamlib.device import compute_policy
from siamlib.files import checksums, damaged, staged
from siamlib.training import COMPLETE, RunConfig, finished, set_aside, warn_if_other_keras

REQUIRED_FILES = ("config.json", "model.weights.h5", "history.csv", "scores.csv")  # load_run's
POLICIES = ("float32", "mixed_float16")  # the numeric policies a run's key may be computed under
SUFFIXES = (".tar.gz", ".tgz", ".zip")
RUN_FOLDER = re.compile(r"[^.].*-[0-9a-f]{12}")  # <name>-<key>: not hidden, not set aside
OLD_MANIFEST = "manifest.json"  # the file list that archives of earlier siamlibs began with
DAMAGED_ARCHIVE = (tarfile.TarError, zipfile.BadZipFile, gzip.BadGzipFile, EOFError, zlib.error)


class RunsArchiveError(Exception):
    """An archive that cannot be written or imported; the message names the problem."""


class _DataNotHereError(RunsArchiveError):
    """A run trained on an identity folder this machine lacks: left out, not refused."""


@dataclass(frozen=True)
class Outcome:
    """What import did with one run: "imported", "identical" (already here) or "kept" (a
    different finished run of that key is here and is never overwritten)."""

    run: str  # folder name, ``<name>-<key>``
    status: str
    message: str


def finished_runs(runs_root: str | Path | None = None) -> list[Path]:
    """Run folders under ``runs_root`` that hold a ``COMPLETE`` marker, sorted by name."""
    root = Path(runs_root or paths.runs_dir())
    return sorted(folder for folder in (root.iterdir() if root.is_dir() else ())
                  if RUN_FOLDER.fullmatch(folder.name) and (folder / COMPLETE).is_file())


def export_runs(archive: str | Path, runs: Sequence[str] | None = None,
                runs_root: str | Path | None = None, quiet: bool = False) -> Path:
    """Write finished runs to ``archive``: all, or those whose name (``koch``) or folder name
    (``koch-0123456789ab``) is in ``runs``. Written beside itself and renamed into place, so a
    failed export leaves no half-written file."""
    archive, root = Path(archive), Path(runs_root or paths.runs_dir())
    if not archive.name.lower().endswith(SUFFIXES):
        raise RunsArchiveError(f"{archive}: the archive's name must end in {', '.join(SUFFIXES)}")
    folders = finished_runs(root)
    if not folders:
        raise RunsArchiveError(f"no finished runs (folders with a {COMPLETE} marker) in {root}")
    named = {folder: {folder.name, folder.name.rsplit("-", 1)[0]} for folder in folders}
    unknown = sorted(set(runs or ()) - set().union(*named.values()))
    if unknown:
        raise RunsArchiveError(f"no finished run named {unknown[0]!r} in {root} (finished: "
                               f"{', '.join(f.name for f in folders)})")
    shared = {}
    for folder in (f for f in folders if runs is None or named[f] & set(runs)):
        try:
            shared[folder] = _verified(folder)
        except RunsArchiveError as reason:
            warnings.warn(f"skipped {folder.name}: {reason}", stacklevel=2)
    if not shared:
        raise RunsArchiveError(f"nothing to export: no finished run in {root} can be shared")
    files = [path for folder in shared for path in sorted(folder.rglob("*")) if path.is_file()]
    try:
        archive.parent.mkdir(parents=True, exist_ok=True)
        with staged(archive, folder=False) as partial:
            if archive.name.lower().endswith(".zip"):
                with zipfile.ZipFile(partial, "w", zipfile.ZIP_DEFLATED) as out:
                    for path in files:
                        out.write(path, path.relative_to(root).as_posix())
            else:
                with tarfile.open(partial, "w:gz") as out:
                    for path in files:
                        out.add(path, path.relative_to(root).as_posix())
    except OSError as error:
        raise _disk_error(error, archive, "write it elsewhere or change the folder's "
                          "permissions") from None
    for folder, (info, policy) in () if quiet else shared.items():
        print(f"exported {folder.name} (policy {policy}, Keras {info.get('keras')})")
    if not quiet:
        print(f"{len(shared)} run(s) -> {archive} ({archive.stat().st_size / 1e6:.1f} MB)")
    return archive


def import_runs(archive: str | Path, runs_root: str | Path | None = None,
                quiet: bool = False) -> list[Outcome]:
    """Check ``archive`` completely, then move its runs into ``runs_root`` (a run left out gets
    a warning); any refusal raises RunsArchiveError with nothing written."""
    archive, root = Path(archive), Path(runs_root or paths.runs_dir())
    if not archive.is_file():
        raise RunsArchiveError(f"{archive}: no such archive")
    created = [folder for folder in (root, *root.parents) if not folder.exists()]
    try:
        root.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(prefix=".import-", dir=root) as staging:
            outcomes = [_place(folder, root / folder.name, *found)
                        for folder, found in _unpacked(archive, Path(staging)).items()]
    except BaseException as error:
        for folder in created:  # leave no trace: remove the folders made for this import
            if folder.is_dir() and not any(folder.iterdir()):
                folder.rmdir()
        raise _refusal(error, archive, root) from None
    for outcome in () if quiet else outcomes:
        print(outcome.message)
    return outcomes


def _unpacked(archive: Path, staging: Path) -> dict[Path, tuple[dict, str]]:
    """Each run of ``archive`` unpacked into ``staging``, with what ``_verified`` returns."""
    if zipfile.is_zipfile(archive):
        with zipfile.ZipFile(archive) as source:  # puts ".." and "/x" names inside staging
            source.extractall(staging)
    else:
        with tarfile.open(archive) as source:
            source.extractall(staging, filter="data")  # a link inside is an unlisted file
    if not any(staging.iterdir()):
        raise RunsArchiveError("it holds no runs")
    runs = {}
    for folder in sorted(staging.iterdir()):
        if folder.name == OLD_MANIFEST:  # each run's own marker is checked instead
            continue
        if not (folder.is_dir() and RUN_FOLDER.fullmatch(folder.name)):
            raise RunsArchiveError(f"not a runs archive: {folder.name} is not a run folder")
        try:
            runs[folder] = _verified(folder)
        except _DataNotHereError as reason:
            warnings.warn(f"skipped {folder.name}: {reason}", stacklevel=4)
        except RunsArchiveError as reason:
            raise RunsArchiveError(f"{folder.name}: {reason}") from None
    return runs


def _refusal(error: BaseException, archive: Path, root: Path) -> BaseException:
    """A failed import as one line naming the archive or the runs folder, and the fix."""
    if isinstance(error, tarfile.FilterError):  # before DAMAGED_ARCHIVE, its base class's
        reason = f"unsafe member refused ({error})"
    elif isinstance(error, DAMAGED_ARCHIVE):  # tarfile's message lists each method it tried
        reason = f"damaged or not an archive ({str(error).partition(chr(10))[0]})"
    elif isinstance(error, RunsArchiveError):
        reason = str(error)
    elif isinstance(error, OSError) and error.filename == str(archive):
        return _disk_error(error, archive, "change its permissions")
    elif isinstance(error, OSError):
        return _disk_error(error, root, "choose another runs folder (--runs-dir) or change its "
                           "permissions")
    else:
        return error
    return RunsArchiveError(f"{archive}: {reason}; nothing was imported")


def _verified(folder: Path) -> tuple[dict, str]:
    """A shareable run's marker and numeric policy: its files are exactly those its marker
    lists, unchanged, and its folder is named by its config's key under that policy."""
    try:
        info = json.loads((folder / COMPLETE).read_text())
        recorded = dict(info.get("files") or {})
    except FileNotFoundError:
        raise RunsArchiveError(f"no {COMPLETE} marker: not a finished run") from None
    except (OSError, ValueError, AttributeError, TypeError) as error:
        raise RunsArchiveError(f"its {COMPLETE} marker cannot be read ({error})") from None
    if not recorded:
        raise RunsArchiveError(f"its {COMPLETE} marker records no checksums (an older siamlib's), "
                               "so its files cannot be verified; train it again to share it")
    unlisted = {path.relative_to(folder).as_posix() for path in folder.rglob("*")
                if not path.is_dir()} - set(recorded) - {COMPLETE}
    problems = [*damaged(folder, recorded),
                *(f"{name} (missing)" for name in REQUIRED_FILES if name not in recorded),
                *(f"{name} (not in its {COMPLETE} checksums)" for name in sorted(unlisted))]
    if problems:
        raise RunsArchiveError(f"damaged: {', '.join(problems)}")
    try:
        config = RunConfig.from_dict(json.loads((folder / "config.json").read_text()))
    except (ValueError, KeyError, TypeError) as error:
        raise RunsArchiveError(f"config.json is not a run config ({error})") from None
    try:  # an identity folder's key hashes the folder's files: they must be on this machine
        keys = {f"{config.name}-{config.key(policy)}": policy for policy in POLICIES}
    except (OSError, ValueError) as error:
        raise _DataNotHereError(f"it was trained on the identity folder {config.data.source}, "
                               f"which this machine does not have ({error})") from None
    if folder.name not in keys:
        raise RunsArchiveError(f"its folder name is not the cache key of its config.json "
                               f"({' or '.join(keys)}): its files belong to another configuration")
    return info, keys[folder.name]


def _place(run: Path, target: Path, info: dict, policy: str) -> Outcome:
    """Move one verified run into place, unless a sound finished run of that name is there."""
    name, note = target.name, ""
    if finished(target):
        if checksums(target) == checksums(run):
            return Outcome(name, "identical", f"skipped {name}: already here, identical")
        return Outcome(name, "kept", f"kept {name}: a different finished run of the same "
                       f"configuration is already here and is not overwritten (delete {target} "
                       "and import again to take the archive's)")
    if (why := set_aside(target)) is not None:
        note = f" (the folder of that name {why})"
    run.rename(target)
    warn_if_other_keras(name, info)
    if policy != compute_policy():
        warnings.warn(f"run {name} was trained under the {policy} policy; this machine computes "
                      f"in {compute_policy()}, so its notebooks will train their own", stacklevel=4)
    return Outcome(name, "imported", f"imported {name}{note}")


def _disk_error(error: OSError, place: Path, fix: str) -> Exception:
    """A full, read-only or forbidden place as one line naming it and the fix; another error
    of the system as it is."""
    if error.errno == errno.ENOSPC:
        return RunsArchiveError(f"{place}: the disk is full; free some space or choose another "
                                "place")
    if error.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return RunsArchiveError(f"{place}: {(error.strerror or 'not allowed').lower()}; {fix}")
    return error


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m siamlib.runs export|import ARCHIVE``: a line per run, or the problem and 2."""
    parser = argparse.ArgumentParser(prog="python -m siamlib.runs", description="Share finished "
                                     "training runs: export them to one archive, import it.")
    parser.add_argument("command", choices=("export", "import"))
    parser.add_argument("archive", help=f"the archive ({', '.join(SUFFIXES)})")
    parser.add_argument("--only", nargs="+", metavar="NAME",
                        help="export: run names (koch) or folder names (koch-<key>)")
    parser.add_argument("--runs-dir", help=f"default: ${paths.RUNS_DIR_ENV} or data/runs")
    args = parser.parse_args(argv)
    if args.only and args.command == "import":
        parser.error("--only selects runs to export; import takes every run of the archive")
    with warnings.catch_warnings():  # restores showwarning: a caller's warnings stay theirs
        warnings.simplefilter("always", UserWarning)
        warnings.showwarning = lambda message, *_: print(f"warning: {message}", file=sys.stderr)
        try:
            if args.command == "export":
                export_runs(args.archive, args.only, args.runs_dir)
            else:
                import_runs(args.archive, args.runs_dir)
        except RunsArchiveError as error:
            print(f"error: {error}", file=sys.stderr)
            return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
