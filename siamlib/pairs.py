"""Pairs of face images: LFW pair files, pairs generated from any identity folders, and splits.

Every pair set in the workbook is one pandas DataFrame with the same columns (``PAIR_COLUMNS``),
whichever way it was made, so loaders, metrics and plots never care where pairs came from.
``label`` follows the convention in ``siamlib``: 1 = same person, 0 = different people.

Splits are by *person*, never by pair: a person whose face the network trained on must not
show up in validation, or validation accuracy measures memory instead of one-shot verification.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pandas as pd

from siamlib import DIFFERENT, SAME

PAIR_COLUMNS = ["name_a", "index_a", "name_b", "index_b", "path_a", "path_b", "label", "fold"]
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".pgm")


class PairFileError(ValueError):
    """A pair file that does not follow the LFW format; the message names the file and line."""


def lfw_image_path(images_dir: Path, name: str, index: int) -> Path:
    """LFW's naming scheme: ``<Name>/<Name>_<NNNN>.jpg``."""
    return Path(images_dir) / name / f"{name}_{index:04d}.jpg"


def read_pairs(pair_file: str | Path, images_dir: str | Path) -> pd.DataFrame:
    """Parse an LFW pair file into a DataFrame with resolved image paths.

    Both formats are accepted: View 1 (first line ``N``: N same-person lines ``name i j``, then N
    different-person lines ``name1 i name2 j``) and View 2 (first line ``folds N``: that block
    repeated once per fold). Column ``fold`` is 1..folds for View 2 and 0 for View 1. The
    header's count must agree with the lines, so a truncated or
    concatenated file is caught here rather than as a skewed label balance later.
    """
    pair_file = Path(pair_file)
    lines = _text_of(pair_file).splitlines()
    while lines and not lines[-1].strip():
        lines.pop()
    if not lines:
        raise PairFileError(f"{pair_file}: the file is empty")
    for number, line in enumerate(lines[1:], start=2):
        if not line.strip():
            raise PairFileError(
                f"{pair_file}, line {number}: a blank line among the pairs; delete it "
                "(only the end of the file may hold blank lines)"
            )
    header = lines[0].split()
    if len(header) == 1 and header[0].isdigit():
        folds, per_class = 1, int(header[0])
    elif len(header) == 2 and all(h.isdigit() for h in header):
        folds, per_class = int(header[0]), int(header[1])
    else:
        raise PairFileError(
            f"{pair_file}, line 1: expected a header 'N' (View 1) or 'folds N' (View 2), "
            f"got {lines[0]!r}"
        )
    expected = folds * 2 * per_class
    if len(lines) - 1 != expected:
        raise PairFileError(
            f"{pair_file}: the header promises {expected} pairs "
            f"({folds} fold(s) x {per_class} same + {per_class} different) "
            f"but the file has {len(lines) - 1} pair lines"
        )
    rows = []
    for offset, line in enumerate(lines[1:]):
        fold, position = divmod(offset, 2 * per_class)
        label = SAME if position < per_class else DIFFERENT
        fold = fold + 1 if folds > 1 else 0  # View 2's folds 1..10 as LFW numbers them
        rows.append((*_parse_pair_line(line, label, pair_file, offset + 2), label, fold))
    frame = pd.DataFrame(rows, columns=["name_a", "index_a", "name_b", "index_b", "label", "fold"])
    return _with_paths(frame, Path(images_dir))


def _text_of(pair_file: Path) -> str:
    """The file as text: UTF-8, with or without the byte-order mark some Windows editors add."""
    data = pair_file.read_bytes()
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise PairFileError(
            f"{pair_file}: the file is UTF-16 text; LFW pair files are plain ASCII/UTF-8. "
            "Save it again as UTF-8 (or download the original)."
        )
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise PairFileError(
            f"{pair_file}: not a UTF-8 text file (byte {error.start} is {data[error.start]:#04x}); "
            "LFW pair files are plain ASCII/UTF-8. Save it again as UTF-8 (or download the "
            "original)."
        ) from None


def read_view2(pair_file: str | Path, images_dir: str | Path) -> pd.DataFrame:
    """LFW View 2 (``pairs.txt``): ``read_pairs`` plus the check the protocol rests on.

    Each fold is the test set of one of the ten experiments and the other nine are its
    training data, so a person in two folds would be trained on and tested on. LFW built the
    folds person-disjoint; this refuses a file where they are not, naming who is shared.
    """
    frame = read_pairs(pair_file, images_dir)
    if frame["fold"].nunique() < 2:
        raise PairFileError(f"{pair_file}: a View 2 file has two or more folds (header 'folds N')")
    shared = fold_overlap(frame).to_numpy(copy=True)
    np.fill_diagonal(shared, 0)
    if shared.any():
        seen: dict[str, int] = {}
        clashes = set()
        for fold, people in fold_people(frame).items():
            clashes |= {f"{p} (folds {seen[p]} and {fold})" for p in people if p in seen}
            seen.update(dict.fromkeys(people, fold))
        raise PairFileError(
            f"{pair_file}: {len(clashes)} people appear in more than one fold, so a fold's test "
            f"people would be in its training folds: {', '.join(sorted(clashes)[:5])}"
        )
    return frame


def fold_people(frame: pd.DataFrame) -> dict[int, set[str]]:
    """The people of each fold (on either side of any of its pairs)."""
    return {fold: pair_people(group) for fold, group in frame.groupby("fold", sort=True)}


def fold_overlap(frame: pd.DataFrame) -> pd.DataFrame:
    """People shared by every two folds (diagonal: each fold's own people), folds as in the file."""
    people = fold_people(frame)
    folds = list(people)
    counts = [[len(people[a] & people[b]) for b in folds] for a in folds]
    return pd.DataFrame(counts, index=pd.Index(folds, name="fold"), columns=folds)


def _parse_pair_line(line: str, label: int, pair_file: Path, line_number: int):
    fields = line.split()
    try:
        if label == SAME and len(fields) == 3:
            return fields[0], int(fields[1]), fields[0], int(fields[2])
        if label == DIFFERENT and len(fields) == 4:
            return fields[0], int(fields[1]), fields[2], int(fields[3])
    except ValueError:
        pass
    expected = "'name i j'" if label == SAME else "'name1 i name2 j'"
    kind = "same-person" if label == SAME else "different-person"
    raise PairFileError(
        f"{pair_file}, line {line_number}: expected a {kind} line {expected} "
        f"with integer image numbers, got {line!r}"
    )


def _with_paths(frame: pd.DataFrame, images_dir: Path) -> pd.DataFrame:
    frame["path_a"] = [
        str(lfw_image_path(images_dir, n, i)) for n, i in zip(frame.name_a, frame.index_a)
    ]
    frame["path_b"] = [
        str(lfw_image_path(images_dir, n, i)) for n, i in zip(frame.name_b, frame.index_b)
    ]
    return frame[PAIR_COLUMNS]


def identity_images(root: str | Path) -> pd.DataFrame:
    """Every image of a ``root/<identity>/<image>`` tree (JPEG, PNG or PGM), one row each.

    This is what lets the workbook run on another face set (ORL/Olivetti, CFPW, ...) by
    changing one parameter: any folder-per-identity set becomes the same ``name, index, path``
    table that LFW gives. ``index`` is the 1-based position of the image within its identity.
    """
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"{root} is not a folder of identity folders")
    rows = []
    for person in sorted(p for p in root.iterdir() if p.is_dir() and not _is_junk(p.name)):
        files = sorted(
            f
            for f in person.iterdir()
            if f.is_file() and not _is_junk(f.name) and f.suffix.lower() in IMAGE_SUFFIXES
        )
        rows += [(person.name, i + 1, str(f)) for i, f in enumerate(files)]
    if not rows:
        raise FileNotFoundError(
            f"{root} holds no <identity>/<image> files ({', '.join(IMAGE_SUFFIXES)})"
        )
    return pd.DataFrame(rows, columns=["name", "index", "path"])


def _is_junk(name: str) -> bool:
    """Hidden entries and macOS zip metadata (``__MACOSX/``, ``._x.jpg``): never faces."""
    return name.startswith(".") or name == "__MACOSX"


def make_pairs(images: pd.DataFrame, num_pairs: int, seed: int = 0) -> pd.DataFrame:
    """Balanced same/different pairs drawn from an ``identity_images`` table, seeded.

    Half the pairs are two distinct images of one person (people with a single image cannot
    give one), half are images of two different people. Pairs are drawn without repeats so a
    small data set does not silently fill its quota with duplicates.
    """
    rng = np.random.default_rng(seed)
    by_person = {name: group for name, group in images.groupby("name", sort=True)}
    repeat_people = [n for n, g in by_person.items() if len(g) >= 2]
    if not repeat_people or len(by_person) < 2:
        raise ValueError("need at least one person with two images and at least two people")
    n_same, n_diff = num_pairs - num_pairs // 2, num_pairs // 2
    names = sorted(by_person)
    same = _draw_unique(rng, n_same, lambda: _same_pair(rng, by_person, repeat_people))
    diff = _draw_unique(rng, n_diff, lambda: _different_pair(rng, by_person, names))
    rows = [(*pair, SAME, 0) for pair in same] + [(*pair, DIFFERENT, 0) for pair in diff]
    return pd.DataFrame(rows, columns=PAIR_COLUMNS)


def _same_pair(rng, by_person, repeat_people):
    group = by_person[repeat_people[rng.integers(len(repeat_people))]]
    a, b = rng.choice(len(group), size=2, replace=False)
    ra, rb = group.iloc[a], group.iloc[b]
    return ra["name"], ra["index"], rb["name"], rb["index"], ra["path"], rb["path"]


def _different_pair(rng, by_person, names):
    pa, pb = rng.choice(len(names), size=2, replace=False)
    ga, gb = by_person[names[pa]], by_person[names[pb]]
    ra, rb = ga.iloc[rng.integers(len(ga))], gb.iloc[rng.integers(len(gb))]
    return ra["name"], ra["index"], rb["name"], rb["index"], ra["path"], rb["path"]


def _draw_unique(rng, count, draw, max_tries_per_pair: int = 50):
    seen, pairs = set(), []
    for _ in range(count * max_tries_per_pair):
        if len(pairs) == count:
            break
        pair = draw()
        key = frozenset([(pair[0], pair[1]), (pair[2], pair[3])])
        if key not in seen:
            seen.add(key)
            pairs.append(pair)
    if len(pairs) < count:
        raise ValueError(f"the images only allow {len(pairs)} distinct pairs, {count} asked")
    return pairs


def pair_people(pairs: pd.DataFrame) -> set[str]:
    """Everyone who appears in a pair set, on either side of a pair."""
    return set(pairs["name_a"]) | set(pairs["name_b"])


def person_overlap(first: pd.DataFrame, second: pd.DataFrame) -> dict:
    """How many people two pair sets share; 0 is the only honest answer for train vs. eval."""
    people_first, people_second = pair_people(first), pair_people(second)
    shared = people_first & people_second
    return {
        "people_first": len(people_first),
        "people_second": len(people_second),
        "shared_people": len(shared),
        "shared_names": sorted(shared),
    }


def person_disjoint_split(
    pairs: pd.DataFrame, val_fraction: float = 0.2, seed: int = 0
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Split pairs into train/validation so that no person is on both sides, losing no pair.

    People linked by a pair must stay together, so the unit of the split is a connected
    component of the "appear in a pair together" graph (DevTrain has 1,032 of them, the largest
    with 18 people). Components are shuffled with the seed and moved to validation until it
    holds ``val_fraction`` of the pairs; each side keeps its same/different pairs as they were.
    """
    if not 0 < val_fraction < 1:
        raise ValueError(f"val_fraction must lie strictly between 0 and 1, got {val_fraction}")
    component_of = _person_components(zip(pairs["name_a"], pairs["name_b"]))
    pair_component = pairs["name_a"].map(component_of)
    sizes = pair_component.value_counts()
    order = np.random.default_rng(seed).permutation(np.sort(sizes.index.to_numpy()))
    target, taken, val_components = val_fraction * len(pairs), 0, set()
    for component in order:
        if taken >= target:
            break
        val_components.add(component)
        taken += sizes[component]
    in_val = pair_component.isin(val_components).to_numpy()
    if in_val.all() or not in_val.any():
        raise ValueError("these pairs form too few person groups to split by person")
    return pairs[~in_val].reset_index(drop=True), pairs[in_val].reset_index(drop=True)


def _person_components(edges: Iterable[tuple[str, str]]) -> dict[str, int]:
    """Union-find over people; returns person -> component id (the id of its root's name)."""
    parent: dict[str, str] = {}

    def root(x: str) -> str:
        parent.setdefault(x, x)
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for a, b in edges:
        parent[root(a)] = root(b)
    roots = sorted({root(p) for p in parent})
    number = {r: i for i, r in enumerate(roots)}
    return {p: number[root(p)] for p in parent}
