"""Pairs of face images, read from LFW pair files or generated from identity folders, as one
DataFrame of ``PAIR_COLUMNS`` (``label`` 1 = same person), and split by person, never by pair."""

from __future__ import annotations

import sys
import unicodedata
from collections import defaultdict
from itertools import combinations
from pathlib import Path, PurePath

import numpy as np
import pandas as pd

from siamlib import DIFFERENT, SAME
from siamlib.stats import person_clusters

PAIR_COLUMNS = ["name_a", "index_a", "name_b", "index_b", "path_a", "path_b", "label", "fold"]
# OpenCV's still formats (GIF since 4.11; OpenEXR off by default), by suffix: decoding is slow.
IMAGE_SUFFIXES = frozenset(".avif .bmp .dib .gif .hdr .jp2 .jpe .jpeg .jpg .pbm .pfm .pgm .pic "
                           ".png .pnm .ppm .pxm .ras .sr .tif .tiff .webp".split())


class PairFileError(ValueError):
    """A pair file not in LFW's format; the message names the file and line."""


def is_image(name: str | PurePath) -> bool:
    return PurePath(name).suffix.lower() in IMAGE_SUFFIXES


def is_junk(name: str) -> bool:
    """Hidden entries and macOS zip metadata (``__MACOSX/``, ``._x.jpg``): never faces."""
    return name.startswith(".") or name == "__MACOSX"


def read_pairs(pair_file: str | Path, images_dir: str | Path) -> pd.DataFrame:
    """View 1 (``N``, N ``name i j`` then N ``name1 i name2 j`` lines) or 2 (``folds N``, that per
    fold); a count that misses the lines is a truncated or concatenated file, caught here."""
    data = Path(pair_file).read_bytes()
    try:
        lines = data.decode("utf-8-sig").rstrip().splitlines()  # -sig: Windows' byte-order mark
    except UnicodeDecodeError as error:
        raise PairFileError(f"{pair_file}: not a UTF-8 text file (byte {error.start} is "
                            f"{data[error.start]:#04x}); save it again as UTF-8, not UTF-16 or "
                            "Latin-1 (or download the original)") from None
    if not lines:
        raise PairFileError(f"{pair_file}: the file is empty")
    if blank := next((n for n, line in enumerate(lines[1:], start=2) if not line.strip()), 0):
        raise PairFileError(f"{pair_file}, line {blank}: a blank line among the pairs; delete it")
    header = lines[0].split()
    if not 1 <= len(header) <= 2 or not all(h.isdigit() for h in header):
        raise PairFileError(f"{pair_file}, line 1: expected a header 'N' (View 1) or 'folds N' "
                            f"(View 2), got {lines[0]!r}")
    folds, per_class = (1, int(header[0])) if len(header) == 1 else map(int, header)
    if len(lines) - 1 != folds * 2 * per_class:
        raise PairFileError(f"{pair_file}: the header promises {folds * 2 * per_class} pairs, the "
                            f"file has {len(lines) - 1} pair lines")
    rows = []
    for number, line in enumerate(lines[1:], start=2):
        fold, position = divmod(number - 2, 2 * per_class)
        same, fields = position < per_class, line.split()
        shape = "same-person line 'name i j'" if same else "different-person line 'name1 i name2 j'"
        if len(fields) != (3 if same else 4) or not (fields[1] + fields[-1]).isdigit():
            raise PairFileError(f"{pair_file}, line {number}: expected a {shape} with integer "
                                f"image numbers, got {line!r}")
        name_a, index_a, name_b, index_b = [*fields[:2], *fields[::2]] if same else fields
        a, b = (name_a, int(index_a)), (name_b, int(index_b))
        paths = [str(Path(images_dir, name, f"{name}_{index:04d}.jpg")) for name, index in (a, b)]
        rows.append((*a, *b, *paths, SAME if same else DIFFERENT,
                     fold + 1 if folds > 1 else 0))  # View 2's folds 1..10 as LFW numbers them
    return pd.DataFrame(rows, columns=PAIR_COLUMNS)


def read_view2(pair_file: str | Path, images_dir: str | Path) -> pd.DataFrame:
    """Refused if a person is in two folds: each fold is tested by a model trained on the others."""
    frame = read_pairs(pair_file, images_dir)
    if frame["fold"].nunique() < 2:
        raise PairFileError(f"{pair_file}: a View 2 file has two or more folds (header 'folds N')")
    people = fold_people(frame)
    clashes = sorted(f"{person} (folds {a} and {b})" for a, b in combinations(people, 2)
                     for person in people[a] & people[b])
    if clashes:
        raise PairFileError(f"{pair_file}: {len(clashes)} people appear in more than one fold: "
                            + ", ".join(clashes[:5]))
    return frame


def fold_people(frame: pd.DataFrame) -> dict[int, set[str]]:
    return {fold: pair_people(group) for fold, group in frame.groupby("fold", sort=True)}


def fold_overlap(frame: pd.DataFrame) -> pd.DataFrame:
    people = fold_people(frame)
    counts = [[len(people[a] & people[b]) for b in people] for a in people]
    return pd.DataFrame(counts, index=pd.Index(list(people), name="fold"), columns=list(people))


def scan_identity_folder(root: str | Path) -> tuple[pd.DataFrame, dict[str, list[str]]]:
    """Images (``name, index, path``), and reason -> entries skipped, so nothing is lost unseen."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"{root} is not a folder of identity folders")
    rows, skipped, people = [], defaultdict(list), {}
    for person in sorted(root.iterdir()):
        if why := ("hidden or macOS metadata" if is_junk(person.name)
                   else None if person.is_dir() else "not in a person folder"):
            skipped[why].append(person.name)
            continue
        for key in (unicodedata.normalize("NFC", person.name), person.resolve()):
            if (first := people.setdefault(key, person)) is not person:  # ascii: NFC, NFD differ
                raise ValueError(f"{root}: the folders {ascii(first.name)} and {ascii(person.name)}"
                                 " are one person (one name in other code points, or a link); "
                                 "keep one of them")
        photos = []
        for file in sorted(person.rglob("*")):
            relative = file.relative_to(root)
            if any(map(is_junk, relative.parts)):
                skipped["hidden or macOS metadata"].append(relative.as_posix())
            elif file.is_file() and is_image(file):
                photos.append(file)
            elif file.is_file():
                skipped["not an image format OpenCV reads"].append(relative.as_posix())
        if not photos:
            skipped["person folder without images"].append(person.name)
        rows += [(person.name, index, str(file)) for index, file in enumerate(photos, start=1)]
    return pd.DataFrame(rows, columns=["name", "index", "path"]), dict(skipped)


def identity_images(root: str | Path) -> pd.DataFrame:
    images, skipped = scan_identity_folder(root)
    for reason, names in skipped.items():
        more = f" and {len(names) - 3} more" if len(names) > 3 else ""
        print(f"{root}: skipped {len(names)} ({reason}): {', '.join(names[:3])}{more}",
              file=sys.stderr)
    if images.empty:
        raise FileNotFoundError(f"{root} holds no <identity>/<image> files that OpenCV reads")
    return images


def make_pairs(images: pd.DataFrame, num_pairs: int, seed: int = 0) -> pd.DataFrame:
    """Without repeats, so a small data set does not silently fill its quota with duplicates."""
    rng = np.random.default_rng(seed)
    by_person = {name: group for name, group in images.groupby("name", sort=True)}
    names = sorted(by_person)
    repeat_people = [name for name in names if len(by_person[name]) >= 2]
    if not repeat_people or len(names) < 2:
        raise ValueError("need at least one person with two images and at least two people")
    rows = []
    for count, label in ((num_pairs - num_pairs // 2, SAME), (num_pairs // 2, DIFFERENT)):
        seen = set()
        for _ in range(count * 50):  # tries before deciding the images allow no more pairs
            if len(seen) == count:
                break
            if label == SAME:
                group = by_person[repeat_people[rng.integers(len(repeat_people))]]
                a, b = group.iloc[rng.choice(len(group), size=2, replace=False)].itertuples()
            else:
                first, second = (by_person[names[i]] for i in rng.choice(len(names), 2, False))
                a, b = (next(x.iloc[[rng.integers(len(x))]].itertuples()) for x in (first, second))
            if (key := frozenset([(a.name, a.index), (b.name, b.index)])) not in seen:
                seen.add(key)
                rows.append((a.name, a.index, b.name, b.index, a.path, b.path, label, 0))
        if len(seen) < count:
            raise ValueError(f"the images only allow {len(seen)} distinct pairs, {count} asked")
    return pd.DataFrame(rows, columns=PAIR_COLUMNS)


def pair_people(pairs: pd.DataFrame) -> set[str]:
    return set(pairs["name_a"]) | set(pairs["name_b"])


def person_overlap(first: pd.DataFrame, second: pd.DataFrame) -> dict:
    """How many people two pair sets share; 0 is the only honest answer for train vs. eval."""
    people_first, people_second = pair_people(first), pair_people(second)
    shared = people_first & people_second
    return {"people_first": len(people_first), "people_second": len(people_second),
            "shared_people": len(shared), "shared_names": sorted(shared)}


def person_disjoint_split(pairs: pd.DataFrame, val_fraction: float = 0.2,
                          seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    """No person on both sides, losing no pair (a person trained on makes validation measure
    memory, not one-shot verification): whole clusters of people linked by pairs move."""
    if not 0 < val_fraction < 1:
        raise ValueError(f"val_fraction must lie strictly between 0 and 1, got {val_fraction}")
    cluster = pd.Series(person_clusters(pairs["name_a"], pairs["name_b"]), index=pairs.index)
    sizes = cluster.value_counts()
    order = np.random.default_rng(seed).permutation(np.sort(sizes.index.to_numpy()))
    # The clusters whose running total first reaches the target, the one crossing it included.
    taken = np.cumsum(sizes.loc[order].to_numpy())
    in_val = cluster.isin(order[: np.searchsorted(taken, val_fraction * len(pairs)) + 1]).to_numpy()
    if in_val.all() or not in_val.any():
        raise ValueError("these pairs form too few person groups to split by person")
    return pairs[~in_val].reset_index(drop=True), pairs[in_val].reset_index(drop=True)
