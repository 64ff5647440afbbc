"""siamlib.pairs: LFW pair files, identity folders, generated pairs and person-disjoint splits."""

from __future__ import annotations

import re
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest

from siamlib import DIFFERENT, SAME
from siamlib.pairs import (
    PAIR_COLUMNS,
    PairFileError,
    fold_overlap,
    fold_people,
    identity_images,
    make_pairs,
    person_disjoint_split,
    person_overlap,
    read_pairs,
    read_view2,
)

IMAGE_COLUMNS = ["name_a", "index_a", "name_b", "index_b"]


def pair_keys(pairs: pd.DataFrame) -> list[frozenset]:
    """Each pair as an unordered set of (name, index) images: (a, b) and (b, a) are one pair."""
    return [
        frozenset([(na, ia), (nb, ib)])
        for na, ia, nb, ib in zip(pairs.name_a, pairs.index_a, pairs.name_b, pairs.index_b)
    ]


def write(tmp_path: Path, text: str, name: str = "pairs.txt") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


@pytest.fixture(scope="module")
def many_people_pairs() -> pd.DataFrame:
    """400 pairs over 600 made-up people (no files needed): sparse enough that people form many
    small groups (the largest holds 14 pairs), yet many people appear in more than one pair,
    as in LFW's DevTrain."""
    rng = np.random.default_rng(1)
    rows = [
        (f"P{person:03d}", index, f"/nowhere/P{person:03d}/{index}.jpg")
        for person in range(600)
        for index in range(1, int(rng.integers(1, 5)) + 1)
    ]
    images = pd.DataFrame(rows, columns=["name", "index", "path"])
    return make_pairs(images, 400, seed=0)


# --- read_pairs ---------------------------------------------------------------------------------


def test_read_pairs_view1_columns_labels_and_folds(face_set):
    pairs = read_pairs(face_set.view1, face_set.images_dir)
    assert list(pairs.columns) == PAIR_COLUMNS
    assert pairs.label.tolist() == [SAME] * 3 + [DIFFERENT] * 3
    assert pairs.fold.tolist() == [0] * 6
    assert list(pairs[IMAGE_COLUMNS].itertuples(index=False, name=None)) == [
        ("Ann_A", 1, "Ann_A", 2),
        ("Bob_B", 1, "Bob_B", 3),
        ("Cat_C", 1, "Cat_C", 2),
        ("Ann_A", 3, "Bob_B", 4),
        ("Dan_D", 1, "Eve_E", 1),
        ("Cat_C", 2, "Fay_F", 1),
    ]


def test_read_pairs_resolves_lfw_image_paths(face_set):
    pairs = read_pairs(face_set.view1, face_set.images_dir)
    for side in "ab":
        expected = [
            str(face_set.images_dir / name / f"{name}_{index:04d}.jpg")
            for name, index in zip(pairs[f"name_{side}"], pairs[f"index_{side}"])
        ]
        assert pairs[f"path_{side}"].tolist() == expected
    assert all(Path(p).is_file() for p in [*pairs.path_a, *pairs.path_b])


def test_same_pairs_are_one_person_and_different_pairs_two(face_set):
    for pair_file in (face_set.view1, face_set.view2):
        pairs = read_pairs(pair_file, face_set.images_dir)
        same = pairs[pairs.label == SAME]
        different = pairs[pairs.label == DIFFERENT]
        assert (same.name_a == same.name_b).all()
        assert (different.name_a != different.name_b).all()


def test_read_pairs_view2_numbers_folds_and_repeats_label_blocks(face_set):
    pairs = read_pairs(face_set.view2, face_set.images_dir)
    assert list(pairs.columns) == PAIR_COLUMNS
    assert pairs.fold.tolist() == [1] * 4 + [2] * 4  # numbered from 1, as LFW does
    assert pairs.label.tolist() == [SAME, SAME, DIFFERENT, DIFFERENT] * 2
    assert tuple(pairs.iloc[4][IMAGE_COLUMNS]) == ("Ann_A", 4, "Ann_A", 5)
    assert tuple(pairs.iloc[7][IMAGE_COLUMNS]) == ("Eve_E", 1, "Ann_A", 2)


def test_read_pairs_ignores_trailing_blank_lines(tmp_path):
    pairs = read_pairs(write(tmp_path, "1\nA 1 2\nA 1 B 1\n\n\n"), tmp_path)
    assert len(pairs) == 2


@pytest.mark.parametrize(
    "text, bad_line",
    [
        ("2\nA 1 2\nA one 2\nA 1 B 1\nA 2 B 2\n", 3),  # not an integer
        ("2\nA 1 2\nA 1 B 1\nA 1 B 1\nA 2 B 2\n", 3),  # a different-person line in the same block
        ("2\nA 1 2\nA 2 3\nA 1 B 1\nA 2 3\n", 5),  # a same-person line in the different block
        ("1 1\nA 1 2\nA 1 B\n", 3),  # View 2, missing image number
    ],
)
def test_malformed_line_error_names_file_and_line(tmp_path, text, bad_line):
    pair_file = write(tmp_path, text, "broken_pairs.txt")
    with pytest.raises(PairFileError, match=rf"broken_pairs\.txt, line {bad_line}\b"):
        read_pairs(pair_file, tmp_path)


@pytest.mark.parametrize(
    "text",
    [
        "3\nA 1 2\nA 1 B 1\n",  # header promises 6 lines, 2 given
        "1\nA 1 2\nA 1 B 1\nA 3 4\n",  # one line too many
        "2 1\nA 1 2\nA 1 B 1\n",  # View 2 with one fold missing
    ],
)
def test_header_count_disagreeing_with_lines_is_an_error(tmp_path, text):
    with pytest.raises(PairFileError, match=re.escape(str(tmp_path / "pairs.txt"))):
        read_pairs(write(tmp_path, text), tmp_path)


@pytest.mark.parametrize("header", ["ten", "1 2 3", "A 1 2", "-1", "2 x"])
def test_bad_header_is_an_error_on_line_1(tmp_path, header):
    with pytest.raises(PairFileError, match=r"pairs\.txt, line 1"):
        read_pairs(write(tmp_path, f"{header}\nA 1 2\nA 1 B 1\n"), tmp_path)


@pytest.mark.parametrize("text", ["", "\n\n  \n"])
def test_empty_pair_file_is_an_error(tmp_path, text):
    with pytest.raises(PairFileError, match="empty"):
        read_pairs(write(tmp_path, text), tmp_path)


def test_pair_file_error_is_a_value_error():
    """Callers that catch ValueError for bad input also catch bad pair files."""
    assert issubclass(PairFileError, ValueError)


def test_a_utf8_byte_order_mark_is_accepted(tmp_path):
    """Notepad on Windows saves UTF-8 with a BOM; the header must still read as '1'."""
    pair_file = tmp_path / "pairs.txt"
    pair_file.write_bytes(b"\xef\xbb\xbf1\nA 1 2\nA 1 B 1\n")
    assert read_pairs(pair_file, tmp_path)[IMAGE_COLUMNS].values.tolist() == [
        ["A", 1, "A", 2], ["A", 1, "B", 1]]


def test_a_blank_line_among_the_pairs_is_an_error_with_its_line_number(tmp_path):
    pair_file = write(tmp_path, "2\nA 1 2\nA 2 3\n\nA 1 B 1\nA 2 B 2\n")
    with pytest.raises(PairFileError, match=r"pairs\.txt, line 4: a blank line"):
        read_pairs(pair_file, tmp_path)


@pytest.mark.parametrize("encoding, words", [("utf-16", "UTF-16"), ("latin-1", "not a UTF-8")])
def test_a_file_in_another_encoding_is_an_error_naming_it(tmp_path, encoding, words):
    pair_file = tmp_path / "my_pairs.txt"
    pair_file.write_bytes("1\nJosé 1 2\nJosé 1 B 1\n".encode(encoding))
    with pytest.raises(PairFileError, match=words) as error:
        read_pairs(pair_file, tmp_path)
    assert str(error.value).startswith(str(pair_file))


# --- identity_images ----------------------------------------------------------------------------


def test_identity_images_counts_every_image_per_person(face_set):
    images = identity_images(face_set.images_dir)
    assert list(images.columns) == ["name", "index", "path"]
    assert images.groupby("name").size().to_dict() == face_set.counts
    assert sorted(images.path) == sorted(face_set.truth)


def test_identity_images_are_sorted_and_numbered_from_one(face_set):
    images = identity_images(face_set.images_dir)
    assert images.name.tolist() == sorted(images.name)
    for _, group in images.groupby("name"):
        assert group.path.tolist() == sorted(group.path)
        assert group["index"].tolist() == list(range(1, len(group) + 1))


def test_identity_images_reads_jpeg_png_and_pgm_and_skips_other_files(face_set):
    images = identity_images(face_set.images_dir)
    assert {Path(p).suffix for p in images.path} == {".jpg", ".png", ".pgm"}
    assert not any(p.endswith(".txt") for p in images.path)
    assert (face_set.images_dir / "Ann_A" / "notes.txt").is_file()  # it was there to skip


def test_identity_images_skips_hidden_entries_and_macos_metadata(tmp_path):
    for folder in ("Ann_A", "__MACOSX/Ann_A", ".thumbnails"):
        (tmp_path / folder).mkdir(parents=True)
    (tmp_path / "Ann_A" / "Ann_A_0001.jpg").write_bytes(b"a JPEG")
    (tmp_path / "Ann_A" / "._Ann_A_0001.jpg").write_bytes(b"AppleDouble metadata")
    (tmp_path / "__MACOSX" / "Ann_A" / "._Ann_A_0001.jpg").write_bytes(b"AppleDouble metadata")
    (tmp_path / ".thumbnails" / "Ann_A_0001.jpg").write_bytes(b"a thumbnail")
    images = identity_images(tmp_path)
    assert images.path.tolist() == [str(tmp_path / "Ann_A" / "Ann_A_0001.jpg")]


def test_identity_images_of_an_empty_folder_is_an_error(tmp_path):
    with pytest.raises(FileNotFoundError):
        identity_images(tmp_path)
    (tmp_path / "Nobody").mkdir()
    (tmp_path / "Nobody" / "notes.txt").write_text("no images here")
    with pytest.raises(FileNotFoundError):
        identity_images(tmp_path)


def test_identity_images_of_a_missing_folder_is_an_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="missing"):
        identity_images(tmp_path / "missing")


# --- make_pairs ---------------------------------------------------------------------------------


@pytest.mark.parametrize("num_pairs", [10, 7])
def test_make_pairs_is_balanced(face_set, num_pairs):
    pairs = make_pairs(identity_images(face_set.images_dir), num_pairs, seed=0)
    assert list(pairs.columns) == PAIR_COLUMNS
    assert len(pairs) == num_pairs
    same = int((pairs.label == SAME).sum())
    assert abs(same - (num_pairs - same)) <= 1
    assert set(pairs.label) == {SAME, DIFFERENT}


def test_make_pairs_same_seed_same_pairs_other_seed_other_pairs(face_set):
    images = identity_images(face_set.images_dir)
    first = make_pairs(images, 12, seed=5)
    pd.testing.assert_frame_equal(first, make_pairs(images, 12, seed=5))
    assert pair_keys(first) != pair_keys(make_pairs(images, 12, seed=6))


def test_make_pairs_has_no_duplicate_pairs_even_when_nearly_exhausted(face_set):
    """The set allows 21 distinct same-person pairs; asking 18 of them makes repeats likely."""
    pairs = make_pairs(identity_images(face_set.images_dir), 36, seed=0)
    keys = pair_keys(pairs)
    assert len(set(keys)) == len(keys)


def test_make_pairs_labels_match_the_people(face_set):
    images = identity_images(face_set.images_dir)
    pairs = make_pairs(images, 30, seed=2)
    same, different = pairs[pairs.label == SAME], pairs[pairs.label == DIFFERENT]
    assert (same.name_a == same.name_b).all()
    assert (same.index_a != same.index_b).all()
    assert (different.name_a != different.name_b).all()
    # Each side's name, index and path belong to one and the same image.
    known = set(zip(images.name, images["index"], images.path))
    assert set(zip(pairs.name_a, pairs.index_a, pairs.path_a)) <= known
    assert set(zip(pairs.name_b, pairs.index_b, pairs.path_b)) <= known


def test_make_pairs_asked_for_more_pairs_than_exist_is_an_error(face_set):
    images = identity_images(face_set.images_dir)
    distinct_same = sum(n * (n - 1) // 2 for n in face_set.counts.values())  # 21
    with pytest.raises(ValueError, match="distinct pairs"):
        make_pairs(images, 2 * (distinct_same + 1), seed=0)


@pytest.mark.parametrize(
    "rows",
    [
        [("A", 1, "a1"), ("B", 1, "b1")],  # nobody has two images
        [("A", 1, "a1"), ("A", 2, "a2")],  # one person only
    ],
)
def test_make_pairs_needs_a_repeat_person_and_two_people(rows):
    images = pd.DataFrame(rows, columns=["name", "index", "path"])
    with pytest.raises(ValueError):
        make_pairs(images, 2)


# --- person_overlap -----------------------------------------------------------------------------


def frame(*pairs: tuple[str, str]) -> pd.DataFrame:
    return pd.DataFrame(pairs, columns=["name_a", "name_b"])


def test_person_overlap_counts_people_on_both_sides_of_pairs():
    first = frame(("Ann", "Ann"), ("Bob", "Cat"))
    second = frame(("Dan", "Cat"), ("Eve", "Bob"), ("Dan", "Dan"))
    assert person_overlap(first, second) == {
        "people_first": 3,
        "people_second": 4,
        "shared_people": 2,
        "shared_names": ["Bob", "Cat"],
    }


def test_person_overlap_of_disjoint_sets_is_zero():
    overlap = person_overlap(frame(("Ann", "Bob")), frame(("Cat", "Cat")))
    assert overlap["shared_people"] == 0
    assert overlap["shared_names"] == []


# --- person_disjoint_split ----------------------------------------------------------------------


@pytest.mark.parametrize("val_fraction", [0.1, 0.2, 0.5])
def test_person_disjoint_split_shares_nobody_and_loses_no_pair(many_people_pairs, val_fraction):
    pairs = many_people_pairs
    train, val = person_disjoint_split(pairs, val_fraction, seed=0)
    assert person_overlap(train, val)["shared_people"] == 0
    assert len(train) + len(val) == len(pairs)
    # The same rows, each exactly once, same/different labels untouched.
    recombined = pd.concat([train, val]).sort_values(PAIR_COLUMNS).reset_index(drop=True)
    pd.testing.assert_frame_equal(
        recombined, pairs.sort_values(PAIR_COLUMNS).reset_index(drop=True)
    )
    # Whole person groups move, so validation may overshoot the target by one small group.
    assert val_fraction <= len(val) / len(pairs) < val_fraction + 0.05


def test_person_disjoint_split_is_seeded(many_people_pairs):
    _, val = person_disjoint_split(many_people_pairs, 0.2, seed=3)
    _, again = person_disjoint_split(many_people_pairs, 0.2, seed=3)
    _, other = person_disjoint_split(many_people_pairs, 0.2, seed=4)
    pd.testing.assert_frame_equal(val, again)
    assert set(pair_keys(val)) != set(pair_keys(other))


def test_random_pair_split_leaks_people_into_validation(many_people_pairs):
    """Why the split is by person: a plain 80/20 split of pairs puts people on both sides."""
    train = many_people_pairs.sample(frac=0.8, random_state=0)
    val = many_people_pairs.drop(train.index)
    assert person_overlap(train, val)["shared_people"] > 0


@pytest.mark.parametrize("val_fraction", [0, 1, -0.2, 1.5])
def test_person_disjoint_split_rejects_fractions_outside_0_1(many_people_pairs, val_fraction):
    with pytest.raises(ValueError, match="val_fraction"):
        person_disjoint_split(many_people_pairs, val_fraction)


def test_person_disjoint_split_of_one_person_group_is_an_error():
    pairs = frame(("Ann", "Bob"), ("Bob", "Cat"), ("Cat", "Cat"))
    with pytest.raises(ValueError, match="too few person groups"):
        person_disjoint_split(pairs, 0.3)


# --- View 2 -------------------------------------------------------------------------------------


DISJOINT_VIEW2 = "2\t1\nAnn_A\t1\t2\nAnn_A\t3\tBob_B\t1\nCat_C\t1\t2\nCat_C\t1\tDan_D\t1\n"


def test_read_view2_counts_each_folds_people(tmp_path):
    frame = read_view2(write(tmp_path, DISJOINT_VIEW2), tmp_path)
    assert {fold: sorted(p) for fold, p in fold_people(frame).items()} == {
        1: ["Ann_A", "Bob_B"], 2: ["Cat_C", "Dan_D"]}
    assert fold_overlap(frame).values.tolist() == [[2, 0], [0, 2]]


def test_read_view2_refuses_a_person_in_two_folds(face_set):
    # The shared fixture's View 2 file has Ann_A in fold 1 and fold 2.
    clash = r"appear in more than one fold.*Ann_A \(folds 1 and 2\)"
    with pytest.raises(PairFileError, match=clash):
        read_view2(face_set.view2, face_set.images_dir)


def test_read_view2_refuses_a_view1_file(face_set):
    with pytest.raises(PairFileError, match="two or more folds"):
        read_view2(face_set.view1, face_set.images_dir)


# --- issue 22: identity folders lose nobody silently, and count nobody twice ------------------


EVERY_FORMAT = (".bmp", ".dib", ".tif", ".tiff", ".gif", ".webp", ".png", ".pgm", ".ppm", ".pbm",
                ".pnm", ".jpg", ".jpeg", ".jpe", ".ras", ".sr")


def test_identity_images_reads_every_format_opencv_reads_and_subfolders(tmp_path, capsys):
    """Item 6: 16 people in 16 formats, one of them with photos in subfolders, are 16 people."""
    from PIL import Image

    from siamlib.images import decode_gray

    pixels = np.tile(np.arange(32, dtype=np.uint8) * 8, (32, 1))
    for number, suffix in enumerate(EVERY_FORMAT):
        folder = tmp_path / f"Person_{number:02d}"
        folder.mkdir()
        for index in (1, 2):
            path = folder / f"photo_{index}{suffix}"
            if suffix == ".gif":  # OpenCV reads GIF (4.11+) but cannot write it
                Image.fromarray(pixels).save(path)
            else:
                assert cv2.imwrite(str(path), pixels if suffix != ".ppm" else
                                   cv2.cvtColor(pixels, cv2.COLOR_GRAY2BGR)), suffix
    (tmp_path / "Person_00" / "2019" / "summer").mkdir(parents=True)
    (tmp_path / "Person_00" / "photo_1.bmp").rename(tmp_path / "Person_00" / "2019" / "a.bmp")
    (tmp_path / "Person_00" / "photo_2.bmp").rename(tmp_path / "Person_00" / "2019" / "summer" /
                                                    "b.bmp")
    (tmp_path / "Person_01" / "notes.txt").write_text("not a photo")
    (tmp_path / "Person_01" / "scan.xcf").write_bytes(b"gimp")
    (tmp_path / ".DS_Store").write_bytes(b"\0")
    images = identity_images(tmp_path)
    assert images["name"].nunique() == len(EVERY_FORMAT) == 16
    assert (images.groupby("name").size() == 2).all()
    assert all(decode_gray(path).shape == (105, 105) for path in images["path"])
    skipped = capsys.readouterr().err.splitlines()
    assert skipped == [
        f"{tmp_path}: skipped 1 (hidden or macOS metadata): .DS_Store",
        f"{tmp_path}: skipped 2 (not an image format OpenCV reads): Person_01/notes.txt, "
        "Person_01/scan.xcf",
    ]


def test_a_name_in_two_unicode_spellings_is_refused_naming_both_folders(tmp_path):
    """Item 9: "José" as one code point (NFC) and as "e" + accent (NFD) is one person."""
    composed, decomposed = "Jos\u00e9_Ruiz", "Jose\u0301_Ruiz"
    for name in (composed, decomposed, "Ann_A"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "1.jpg").write_bytes(b"a JPEG")
    with pytest.raises(ValueError, match="are one person") as error:
        identity_images(tmp_path)
    # Shown with their code points: printed as they are, the two names look identical.
    assert "'Jos\\xe9_Ruiz'" in str(error.value) and "'Jose\\u0301_Ruiz'" in str(error.value)


def test_a_link_to_another_person_folder_is_refused_naming_both(tmp_path):
    """Item 9: an alias folder (a symlink to a person folder) would make one person two."""
    for name in ("Ann_A", "Bob_B"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "1.jpg").write_bytes(b"a JPEG")
    (tmp_path / "Ann_Alias").symlink_to(tmp_path / "Ann_A", target_is_directory=True)
    with pytest.raises(ValueError, match="'Ann_A' and 'Ann_Alias' are one person"):
        identity_images(tmp_path)
