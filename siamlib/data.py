"""Getting LFW-a onto this machine, and knowing for sure that all of it arrived.

Every notebook starts from the same question: is the data set here, complete? ``fetch`` answers
it once and leaves a ``.complete`` marker, so later calls return at once. Whatever the source (a
zip or folder a course hands out, a folder of person folders, a web mirror, the registry's own
addresses), the finished folder looks the same::

    <data_dir>/lfw-a/
        .complete              JSON: counts, source, date, and each file's size and sha256;
                               written last, only after every check passed
        images/<Person>/<Person>_0001.jpg
        pairsDevTrain.txt      View 1: development
        pairsDevTest.txt
        pairs.txt              View 2: the ten-fold benchmark

The folder is built aside and moved into place once checked (``files.staged``), so an
interrupted run never passes for a finished one. Downloads are pooch's, checked against the
registry's SHA-256. A damaged folder is rebuilt from its source and must come back exactly as
recorded. Folders siamlib did not make are never deleted. From a terminal, ``python -m
siamlib.data fetch|verify`` prints what went wrong and what to do, and exits with status 2.
"""

from __future__ import annotations

import argparse
import errno
import json
import os
import shutil
import sys
import urllib.parse
import zipfile
import zlib
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pooch
import requests

from siamlib import files, pairs, paths

SOURCE_ENV = "SIAMLIB_LFW_SOURCE"
IMAGES = "images"
MARKER = ".complete"


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
    urls: tuple[str, ...] = ()
    browser_url: str | None = None


@dataclass(frozen=True)
class DatasetSpec:
    """What a finished data set holds (``archive``: the zip of person folders), so that
    "complete" means the same on every machine."""

    name: str
    archive: RemoteFile
    pair_files: tuple[RemoteFile, ...]
    num_people: int
    num_images: int


_LFW_A_DRIVE_ID = "1p1wjaqpTh_5RHfJu4vUh8JJCdKwYMHCP"
_LFW_SITE = "vis-www.cs.umass.edu/lfw"
_LFW_PAIR_FILES = {  # View 1 (development), then View 2 (the ten-fold benchmark)
    "pairsDevTrain.txt": "1d454dada7dfeca0e7eab6f65dc4e97a6312d44cf142207be28d688be92aabfa",
    "pairsDevTest.txt": "7cb06600ea8b2814ac26e946201cdb304296262aad67d046a16a7ec85d0ff87c",
    "pairs.txt": "ea42330c62c92989f9d7c03237ed5d591365e89b3e649747777b70e692dc1592",
}
LFW_A = DatasetSpec(
    name="lfw-a",
    archive=RemoteFile(
        "lfw2.zip", "90d45fb01b4a2940d445974900eaa21d4bb302b20fbbb2353a5709d79db5d962",
        (f"https://drive.usercontent.google.com/download?id={_LFW_A_DRIVE_ID}"
         "&export=download&confirm=t",
         f"https://drive.google.com/uc?export=download&id={_LFW_A_DRIVE_ID}&confirm=t"),
        browser_url=f"https://drive.google.com/file/d/{_LFW_A_DRIVE_ID}/view"),
    pair_files=tuple(RemoteFile(name, sha256, (f"http://{_LFW_SITE}/{name}",
                                               f"https://{_LFW_SITE}/{name}"))
                     for name, sha256 in _LFW_PAIR_FILES.items()),
    num_people=5_749,
    num_images=13_233,
)


def dataset_dir(data_dir: str | os.PathLike | None = None, spec: DatasetSpec = LFW_A) -> Path:
    """Where the finished data set lives (``<data_dir>/<spec.name>``), fetched or not."""
    return (Path(data_dir).expanduser() if data_dir is not None else paths.data_dir()) / spec.name


def _some(names: list[str]) -> str:
    """The first five of many names, so that one message stays readable."""
    return "; ".join(names[:5]) + (f" and {len(names) - 5:,} more" if len(names) > 5 else "")


def _bullets(lines: list[str]) -> str:
    return "\n".join(f"  - {line}" for line in lines)


def _file_list(spec: DatasetSpec) -> str:
    return ", ".join(remote.name for remote in (spec.archive, *spec.pair_files))


def verify(
    dataset_dir: str | os.PathLike, spec: DatasetSpec = LFW_A, deep: bool = False
) -> dict[str, int]:
    """Check a data set folder, so a partial copy is caught before training on it; ``deep``
    compares every file's SHA-256 with the marker's (reads every byte). Returns the counts:
    ``people``, ``images``, ``other_files`` (skipped entries) and ``pairs``."""
    folder = Path(dataset_dir)
    if not folder.is_dir():
        raise DataError(f"{folder} does not exist: run python -m siamlib.data fetch first.")
    counts, problems = _inspect(folder, spec)
    if damage := _damaged(folder, deep):
        problems.append(f"{len(damage):,} file(s) differ from what fetch recorded in {MARKER}: "
                        + _some(damage))
    if problems:
        raise DataError(f"{folder} is not a complete copy of {spec.name}:\n{_bullets(problems)}\n"
                        "To repair it, run python -m siamlib.data fetch [--source PATH]"
                        f"{' --deep' * deep}: it takes the data set again from its source.")
    return counts


def _inspect(folder: Path, spec: DatasetSpec) -> tuple[dict[str, int], list[str]]:
    """Counts and everything wrong, so that one error reports all problems at once."""
    try:
        images, skipped = pairs.scan_identity_folder(folder / IMAGES)
    except (OSError, ValueError) as error:
        return {}, [f"no usable {IMAGES}/ folder of person folders in {folder}: {error}"]
    counts = {"people": int(images["name"].nunique()), "images": len(images),
              "other_files": sum(map(len, skipped.values())), "pairs": 0}
    problems = [f"expected {want:,} {what}, found {counts[what]:,}"
                for what, want in (("people", spec.num_people), ("images", spec.num_images))
                if counts[what] != want]
    for remote in spec.pair_files:
        try:
            if problem := _pair_file_problem(folder / remote.name, remote):
                raise DataError(problem)
            wanted = pairs.read_pairs(folder / remote.name, folder / IMAGES)
        except (OSError, ValueError, DataError) as error:
            problems.append(f"pair file {remote.name} cannot be used: {error}")
            continue
        counts["pairs"] += len(wanted)
        named = set(wanted["path_a"]) | set(wanted["path_b"])
        missing = sorted(str(Path(p).relative_to(folder)) for p in named if not Path(p).is_file())
        if missing:
            problems.append(f"{len(missing):,} image(s) named in {remote.name} missing: "
                            + _some(missing))
    return counts, problems


def _pair_file_problem(path: Path, remote: RemoteFile) -> str | None:
    """A pair file must be the registry's to the byte: the pair files *are* the protocol
    (which is also why LFW run keys need not hash them)."""
    if not path.is_file():
        return f"{path} is missing"
    if (found := files.sha256_of(path)) != remote.sha256:
        return (f"{path} is not the original {remote.name} (sha256 {found[:12]}..., the "
                f"registry's is {remote.sha256[:12]}...); an edited pair file changes the "
                "benchmark. Fetch with the original, or without it (it is then downloaded).")
    return None


def read_marker(folder: str | os.PathLike) -> dict:
    """The counts, source and date a finished data set was made with."""
    marker = Path(folder) / MARKER
    try:
        content = json.loads(marker.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        content = None
    if not isinstance(content, dict):
        raise DataError(f"{marker} is damaged (not the JSON siamlib writes). Delete it and run "
                        "python -m siamlib.data fetch again: the folder is then checked and "
                        "adopted if complete; nothing else is deleted.")
    return content


def _recorded(folder: Path) -> dict[str, list] | None:
    """What the marker promises: relative path -> [size, sha256]; None without such a list."""
    recorded = read_marker(folder).get("files") if (folder / MARKER).is_file() else None
    return recorded if isinstance(recorded, dict) else None


def _damaged(folder: Path, deep: bool) -> list[str]:
    """The recorded files that are missing or changed; one stat each, ``deep``: SHA-256 too."""
    recorded = _recorded(folder) or {}
    if deep:
        return files.damaged(folder, {name: sha256 for name, (_, sha256) in recorded.items()})
    damage = []
    for name, (size, _) in recorded.items():
        found = (folder / name).stat().st_size if (folder / name).is_file() else None
        if found != size:
            damage.append(f"{name} (missing)" if found is None
                          else f"{name} ({found:,} bytes, fetched with {size:,})")
    return damage


def _write_marker(folder: Path, counts: dict[str, int], source: str, spec: DatasetSpec) -> None:
    """Records the images and pair files (stray files may come and go) with size and SHA-256."""
    images = pairs.scan_identity_folder(folder / IMAGES)[0]["path"]
    kept = [*map(Path, images), *(folder / remote.name for remote in spec.pair_files)]
    recorded = {name: [(folder / name).stat().st_size, sha256]
                for name, sha256 in files.checksums(folder, kept).items()}
    marker = {**counts, "source": source,
              "completed": datetime.now(UTC).isoformat(timespec="seconds"), "files": recorded}
    with files.staged(folder / MARKER, folder=False) as part:
        part.write_text(json.dumps(marker, indent=1) + "\n", encoding="utf-8")


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
    stat per file; ``deep``: every byte) and rebuilt when damaged; a missing or edited pair
    file is replaced by the registry's. Raises DataError, with what to do, when it cannot.
    """
    target = dataset_dir(data_dir, spec)
    source = source if source is not None else os.environ.get(SOURCE_ENV) or None
    if _finished(target, spec, deep):
        return target  # nothing is written: a read-only shared copy works as it is
    root = target.parent
    try:
        root.mkdir(parents=True, exist_ok=True)
        with files.waiting_lock(root / f".{spec.name}.lock", f"fetching {spec.name} into {root}"):
            if not _finished(target, spec, deep):  # the process we waited for may have done it
                _build(source, target, spec, progress, deep)
    except OSError as error:
        if error.errno in (errno.ENOSPC, errno.EDQUOT):
            raise DataError(f"The disk holding {root} is full ({error.strerror}); nothing "
                            "half-written was kept. Free some space or fetch into another "
                            f"folder (--data-dir or ${paths.DATA_DIR_ENV}).") from None
        if isinstance(error, PermissionError) or error.errno == errno.EROFS:
            raise DataError(f"{root} is not writable ({error.strerror}) and {spec.name} there is "
                            f"not ready: set ${paths.DATA_DIR_ENV} (or --data-dir) to a folder "
                            "you can write, or ask its owner to run fetch once.") from None
        raise
    return target


def _finished(target: Path, spec: DatasetSpec, deep: bool) -> bool:
    """Whether the folder is done and intact; reads, never writes."""
    return not (_recorded(target) is None or _damaged(target, deep) or any(
        _pair_file_problem(target / remote.name, remote) for remote in spec.pair_files))


def _build(source, target: Path, spec: DatasetSpec, progress: bool, deep: bool) -> None:
    """The work of ``fetch``, by one process at a time (the caller holds the lock).

    A damaged folder, or one missing a pair file, is built again whole: from ``source``, else
    the source it was made from, else the registry's addresses (downloads stay cached). The
    rebuild must hold every recorded file unchanged, so a repair never swaps in other images.
    """
    for leftover in target.parent.glob(f".tmp-{target.name}-*"):  # our own, from a killed run
        shutil.rmtree(leftover, ignore_errors=True)
    recorded = _recorded(target)
    if target.exists() and recorded is None:
        counts, problems = _inspect(target, spec)  # a hand copy: check, never delete
        if problems:
            raise DataError(f"{target} has no {MARKER} marker (an earlier fetch was interrupted, "
                            f"or it was copied by hand) and is incomplete:\n{_bullets(problems)}"
                            f"\nNothing was deleted. Move or delete {target} yourself, then run "
                            "python -m siamlib.data fetch --source PATH again.")
        return _write_marker(target, counts, "found in place", spec)
    repair = "" if recorded is None else _some(_damaged(target, deep)) or "a pair file"
    if repair and source is None and Path(made_from := str(read_marker(target)["source"])).exists():
        source = made_from
    try:
        description, faces, pair_files = _gather(source, spec, target.parent, progress)
    except DataError as error:
        raise DataError(f"{target} needs repair ({repair}) and cannot be rebuilt: {error}"
                        if repair else str(error)) from None
    old = target.with_name(f".tmp-{target.name}-old")
    with files.staged(target) as staging:
        if faces.is_dir():
            shutil.copytree(faces, staging / IMAGES,
                            ignore=lambda _, names: filter(pairs.is_junk, names))
        else:
            _unzip_people(faces, staging)
        for name, path in pair_files.items():
            shutil.copyfile(path, staging / name)
        counts, problems = _inspect(staging, spec)
        if problems:
            raise DataError(f"{description} does not hold a complete copy of {spec.name}:\n"
                            f"{_bullets(problems)}\nGet a fresh copy of {_file_list(spec)} and "
                            "fetch again with it.")
        if repair and (still := files.damaged(staging, {
                name: sha256 for name, (_, sha256) in recorded.items()})):
            raise DataError(f"{target} needs repair ({repair}), but {description} does not "
                            f"hold the files it was made from: {_some(still)}.\nRun fetch "
                            f"--source with the copy it was made from, or move {target} aside.")
        _write_marker(staging, counts, description, spec)
        if repair:
            target.rename(old)  # the rebuild takes its place as the block ends
    if repair:
        shutil.rmtree(old, ignore_errors=True)
        print(f"{target} rebuilt from {description} ({repair})", file=sys.stderr)


def _gather(source, spec: DatasetSpec, root: Path, progress: bool):
    """The source's name (for the marker), its faces (a zip, or the folder of person folders)
    and the pair files, each taken from a local source where it holds them (and checked
    against the registry), else downloaded: from an http(s) source first, then the registry's
    addresses. The pair files come first, so a missing one fails before a large download."""
    text = os.fspath(source) if source is not None else ""
    mirrors = (text,) if text.startswith(("http://", "https://")) else ()
    description, faces, local = text or f"the download addresses of {spec.name}", None, []
    if text and not mirrors:
        path = Path(text).expanduser().resolve()
        if (path / spec.archive.name).is_file():
            path = path / spec.archive.name
        if path.is_file():
            faces, local = path, [path.parent / remote.name for remote in spec.pair_files]
        elif not path.is_dir():
            raise DataError(f"The source {text} does not exist. Give a zip of {spec.name}, a "
                            f"folder holding {_file_list(spec)}, a folder of person folders, or "
                            "an http(s) URL of such a folder.")
        elif (faces := _people_folder(path)) is None:
            raise DataError(f"{path} holds neither {spec.archive.name} nor person folders "
                            "(<Name>/<Name>_0001.jpg, at any depth). Point --source at the zip, "
                            "the folder holding it, or the folder of folders.")
        else:
            local = _visible_files(path)  # a pair file may sit anywhere under the folder
        description = str(path)
    # The shallowest copy comes first in ``local``, so last in reverse: it is the one kept.
    found = {file.name: file for file in reversed(local) if file.is_file()}
    pair_files = {}
    for remote in spec.pair_files:
        if remote.name not in found:
            pair_files[remote.name] = _download(remote, spec, root, mirrors, progress)
        elif problem := _pair_file_problem(found[remote.name], remote):
            raise DataError(problem)
        else:
            pair_files[remote.name] = found[remote.name]
    return description, faces or _download(spec.archive, spec, root, mirrors, progress), pair_files


def _visible_files(folder: Path) -> list[Path]:
    """Every file under ``folder`` but hidden ones and macOS metadata, the shallowest first."""
    return sorted((path for path in folder.rglob("*") if path.is_file()
                   and not any(map(pairs.is_junk, path.relative_to(folder).parts))),
                  key=lambda path: (len(path.parts), path))


def _people_folder(folder: Path) -> Path | None:
    """The folder of person folders: the one holding the most images one level down.

    Counting beats taking the shallowest, so a stray picture near the top of a course copy
    (``lfw2/lfw2/<Name>/...`` beside ``cover.jpg``) cannot win.
    """
    per_root = Counter(path.parent.parent for path in _visible_files(folder)
                       if pairs.is_image(path) and path.parent != folder)
    return min(per_root, key=lambda root: (-per_root[root], len(root.parts))) if per_root else None


def _unzip_people(zip_path: Path, staging: Path) -> None:
    """Unzip into ``staging``, then keep the folder of person folders, wherever it sat in the
    zip, as ``staging/images``. zipfile drops ``..`` and a leading ``/`` from member names, so
    a member named to escape (zip slip) lands inside ``staging`` like any other."""
    unzipped = staging / "unzipped"
    try:
        pooch.Unzip(extract_dir=str(unzipped))(str(zip_path), "download", None)
    except (zipfile.BadZipFile, EOFError, zlib.error) as error:
        raise DataError(f"The zip {zip_path} is damaged or truncated ({error}). Download it again "
                        "and run fetch again with the new copy.") from None
    if (people := _people_folder(unzipped)) is None:
        raise DataError(f"{zip_path} holds no person folders (<Name>/<Name>_0001.jpg).")
    people.rename(staging / IMAGES)
    shutil.rmtree(unzipped, ignore_errors=True)  # the rest of the zip; gone already if it was all


def _download(remote: RemoteFile, spec: DatasetSpec, root: Path, mirrors, progress: bool) -> Path:
    """The file from the download cache or the first address that serves it intact (pooch
    checks the SHA-256 before moving a download into place)."""
    failures = []
    for url in [*(f"{base.rstrip('/')}/{urllib.parse.quote(remote.name)}" for base in mirrors),
                *remote.urls]:
        try:
            return Path(pooch.retrieve(
                url, f"sha256:{remote.sha256}", fname=remote.name, path=root / "downloads",
                downloader=pooch.HTTPDownloader(progressbar=progress, timeout=60)))
        except requests.HTTPError as error:
            failures.append(f"{url}: HTTP {error.response.status_code} {error.response.reason}")
        except ValueError:  # pooch's SHA-256 check
            failures.append(f"{url}: checksum mismatch (the wrong file, or a quota or sign-in "
                            "page)")
        except OSError as error:  # requests' connection errors are OSErrors too
            if error.errno in (errno.ENOSPC, errno.EDQUOT):
                raise  # no other address helps; fetch reports the full disk
            failures.append(f"{url}: {error}")
        print(f"{remote.name}: {failures[-1]}", file=sys.stderr)
    tried = f"every address failed:\n{_bullets(failures)}" if failures else "no address is known."
    raise DataError(
        f"Could not download {remote.name}; {tried}\nWhat to do: download {remote.name} by hand "
        f"from {remote.browser_url or (remote.urls or ['wherever you got the rest'])[0]}, put it "
        f"in one folder with the other files of {spec.name} ({_file_list(spec)}), then run\n"
        f"    python -m siamlib.data fetch --source FOLDER\nor set {SOURCE_ENV}=FOLDER before "
        "running the notebooks.")


def main(argv=None) -> int:
    """``python -m siamlib.data fetch|verify``: one line of summary, or the problem and status 2."""
    parser = argparse.ArgumentParser(prog="python -m siamlib.data",
                                     description=f"Get and check {LFW_A.name}.")
    commands = parser.add_subparsers(dest="command", required=True)
    fetch_parser = commands.add_parser("fetch", help="make the data set ready (idempotent)")
    fetch_parser.add_argument("--source", help="zip, folder or http(s) URL to take the data from "
                              f"(default: ${SOURCE_ENV}, else the registry's addresses)")
    verify_parser = commands.add_parser("verify", help="check a finished data set")
    for command in (fetch_parser, verify_parser):
        command.add_argument("--data-dir", help=f"default: ${paths.DATA_DIR_ENV} or data/")
        command.add_argument("--deep", action="store_true",
                             help="also compare every file's SHA-256 with what fetch recorded")
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
    print(f"{LFW_A.name} ready at {folder}: {counts['people']:,} people, "
          f"{counts['images']:,} images, {counts['pairs']:,} pairs with all images present")
    return 0


if __name__ == "__main__":
    sys.exit(main())
