"""Getting LFW-a onto this machine, knowing all of it arrived: ``fetch`` builds it aside and
moves it into place once checked (an interrupted run never passes for finished), checks it on
every call, rebuilds what it made when that fails, and never deletes a folder it did not make."""

import argparse
import errno
import json
import os
import shutil
import sys
import zipfile
import zlib
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pooch

from siamlib import files, pairs, paths

SOURCE_ENV = "SIAMLIB_LFW_SOURCE"
IMAGES = "images"
MARKER = ".complete"


class DataError(RuntimeError):
    """The data set is missing, incomplete or unreachable; the message says how to fix it."""


@dataclass(frozen=True)
class RemoteFile:
    name: str
    sha256: str
    urls: tuple[str, ...] = ()  # tried in turn
    browser_url: str | None = None  # for a person when they all fail (Drive's, when popular)


@dataclass(frozen=True)
class DatasetSpec:  # what a finished data set holds, so "complete" means one thing everywhere
    name: str
    archive: RemoteFile  # the zip of person folders
    pair_files: tuple[RemoteFile, ...]
    num_people: int
    num_images: int


_LFW_A_DRIVE_ID = "1p1wjaqpTh_5RHfJu4vUh8JJCdKwYMHCP"
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
    pair_files=tuple(RemoteFile(name, sha256, tuple(f"{scheme}://vis-www.cs.umass.edu/lfw/{name}"
                                                    for scheme in ("http", "https")))
                     for name, sha256 in _LFW_PAIR_FILES.items()),
    num_people=5_749, num_images=13_233,
)


def dataset_dir(data_dir: str | os.PathLike | None = None, spec: DatasetSpec = LFW_A) -> Path:
    return (Path(data_dir).expanduser() if data_dir is not None else paths.data_dir()) / spec.name


def _bullets(lines: list[str]) -> str:
    return "\n".join(f"  - {line}" for line in lines)


def verify(dataset_dir: str | os.PathLike, spec: DatasetSpec = LFW_A) -> dict[str, int]:
    """Check a data set folder; returns ``people``, ``images``, ``other_files``, ``pairs``."""
    counts, problems = _inspect(Path(dataset_dir), spec)
    if problems:
        raise DataError(f"{dataset_dir} is not a complete copy of {spec.name}:\n"
                        f"{_bullets(problems)}\nRun python -m siamlib.data fetch [--source PATH].")
    return counts


def _inspect(folder: Path, spec: DatasetSpec) -> tuple[dict[str, int], list[str]]:
    """Counts and everything wrong, so that one error reports all problems at once."""
    try:
        images, skipped = pairs.scan_identity_folder(folder / IMAGES)
    except (OSError, ValueError) as error:
        return {}, [f"no usable {IMAGES}/ folder of person folders in {folder}: {error}"]
    counts = {"people": int(images["name"].nunique()), "images": len(images),
              "other_files": sum(map(len, skipped.values())), "pairs": 0}
    problems = [f"expected {want:,} {what}, found {counts[what]:,}" for what, want in
                (("people", spec.num_people), ("images", spec.num_images)) if counts[what] != want]
    for remote in spec.pair_files:
        try:
            _check_pair_file(folder / remote.name, remote)
            wanted = pairs.read_pairs(folder / remote.name, folder / IMAGES)
        except (OSError, ValueError, DataError) as error:
            problems.append(f"pair file {remote.name} cannot be used: {error}")
            continue
        counts["pairs"] += len(wanted)
        if missing := sorted(str(Path(p).relative_to(folder))
                             for p in {*wanted.path_a, *wanted.path_b} if not Path(p).is_file()):
            problems.append(f"{len(missing):,} image(s) named in {remote.name} missing: "
                            + "; ".join(missing[:5]))
    return counts, problems


def _check_pair_file(path: Path, remote: RemoteFile) -> None:
    """The pair files *are* the protocol (which is why LFW run keys need not hash them)."""
    if (found := pooch.file_hash(str(path))) != remote.sha256:
        raise DataError(f"{path} is not the original {remote.name} (sha256 {found[:12]}..., "
                        f"LFW's {remote.sha256[:12]}...): an edited pair file changes the "
                        "benchmark. Fetch with the original, or without it (then downloaded).")


def fetch(source: str | os.PathLike | None = None, data_dir: str | os.PathLike | None = None,
          spec: DatasetSpec = LFW_A, progress: bool = True) -> Path:
    """``source`` (else ``$SIAMLIB_LFW_SOURCE``, else the registry's addresses): a zip, a folder
    holding it and the pair files, person folders, or the http(s) URL of a folder serving them."""
    target = dataset_dir(data_dir, spec)
    if not _inspect(target, spec)[1]:
        return target  # nothing is written: a read-only or hand-made copy works as it is
    root = target.parent
    try:
        root.mkdir(parents=True, exist_ok=True)
        with files.waiting_lock(root / f".{spec.name}.lock", f"fetching {spec.name} into {root}"):
            _build(source, target, spec, progress)
    except OSError as error:
        if error.errno in (errno.ENOSPC, errno.EDQUOT):
            raise DataError(f"The disk holding {root} is full ({error.strerror}); nothing half-"
                            f"written was kept. Free space or set --data-dir.") from None
        if isinstance(error, PermissionError) or error.errno == errno.EROFS:
            raise DataError(f"{root} is not writable ({error.strerror}) and {spec.name} there is "
                            f"not ready: set ${paths.DATA_DIR_ENV} (or --data-dir).") from None
        raise
    return target


def _build(source, target: Path, spec: DatasetSpec, progress: bool) -> None:
    """Pair files come first: a missing one fails before a large download."""
    for leftover in target.parent.glob(f".tmp-{target.name}-*"):  # our own, from a killed run
        shutil.rmtree(leftover, ignore_errors=True)
    if not (problems := _inspect(target, spec)[1]):
        return  # the process we waited for made it
    try:
        made_from = str(json.loads((target / MARKER).read_bytes())["source"])
    except (OSError, ValueError, TypeError, KeyError):  # no marker, or not fetch's
        made_from = None
    if target.exists() and made_from is None:  # a hand copy, perhaps: never deleted
        raise DataError(f"{target} has no usable {MARKER} marker and is incomplete:\n"
                        f"{_bullets(problems)}\nNothing was deleted: move it aside, then fetch.")
    if made_from is not None:
        print(f"{target} needs repair; taking it again from its source:\n{_bullets(problems)}",
              file=sys.stderr)
        source = made_from if source is None and Path(made_from).exists() else source
    text = os.fspath(source or os.environ.get(SOURCE_ENV, ""))
    mirror = text if text.startswith(("http://", "https://")) else ""
    description, faces, search = text or f"the download addresses of {spec.name}", None, None
    if text and not mirror:
        path = Path(text).expanduser().resolve()
        if (path / spec.archive.name).is_file():
            path = path / spec.archive.name
        if path.is_file():
            faces, search = path, path.parent.glob
        elif faces := _people_folder(path):
            search = path.rglob  # a pair file may sit anywhere under the folder
        else:
            raise DataError(f"The source {path} does not exist or holds neither {spec.archive.name}"
                            " nor person folders (<Name>/<Name>_0001.jpg), nor is it a URL.")
        description = str(path)
    pair_files = {}
    for remote in spec.pair_files:
        if copy := search and min(search(remote.name), key=lambda f: len(f.parts), default=None):
            _check_pair_file(copy, remote)
        pair_files[remote.name] = copy or _download(remote, spec, target.parent, mirror, progress)
    faces = faces or _download(spec.archive, spec, target.parent, mirror, progress)
    old = target.with_name(f".tmp-{target.name}-old")  # the damaged folder, once replaced
    with files.staged(target) as staging:
        if faces.is_dir():
            shutil.copytree(faces, staging / IMAGES,
                            ignore=lambda _, names: set(filter(pairs.is_junk, names)))
        else:
            try:  # zipfile drops ".." and a leading "/" from names: nothing lands outside
                with zipfile.ZipFile(faces) as archive:
                    archive.extractall(staging / "unzipped")
            except (zipfile.BadZipFile, EOFError, zlib.error) as error:
                raise DataError(f"The zip {faces} is damaged or truncated ({error}). Download it "
                                "again and run fetch again with the new copy.") from None
            if people := _people_folder(staging / "unzipped"):
                people.rename(staging / IMAGES)
            shutil.rmtree(staging / "unzipped", ignore_errors=True)  # the rest of the zip
        for name, copy in pair_files.items():
            shutil.copyfile(copy, staging / name)
        counts, problems = _inspect(staging, spec)
        if problems:
            raise DataError(f"{description} does not hold a complete copy of {spec.name}:\n"
                            f"{_bullets(problems)}\nGet a fresh copy and fetch again with it.")
        marker = {**counts, "source": description,
                  "completed": datetime.now(UTC).isoformat(timespec="seconds")}
        (staging / MARKER).write_text(json.dumps(marker, indent=1) + "\n", encoding="utf-8")
        if target.exists():
            target.rename(old)  # the rebuild takes its place as the block ends
    shutil.rmtree(old, ignore_errors=True)


def _people_folder(folder: Path) -> Path | None:
    """The folder with most images one level down, so a stray ``lfw2/cover.jpg`` cannot win."""
    per_root = Counter(path.parent.parent for path in folder.rglob("*")
                       if pairs.is_image(path) and path.parent != folder
                       and not any(map(pairs.is_junk, path.relative_to(folder).parts)))
    return min(per_root, key=lambda root: (-per_root[root], len(root.parts))) if per_root else None


def _download(remote: RemoteFile, spec: DatasetSpec, root: Path, mirror: str,
              progress: bool) -> Path:
    failures = []
    for url in ([f"{mirror.rstrip('/')}/{remote.name}"] if mirror else []) + [*remote.urls]:
        try:
            return Path(pooch.retrieve(
                url, f"sha256:{remote.sha256}", fname=remote.name, path=root / "downloads",
                downloader=pooch.HTTPDownloader(progressbar=progress, timeout=60)))
        except ValueError:  # pooch's SHA-256 check
            failures.append(f"{url}: checksum mismatch (a wrong file, or a quota or sign-in page)")
        except OSError as error:  # requests' errors (HTTP 404, no connection) are OSErrors too
            if error.errno in (errno.ENOSPC, errno.EDQUOT):
                raise  # no other address helps; fetch reports the full disk
            failures.append(f"{url}: {error}")
        print(f"{remote.name}: {failures[-1]}", file=sys.stderr)
    page = remote.browser_url or next(iter(remote.urls), "a copy of it")
    raise DataError(f"Could not download {remote.name}:\n{_bullets(failures or ['no address'])}"
                    f"\nDownload it by hand from {page} into a folder with {spec.name}'s other "
                    f"files, then python -m siamlib.data fetch --source FOLDER (or ${SOURCE_ENV}).")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m siamlib.data")
    parser.add_argument("command", choices=["fetch", "verify"])
    parser.add_argument("--source", help=f"zip, folder or http(s) URL; default: ${SOURCE_ENV}")
    parser.add_argument("--data-dir", help=f"default: ${paths.DATA_DIR_ENV} or data/")
    args = parser.parse_args(argv)
    try:
        folder = (fetch(args.source, args.data_dir, LFW_A) if args.command == "fetch"
                  else dataset_dir(args.data_dir, LFW_A))
        counts = verify(folder, LFW_A)
    except DataError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(f"{LFW_A.name} ready at {folder}: {counts['people']:,} people, "
          f"{counts['images']:,} images, {counts['pairs']:,} pairs with all images present")
    return 0


if __name__ == "__main__":
    sys.exit(main())
