"""Finished runs to share: an instructor trains once, students import the archive and load.

``export_runs`` packs finished run folders (those with a ``COMPLETE`` marker) into one archive,
``.tar.gz`` or ``.zip``, whose first member is ``manifest.json``: every file's path, size and
SHA-256, each run's cache key and numeric policy, and the siamlib, TensorFlow and Keras versions
of the exporting machine and of each run's training. ``import_runs`` checks all of it before
anything reaches the run cache:

- a damaged archive (cut short, a changed byte, a file missing or not listed) is refused;
- an unsafe member (an absolute path, ``..``, a link) is refused;
- a run whose folder name does not match the cache key of its own ``config.json`` is refused,
  since ``training.train`` would then load weights that belong to another configuration.

One refusal names the problem and nothing is written: the archive is extracted into a temporary
folder inside the runs folder, and each run is renamed into place only once every file of every
run has verified, as the run cache itself does. A run already present with the same files is
skipped; one present with *different* files (the same configuration trained here too) is kept
and the archive's copy skipped, with a message: import never overwrites a finished run. Delete
that folder and import again to take the archive's. A run trained under another Keras version
imports with a warning (``load_run`` warns again when it is loaded), and so does one trained
under another numeric policy (a GPU's ``mixed_float16`` run is not what a CPU looks for).

From a shell::

    python -m siamlib.runs export runs-cpu.tar.gz [--only koch all_pairs]
    python -m siamlib.runs import runs-cpu.tar.gz

and from a notebook ``runs.export_runs("runs-cpu.tar.gz")`` / ``runs.import_runs(...)``.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import shutil
import sys
import tarfile
import time
import uuid
import warnings
import zipfile
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import keras
import tensorflow as tf

import siamlib
from siamlib import paths
from siamlib.device import compute_policy
from siamlib.splits import LFW
from siamlib.training import COMPLETE, RunConfig

MANIFEST = "manifest.json"
FORMAT = "siamlib-runs"
FORMAT_VERSION = 1
# What load_run reads; a finished run without one of them cannot be shared.
REQUIRED_FILES = ("config.json", COMPLETE, "model.weights.h5", "history.csv", "scores.csv")
POLICIES = ("float32", "mixed_float16")  # the numeric policies a run's key may be computed under
SUFFIXES = (".tar.gz", ".tgz", ".zip")
_CHUNK = 1 << 20


class RunsArchiveError(Exception):
    """An archive that cannot be written or imported; the message names the problem."""


@dataclass(frozen=True)
class Outcome:
    """What import did with one run of the archive."""

    run: str  # folder name, ``<name>-<key>``
    status: str  # "imported", "identical" (already here, skipped) or "kept" (ours differs)
    message: str

    def __str__(self) -> str:
        return self.message


# --- export -------------------------------------------------------------------------------------


def finished_runs(runs_root: str | Path | None = None) -> list[Path]:
    """Run folders under ``runs_root`` that hold a ``COMPLETE`` marker, sorted by name."""
    root = _root(runs_root)
    if not root.is_dir():
        return []
    return sorted(
        folder for folder in root.iterdir()
        if folder.is_dir() and not folder.name.startswith(".") and (folder / COMPLETE).is_file()
    )


def export_runs(
    archive: str | Path,
    runs: Sequence[str] | None = None,
    runs_root: str | Path | None = None,
    quiet: bool = False,
) -> Path:
    """Write the finished runs of ``runs_root`` to ``archive`` (.tar.gz, .tgz or .zip).

    Arguments:
        archive: the file to write; written beside itself first, then renamed into place.
        runs: run names (``koch``: every finished run of that name) or folder names
            (``koch-0123456789ab``); None = every finished run.
        runs_root: default ``paths.runs_dir()`` (``$SIAMLIB_RUNS_DIR`` or ``data/runs``).
        quiet: print nothing (otherwise one line per run and a summary).

    Returns:
        The archive's path.
    """
    archive = Path(archive)
    kind = _kind_from_suffix(archive)
    root = _root(runs_root)
    folders = _select(finished_runs(root), runs, root)
    files, run_entries = [], {}
    for folder in folders:
        run_entries[folder.name] = _describe_run(folder)
        files.extend(_describe_files(folder, root))
    manifest = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "created": time.strftime("%Y-%m-%d %H:%M:%S"),
        "siamlib": siamlib.__version__,
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
        "runs": run_entries,
        "files": files,
    }
    encoded = json.dumps(manifest, indent=2).encode()
    partial = archive.with_name(f".{archive.name}.{os.getpid()}.partial")
    archive.parent.mkdir(parents=True, exist_ok=True)
    try:
        if kind == "zip":
            with zipfile.ZipFile(partial, "w", compression=zipfile.ZIP_DEFLATED) as out:
                out.writestr(MANIFEST, encoded)
                for entry in files:
                    out.write(root / entry["path"], entry["path"])
        else:
            with tarfile.open(partial, "w:gz") as out:
                info = tarfile.TarInfo(MANIFEST)
                info.size, info.mtime = len(encoded), int(time.time())
                out.addfile(info, io.BytesIO(encoded))  # first, so a reader meets it first
                for entry in files:
                    out.add(root / entry["path"], entry["path"], recursive=False)
        partial.replace(archive)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    if not quiet:
        for name, entry in run_entries.items():
            print(f"exported {name} (policy {entry['policy']}, Keras {entry['keras']})")
        size = archive.stat().st_size / 1e6
        print(f"{len(folders)} run(s), {len(files)} files -> {archive} ({size:.1f} MB)")
    return archive


def _select(folders: list[Path], runs: Sequence[str] | None, root: Path) -> list[Path]:
    if not folders:
        raise RunsArchiveError(f"no finished runs (folders with a {COMPLETE} marker) in {root}")
    if runs is None:
        return folders
    names = {folder: _config_of(folder).name for folder in folders}
    chosen = []
    for wanted in runs:
        matches = [f for f in folders if wanted in (f.name, names[f])]
        if not matches:
            known = ", ".join(sorted(set(names.values())))
            raise RunsArchiveError(f"no finished run named {wanted!r} in {root} "
                                   f"(finished: {known})")
        chosen.extend(m for m in matches if m not in chosen)
    return sorted(chosen)


def _describe_run(folder: Path) -> dict:
    """A run's manifest entry; refuses a folder that is not a consistent finished run."""
    missing = [name for name in REQUIRED_FILES if not (folder / name).is_file()]
    if missing:
        raise RunsArchiveError(f"run {folder.name} lacks {', '.join(missing)}: not exported")
    config = _config_of(folder)
    policy = _policy_of(folder.name, config)
    if policy is None:
        raise RunsArchiveError(_key_mismatch(folder.name, config))
    info = _json_of(folder / COMPLETE, folder.name)
    return {"name": config.name, "key": folder.name.rsplit("-", 1)[-1], "policy": policy,
            "tensorflow": info.get("tensorflow"), "keras": info.get("keras"),
            "finished": info.get("finished")}


def _describe_files(folder: Path, root: Path) -> list[dict]:
    entries = []
    for path in sorted(folder.rglob("*")):
        if path.is_symlink():
            raise RunsArchiveError(f"{path} is a link; a shared run holds plain files only")
        if path.is_file():
            digest, size = _hash_file(path)
            entries.append({"path": path.relative_to(root).as_posix(), "size": size,
                            "sha256": digest})
    return entries


# --- import -------------------------------------------------------------------------------------


def import_runs(
    archive: str | Path, runs_root: str | Path | None = None, quiet: bool = False
) -> list[Outcome]:
    """Verify ``archive`` completely, then move its runs into ``runs_root``.

    Arguments:
        archive: a file written by ``export_runs``.
        runs_root: default ``paths.runs_dir()`` (``$SIAMLIB_RUNS_DIR`` or ``data/runs``).
        quiet: print nothing (otherwise one line per run).

    Returns:
        One ``Outcome`` per run of the archive: imported, identical (already here) or kept (a
        different finished run of the same key is here and is never overwritten).

    Raises:
        RunsArchiveError: the archive is damaged, unsafe or does not match itself; nothing has
            been written to ``runs_root``.
    """
    archive = Path(archive)
    if not archive.is_file():
        raise RunsArchiveError(f"{archive}: no such archive")
    root = _root(runs_root)
    created = _missing_ancestors(root)
    root.mkdir(parents=True, exist_ok=True)
    staging = root / f".import-{os.getpid()}-{uuid.uuid4().hex[:8]}.partial"
    staging.mkdir()
    try:
        try:
            manifest = _extract_verified(archive, staging)
        except RunsArchiveError as error:  # one message: which archive, what, and no harm done
            problem = str(error)
            if not problem.startswith(str(archive)):
                problem = f"{archive}: {problem}"
            raise RunsArchiveError(f"{problem}; nothing was imported") from None
        outcomes = [_place(staging / name, root / name, manifest, entry)
                    for name, entry in manifest["runs"].items()]
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        for folder in created:  # leave no trace: remove the folders made for this import
            if folder.is_dir() and not any(folder.iterdir()):
                folder.rmdir()
        raise
    shutil.rmtree(staging, ignore_errors=True)
    if not quiet:
        for outcome in outcomes:
            print(outcome.message)
    return outcomes


def _extract_verified(archive: Path, staging: Path) -> dict:
    """Extract every member into ``staging``, checking it against the manifest on the way;
    then check each run's key against its config. Returns the manifest."""
    manifest, listed, seen = None, {}, set()
    try:
        for name, size, stream in _members(archive):
            if manifest is None:
                if name != MANIFEST:
                    raise RunsArchiveError(f"{archive} is not a runs archive: its first member "
                                           f"is {name!r}, not {MANIFEST}")
                manifest = _read_manifest(stream.read(), archive)
                listed = {entry["path"]: entry for entry in manifest["files"]}
                continue
            if name in seen or name == MANIFEST:
                raise RunsArchiveError(f"{archive}: {name} appears twice")
            if name not in listed:
                raise RunsArchiveError(f"{archive}: {name} is not listed in its manifest")
            expected = listed[name]
            if size != expected["size"]:
                raise RunsArchiveError(f"{archive}: {name} is {size:,} bytes, its manifest says "
                                       f"{expected['size']:,}")
            _copy_checked(stream, staging / name, expected, archive)
            seen.add(name)
    except (tarfile.TarError, zipfile.BadZipFile, EOFError, zlib.error, OSError) as error:
        if isinstance(error, OSError) and error.filename is not None:
            raise  # a file we failed to write, not the archive
        raise RunsArchiveError(f"{archive} is damaged ({type(error).__name__}: {error})"
                               ) from None
    if manifest is None:
        raise RunsArchiveError(f"{archive} is empty or not a runs archive (no {MANIFEST})")
    missing = sorted(set(listed) - seen)
    if missing:
        more = f" and {len(missing) - 1} more" if len(missing) > 1 else ""
        raise RunsArchiveError(f"{archive} is incomplete: {missing[0]}{more} listed in its "
                               "manifest but not in the archive (cut short?)")
    for name, entry in manifest["runs"].items():
        folder = staging / name
        config = _config_of(folder)
        policy = _policy_of(name, config)
        if policy is None:
            raise RunsArchiveError(_key_mismatch(name, config))
        if name.rsplit("-", 1)[-1] != entry.get("key"):
            raise RunsArchiveError(f"{archive}: run {name}'s key differs from its manifest's "
                                   f"{entry.get('key')!r}")
        _json_of(folder / COMPLETE, name)
    return manifest


def _members(archive: Path) -> Iterator[tuple[str, int, io.BufferedIOBase]]:
    """(path, size, readable stream) of each file of a tar.gz or zip, in archive order; unsafe
    members and anything but plain files and folders raise RunsArchiveError."""
    with archive.open("rb") as handle:
        magic = handle.read(4)
    if magic.startswith(b"PK"):
        with zipfile.ZipFile(archive) as source:
            for info in source.infolist():
                _check_member_path(info.filename, archive)
                if info.is_dir():
                    continue
                mode = (info.external_attr >> 16) & 0o170000
                if mode not in (0, 0o100000):
                    raise RunsArchiveError(f"{archive}: {info.filename} is not a plain file")
                with source.open(info) as stream:
                    yield info.filename, info.file_size, stream
        return
    with tarfile.open(archive, "r|*") as source:  # one pass, front to back
        for member in source:
            _check_member_path(member.name, archive)
            if member.isdir():
                continue
            if not member.isfile():
                raise RunsArchiveError(f"{archive}: {member.name} is a link or special file; "
                                       "a runs archive holds plain files only")
            yield member.name, member.size, source.extractfile(member)


def _check_member_path(name: str, archive: Path) -> None:
    path = PurePosixPath(name)
    if (not name or "\\" in name or path.is_absolute() or ".." in path.parts
            or ":" in path.parts[0]):
        raise RunsArchiveError(f"{archive}: unsafe member path {name!r} (absolute, '..' or a "
                               "drive); refused")


def _read_manifest(data: bytes, archive: Path) -> dict:
    try:
        manifest = json.loads(data)
        runs, files = manifest["runs"], manifest["files"]
        if manifest.get("format") != FORMAT:
            raise ValueError(f"format is {manifest.get('format')!r}")
        for entry in files:
            if not isinstance(entry, dict) or not {"path", "size", "sha256"} <= set(entry):
                raise ValueError(f"a file entry lacks path, size or sha256: {entry!r}")
    except (ValueError, KeyError, TypeError) as error:
        raise RunsArchiveError(f"{archive}: unreadable {MANIFEST} ({error})") from None
    if manifest.get("format_version", 0) > FORMAT_VERSION:
        raise RunsArchiveError(f"{archive} was written by a newer siamlib "
                               f"({manifest.get('siamlib')}); update siamlib to import it")
    for entry in files:
        _check_member_path(entry["path"], archive)
        top = PurePosixPath(entry["path"]).parts
        if len(top) < 2 or top[0] not in runs:
            raise RunsArchiveError(f"{archive}: {entry['path']} belongs to no run of its manifest")
    for name in runs:
        _check_member_path(name, archive)
        if "/" in name or name.startswith("."):
            raise RunsArchiveError(f"{archive}: {name!r} is not a run folder name")
        paths_of_run = {e["path"] for e in files if e["path"].startswith(f"{name}/")}
        missing = [f for f in REQUIRED_FILES if f"{name}/{f}" not in paths_of_run]
        if missing:
            raise RunsArchiveError(f"{archive}: run {name} lacks {', '.join(missing)}")
    return manifest


def _copy_checked(stream, target: Path, expected: dict, archive: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    digest, size = hashlib.sha256(), 0
    with target.open("wb") as out:
        while chunk := stream.read(_CHUNK):
            size += len(chunk)
            if size > expected["size"]:
                raise RunsArchiveError(f"{archive}: {expected['path']} is longer than its "
                                       "manifest says")
            digest.update(chunk)
            out.write(chunk)
    if size != expected["size"]:
        raise RunsArchiveError(f"{archive}: {expected['path']} is cut short ({size:,} of "
                               f"{expected['size']:,} bytes)")
    if digest.hexdigest() != expected["sha256"]:
        raise RunsArchiveError(f"{archive}: {expected['path']} does not match its SHA-256 in the "
                               "manifest (changed or damaged)")


def _place(source: Path, target: Path, manifest: dict, entry: dict) -> Outcome:
    """Move one verified run into place, unless a finished run of that name is already there."""
    name = target.name
    if (target / COMPLETE).is_file():
        files = {e["path"]: e["sha256"] for e in manifest["files"]
                 if e["path"].startswith(f"{name}/")}
        ours = {p.relative_to(target.parent).as_posix(): _hash_file(p)[0]
                for p in target.rglob("*") if p.is_file()}
        if ours == files:
            return Outcome(name, "identical", f"skipped {name}: already here, identical")
        return Outcome(name, "kept", f"kept {name}: a different finished run of the same "
                       "configuration is already here and is not overwritten (delete "
                       f"{target} and import again to take the archive's)")
    note = ""
    if target.exists():  # no COMPLETE: an interrupted run; set aside as training would
        stale = target.with_name(f"{name}.incomplete-{int(time.time())}")
        target.rename(stale)
        note = f" (an unfinished folder of that name was moved to {stale.name})"
    source.rename(target)
    _warn_about_versions(name, entry)
    return Outcome(name, "imported", f"imported {name}{note}")


def _warn_about_versions(name: str, entry: dict) -> None:
    if entry.get("keras") != keras.__version__:
        warnings.warn(f"run {name} was trained with Keras {entry.get('keras')}, this is Keras "
                      f"{keras.__version__}: scores may differ slightly", stacklevel=3)
    if entry.get("policy") != compute_policy():
        warnings.warn(f"run {name} was trained under the {entry.get('policy')} policy; this "
                      f"machine computes in {compute_policy()}, so its notebooks will look for "
                      "(and train) their own run instead", stacklevel=3)


# --- shared helpers -----------------------------------------------------------------------------


def _root(runs_root: str | Path | None) -> Path:
    return Path(runs_root) if runs_root is not None else paths.runs_dir()


def _kind_from_suffix(archive: Path) -> str:
    name = archive.name.lower()
    if name.endswith(".zip"):
        return "zip"
    if name.endswith((".tar.gz", ".tgz")):
        return "tar.gz"
    raise RunsArchiveError(f"{archive}: the archive's name must end in {', '.join(SUFFIXES)}")


def _json_of(path: Path, run: str) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as error:
        raise RunsArchiveError(f"run {run}: {path.name} is unreadable ({error})") from None


def _config_of(folder: Path) -> RunConfig:
    content = _json_of(folder / "config.json", folder.name)
    try:
        return RunConfig.from_dict(content)
    except (KeyError, TypeError, ValueError) as error:
        raise RunsArchiveError(f"run {folder.name}: config.json is not a run config "
                               f"({type(error).__name__}: {error})") from None


def _policy_of(folder_name: str, config: RunConfig) -> str | None:
    """The policy under which ``folder_name`` is ``<name>-<key>`` of ``config``, or None."""
    for policy in POLICIES:
        try:
            key = config.key(policy)
        except OSError as error:  # an identity folder's key hashes its files: they must be here
            raise RunsArchiveError(
                f"run {folder_name}: its cache key cannot be checked on this machine ({error}); "
                "a run trained on an identity folder is keyed by that folder's files, so leave "
                "it out of the archive (export --only NAME ...)") from None
        if folder_name == f"{config.name}-{key}":
            return policy
    return None


def _key_mismatch(folder_name: str, config: RunConfig) -> str:
    keys = ", ".join(f"{config.name}-{config.key(p)} ({p})" for p in POLICIES)
    hint = ""
    if config.data.source != LFW:
        hint = (f" (its data, the identity folder {config.data.source}, is part of the key: "
                "other files or modification times there give another key)")
    return (f"run folder {folder_name} does not match its config.json, which would be "
            f"{keys}{hint}: its files belong to another configuration; refused")


def _hash_file(path: Path) -> tuple[str, int]:
    digest, size = hashlib.sha256(), 0
    with path.open("rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
            size += len(chunk)
    return digest.hexdigest(), size


def _missing_ancestors(folder: Path) -> list[Path]:
    """``folder`` and its parents that do not exist yet, deepest first."""
    missing = []
    for candidate in (folder, *folder.parents):
        if candidate.exists():
            break
        missing.append(candidate)
    return missing


# --- command line -------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m siamlib.runs export|import ARCHIVE``: a line per run, or the problem and 2."""
    parser = argparse.ArgumentParser(
        prog="python -m siamlib.runs",
        description="Share finished training runs: export them to one archive, import it.",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    export_parser = commands.add_parser("export", help="write finished runs to ARCHIVE")
    export_parser.add_argument("archive", help=f"file to write ({', '.join(SUFFIXES)})")
    export_parser.add_argument("--only", nargs="+", metavar="NAME",
                               help="run names (koch) or folder names (koch-<key>)")
    import_parser = commands.add_parser("import", help="verify ARCHIVE, then add its runs")
    import_parser.add_argument("archive", help="a file written by export")
    for command in (export_parser, import_parser):
        command.add_argument("--runs-dir", help=f"default: ${paths.RUNS_DIR_ENV} or data/runs")
    args = parser.parse_args(argv)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            if args.command == "export":
                export_runs(args.archive, args.only, args.runs_dir)
            else:
                import_runs(args.archive, args.runs_dir)
        except RunsArchiveError as error:
            print(f"error: {error}", file=sys.stderr)
            return 2
        finally:
            for warning in caught:
                if issubclass(warning.category, UserWarning):
                    print(f"warning: {warning.message}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
