"""siamlib.images: decode-once uint8 store, preprocessing, truncated JPEGs and the on-disk cache."""

from __future__ import annotations

import errno
import os
import shutil
import struct
import warnings
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest

import siamlib.images
from siamlib.images import (
    CENTRE_HALF,
    MIN_FACE_SIDE,
    WHOLE,
    ImageDecodeError,
    ImageStore,
    Preprocess,
    decode_gray,
)

DEFAULT = Preprocess()


def load(paths, cache_dir: Path, preprocess: Preprocess = DEFAULT, face_crop: str = WHOLE,
         **options) -> ImageStore:
    return ImageStore.load(paths, preprocess, face_crop, cache_dir=cache_dir, progress=False,
                           **options)


def load_quietly(paths, cache_dir: Path, preprocess: Preprocess = DEFAULT) -> ImageStore:
    """A load whose truncation warning (tested on its own below) does not matter here."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return load(paths, cache_dir, preprocess)


def write_png(path: Path, pixels: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), pixels)
    return path


def closest_truth(pixels: np.ndarray, truth: dict[str, np.ndarray]) -> tuple[str, float]:
    """The generated image a decoded one is nearest to, and the mean absolute difference."""
    size = pixels.shape[0]
    distances = {
        path: float(np.abs(cv2.resize(original, (size, size)) - pixels.astype(float)).mean())
        for path, original in ((p, t.astype(float)) for p, t in truth.items())
    }
    best = min(distances, key=distances.get)
    return best, distances[best]


# --- what a load holds --------------------------------------------------------------------------


def test_load_decodes_each_unique_path_once(face_set, tmp_path, monkeypatch):
    decoded = []

    def counting_decode(path, preprocess, face_crop):
        decoded.append(str(path))
        return decode_gray(path, preprocess, face_crop)

    monkeypatch.setattr(siamlib.images, "decode_gray", counting_decode)
    paths = face_set.readable
    store = load([*paths, *reversed(paths), Path(paths[0])], tmp_path)  # str and Path alike
    assert len(store) == len(paths) == store.pixels.shape[0]
    assert sorted(decoded) == store.paths == paths


def test_rows_map_paths_to_their_rows(face_set, tmp_path):
    paths = face_set.readable
    store = load(paths, tmp_path)
    wanted = [paths[3], paths[0], paths[3], Path(paths[-1])]
    rows = store.rows(wanted)
    assert rows.dtype == np.int32
    assert [store.paths[r] for r in rows] == [str(p) for p in wanted]


def test_rows_of_an_unknown_path_names_it(face_set, tmp_path):
    store = load(face_set.readable[:2], tmp_path)
    with pytest.raises(KeyError, match="Bob_B_0001"):
        store.rows([face_set.readable[0], face_set.path("Bob_B", 1)])


def test_names_are_the_identity_folders(face_set, tmp_path):
    store = load(face_set.readable, tmp_path)
    assert store.names.tolist() == [Path(p).parent.name for p in face_set.readable]
    assert set(store.names) == set(face_set.counts)


def test_names_given_for_photos_in_subfolders_are_kept(face_set, tmp_path):
    """A photo in ``<Person>/<sub>/`` is that person's, as ``pairs.identity_images`` says."""
    nested = write_png(tmp_path / "Gus_G" / "2019" / "a.png", face_set.truth[face_set.readable[0]])
    store = load([nested, *face_set.readable[:2]], tmp_path / "cache",
                 names={str(nested): "Gus_G"})
    assert store.names[store.rows([nested])[0]] == "Gus_G"
    assert set(store.names) == {"Gus_G", "Ann_A"}


@pytest.mark.parametrize(
    ("preprocess", "face_crop"),
    [
        (Preprocess(), WHOLE),
        (Preprocess(image_size=64), WHOLE),
        (Preprocess(image_size=105), CENTRE_HALF),
        (Preprocess(image_size=250), WHOLE),
        (Preprocess(image_size=125), CENTRE_HALF),
    ],
    ids=str,
)
def test_pixels_are_uint8_squares_of_the_asked_size(face_set, tmp_path, preprocess, face_crop):
    store = load(face_set.readable, tmp_path, preprocess, face_crop)
    size = preprocess.image_size
    assert store.pixels.dtype == np.uint8
    assert store.pixels.shape == (len(face_set.readable), size, size)


def test_each_row_holds_the_image_of_its_path(face_set, tmp_path):
    store = load(face_set.readable, tmp_path)
    for path, pixels in zip(store.paths, store.pixels):
        nearest, difference = closest_truth(pixels, face_set.truth)
        assert nearest == path
        assert difference < 3  # grey levels: JPEG and resizing cost a little, nothing more


def test_png_and_pgm_decode_exactly(face_set, tmp_path):
    lossless = [face_set.path("Dan_D", 2), face_set.path("Fay_F", 2)]
    store = load(lossless, tmp_path, Preprocess(image_size=250))
    for path in lossless:
        np.testing.assert_array_equal(store.pixels[store.rows([path])[0]], face_set.truth[path])


def test_colour_images_are_read_as_grey(tmp_path):
    grey = np.full((250, 250), 90, np.uint8)
    cv2.imwrite(str(tmp_path / "colour.png"), cv2.merge([grey, grey, grey]))
    pixels = decode_gray(tmp_path / "colour.png", Preprocess(image_size=250))
    assert pixels.shape == (250, 250)
    np.testing.assert_array_equal(pixels, grey)


def test_centre_half_keeps_the_centre_square_of_half_the_shorter_side(tmp_path):
    """A 250x250 frame: border 40, a centre square [75, 175) of 200, and a corner mark of 255.
    The centre half is [62, 187): the square with 13 pixels of border around it."""
    frame = np.full((250, 250), 40, np.uint8)
    frame[75:175, 75:175] = 200
    frame[:40, :40] = 255  # outside the centre half
    path = write_png(tmp_path / "framed.png", frame)

    centre_half = decode_gray(path, Preprocess(image_size=125), CENTRE_HALF)
    np.testing.assert_array_equal(centre_half, frame[62:187, 62:187])

    whole = decode_gray(path, Preprocess(image_size=50), WHOLE)
    assert whole[0, 0] == 255 and whole[-1, -1] == 40 and whole[25, 25] == 200
    assert decode_gray(path, Preprocess(image_size=50))[0, 0] == 255  # whole by default


def test_centre_half_of_a_portrait_photo_is_half_its_width(tmp_path):
    """An ORL-sized 92x112 photo: the centre half is 46 px, 23 in from the sides, 33 from the
    top (the named model's crop, if it were given to such a face set: hence "auto")."""
    photo = np.random.default_rng(0).integers(0, 256, (112, 92), dtype=np.uint8)
    path = write_png(tmp_path / "s1" / "1.png", photo)
    np.testing.assert_array_equal(decode_gray(path, Preprocess(46), CENTRE_HALF),
                                  photo[33:79, 23:69])
    np.testing.assert_array_equal(decode_gray(path, Preprocess(46), WHOLE),
                                  cv2.resize(photo, (46, 46), interpolation=cv2.INTER_AREA))


def test_an_unknown_face_crop_is_an_error_naming_the_choices(face_set):
    with pytest.raises(ValueError, match="centre-half.*whole.*got 'centre'"):
        decode_gray(face_set.readable[0], Preprocess(), "centre")


# --- truncated JPEGs and unreadable files -------------------------------------------------------


def test_truncated_jpeg_is_listed_with_one_warning_and_nothing_on_stderr(
    face_set, tmp_path, capfd, find_truncated_jpegs
):
    all_paths = sorted(face_set.truth)
    with pytest.warns(UserWarning, match="truncated") as record:
        store = load(all_paths, tmp_path)
    assert len(record) == 1
    assert store.truncated == find_truncated_jpegs(all_paths) == [face_set.truncated]
    assert len(store) == len(all_paths)  # decoded as far as it goes, not dropped
    captured = capfd.readouterr()
    assert "Corrupt JPEG" not in captured.err + captured.out
    assert captured.err == ""


def test_truncated_jpeg_keeps_the_part_before_the_cut(face_set, tmp_path):
    store = load_quietly([face_set.truncated], tmp_path, Preprocess(image_size=250))
    top = slice(0, 64)  # the first rows of blocks come before the cut at 60% of the bytes
    difference = np.abs(store.pixels[0][top].astype(int) - face_set.truth[face_set.truncated][top])
    assert difference.mean() < 3


def test_many_truncated_jpegs_give_one_warning(face_set, tmp_path):
    """One warning for the whole load, however many images are damaged."""
    images = tmp_path / "images"
    copies = []
    for name in ("Gus_G", "Hal_H", "Ivy_I"):
        (images / name).mkdir(parents=True)
        copies.append(str(shutil.copy(face_set.truncated, images / name / f"{name}_0001.jpg")))
    paths = [*copies, *face_set.readable]
    with pytest.warns(UserWarning) as record:
        store = load(paths, tmp_path / "cache")
    assert len(record) == 1
    assert "3 of" in str(record[0].message)
    assert store.truncated == sorted(copies)


def test_clean_images_load_without_any_warning(face_set, tmp_path):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        store = load(face_set.readable, tmp_path)
    assert store.truncated == []


def test_a_file_that_is_not_an_image_is_a_decode_error_naming_it(face_set, tmp_path):
    bogus = tmp_path / "Zed_Z" / "Zed_Z_0001.jpg"
    bogus.parent.mkdir()
    bogus.write_text("this is not a JPEG\n")
    with pytest.raises(ImageDecodeError, match="Zed_Z_0001.jpg"):
        load([*face_set.readable, bogus], tmp_path / "cache")
    assert not (tmp_path / "cache").exists() or not any((tmp_path / "cache").iterdir())


def test_stderr_is_given_back_after_a_failed_load(tmp_path, capfd):
    """Decoding points fd 2 at a file; an error must not leave it there."""
    bogus = tmp_path / "bogus.jpg"
    bogus.write_bytes(b"\x00" * 100)
    with pytest.raises(ImageDecodeError):
        load([bogus], tmp_path / "cache")
    os.write(2, b"still here\n")
    assert "still here" in capfd.readouterr().err


def test_a_one_pixel_image_is_a_decode_error_naming_it(face_set, tmp_path):
    """Issue 22, 7: a 1x1 placeholder was blown up to a flat square (or, face-cropped, stopped
    on an OpenCV assertion naming no file)."""
    dot = write_png(tmp_path / "Zed_Z" / "Zed_Z_0001.png", np.zeros((1, 1), np.uint8))
    for face_crop in (WHOLE, CENTRE_HALF):
        with pytest.raises(ImageDecodeError, match=r"(?s)Zed_Z_0001.png: 1x1 px is too small "
                                                   r"for a face.*Remove them from the data"):
            load([*face_set.readable, dot], tmp_path / "cache", face_crop=face_crop)


def test_a_face_crop_too_small_for_a_face_is_a_decode_error_naming_the_crop(tmp_path):
    side = 2 * MIN_FACE_SIDE - 2  # its centre half is just under the minimum
    small = write_png(tmp_path / "small.png", np.full((side, side), 99, np.uint8))
    assert decode_gray(small, Preprocess(32), WHOLE).shape == (32, 32)
    with pytest.raises(ImageDecodeError, match=rf"small.png: {side}x{side} px .*its 'centre-half' "
                                               rf"face crop keeps {MIN_FACE_SIDE - 1} px"):
        decode_gray(small, Preprocess(32), CENTRE_HALF)


def png_header_only(width: int, height: int) -> bytes:
    """A PNG whose header claims ``width`` x ``height`` grey pixels, with a few bytes of data."""
    def chunk(kind: bytes, body: bytes) -> bytes:
        return (struct.pack(">I", len(body)) + kind + body
                + struct.pack(">I", zlib.crc32(kind + body)))

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)  # 8-bit grey
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header)
            + chunk(b"IDAT", zlib.compress(b"\0" * 100)) + chunk(b"IEND", b""))


def test_a_decompression_bomb_is_a_decode_error_naming_it(face_set, tmp_path, capfd):
    """Issue 22, 7: a header claiming 10^10 pixels stopped on an OpenCV assertion naming no
    file. OpenCV refuses it before allocating anything (CV_IO_MAX_IMAGE_PIXELS)."""
    bomb = tmp_path / "Zed_Z" / "Zed_Z_0001.png"
    bomb.parent.mkdir()
    bomb.write_bytes(png_header_only(100_000, 100_000))
    with pytest.raises(ImageDecodeError, match=r"(?s)Zed_Z_0001.png: OpenCV refuses to decode it "
                                               r"\(pixels <= CV_IO_MAX_IMAGE_PIXELS\).*bomb"):
        load([*face_set.readable, bomb], tmp_path / "cache")
    assert "Traceback" not in capfd.readouterr().err


def test_an_empty_file_is_a_decode_error_naming_it(face_set, tmp_path):
    empty = tmp_path / "Zed_Z" / "Zed_Z_0001.jpg"
    empty.parent.mkdir()
    empty.write_bytes(b"")
    with pytest.raises(ImageDecodeError, match="Zed_Z_0001.jpg"):
        load([*face_set.readable, empty], tmp_path / "cache")


# --- the on-disk cache --------------------------------------------------------------------------


def refuse_to_decode(monkeypatch):
    def fail(path, *settings):
        raise AssertionError(f"decoded {path} again instead of using the cache")

    monkeypatch.setattr(siamlib.images, "decode_gray", fail)


def test_second_load_comes_from_the_cache(face_set, tmp_path, monkeypatch):
    paths = sorted(face_set.truth)
    first = load_quietly(paths, tmp_path)
    assert len(list(tmp_path.glob("*.npz"))) == 1
    refuse_to_decode(monkeypatch)
    with pytest.warns(UserWarning, match="truncated") as record:
        second = load(list(reversed(paths)), tmp_path)  # order does not change the key
    assert len(record) == 1  # a cached load still says that images are truncated
    np.testing.assert_array_equal(second.pixels, first.pixels)
    assert second.paths == first.paths
    assert second.truncated == first.truncated == [face_set.truncated]


def test_another_face_crop_or_other_paths_make_a_new_cache_file(face_set, tmp_path):
    paths = face_set.readable
    default = load(paths, tmp_path)
    cropped = load(paths, tmp_path, face_crop=CENTRE_HALF)
    fewer = load(paths[1:], tmp_path)
    assert len(list(tmp_path.glob("*.npz"))) == 3
    assert not np.array_equal(default.pixels, cropped.pixels)
    np.testing.assert_array_equal(fewer.pixels, default.pixels[1:])


def test_cache_miss_decodes_again(face_set, tmp_path, monkeypatch):
    load(face_set.readable, tmp_path)
    refuse_to_decode(monkeypatch)
    with pytest.raises(AssertionError, match="instead of using the cache"):
        load(face_set.readable, tmp_path, Preprocess(image_size=64))


def test_load_leaves_no_partial_cache_files(face_set, tmp_path):
    load(face_set.readable, tmp_path)
    assert [p.suffix for p in tmp_path.iterdir()] == [".npz"]


def test_an_image_replaced_in_place_is_decoded_again(face_set, tmp_path):
    images = tmp_path / "images" / "Ann_A"
    images.mkdir(parents=True)
    path = Path(shutil.copy(face_set.path("Ann_A", 1), images / "Ann_A_0001.jpg"))
    before = load([path], tmp_path / "cache").pixels[0].copy()
    shutil.copy(face_set.path("Bob_B", 1), path)  # same path, another face
    after = load([path], tmp_path / "cache").pixels[0]
    assert not np.array_equal(after, before)


def test_a_read_only_cache_folder_is_a_warning_not_an_error(face_set, tmp_path, refuse_writes):
    """Read-only is simulated (refuse_writes): tests run as root, where chmod stops nothing.
    A course server's shared data folder: the images decode, the cache is just not kept."""
    refuse_writes(tmp_path)
    with pytest.warns(UserWarning, match=rf"could not write the image cache {tmp_path}"):
        store = load(face_set.readable, tmp_path / "cache")
    assert len(store) == len(face_set.readable)


def test_a_full_disk_leaves_no_partial_cache_file_and_warns(face_set, tmp_path, monkeypatch):
    def disk_full(handle, **arrays):
        handle.write(b"PK\x03\x04 half an archive")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(np, "savez", disk_full)
    with pytest.warns(UserWarning, match="No space left on device"):
        store = load(face_set.readable, tmp_path)
    assert len(store) == len(face_set.readable)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("damage", ["truncated", "garbage", "wrong shape"])
def test_a_damaged_cache_file_is_named_and_rebuilt(face_set, tmp_path, damage):
    first = load(face_set.readable, tmp_path)
    (cache_file,) = tmp_path.glob("*.npz")
    if damage == "truncated":
        cache_file.write_bytes(cache_file.read_bytes()[:200])
    elif damage == "garbage":
        cache_file.write_bytes(b"\0" * 1000)
    else:
        np.savez(cache_file, pixels=first.pixels[1:], truncated=np.array([], dtype=str))
    with pytest.warns(UserWarning, match=rf"the image cache {cache_file} is damaged"):
        again = load(face_set.readable, tmp_path)
    np.testing.assert_array_equal(again.pixels, first.pixels)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        load(face_set.readable, tmp_path)  # rewritten: no warning the next time
