"""Decoding face images once into a compact uint8 store that every pipeline shares.

A pair set names the same images many times (DevTrain's 2,200 pairs use 3,443 images), so
images are decoded once, by path, and pairs refer to rows of one uint8 array; scaling to [0, 1]
floats happens per batch inside the tf.data pipeline, at a hundredth of the memory.

Some LFW-a JPEGs are truncated (libjpeg: "Corrupt JPEG data: premature end of data segment").
They are decoded as far as their data goes, counted, and reported in one warning.
"""

from __future__ import annotations

import os
import sys
import tempfile
import warnings
import zipfile
from dataclasses import asdict, dataclass
from pathlib import Path

import cv2
import numpy as np
from tqdm.auto import tqdm

from siamlib import files, paths

_CACHE_FORMAT = 2  # 2: the face crop is named (FACE_CROPS), no longer a fraction in Preprocess

# Which part of each image is the face. The face set decides (``splits.DataConfig.face_crop``):
# LFW-a's alignment puts the face in the centre half of its 250 px frame, the rest being
# background and hair that the network would otherwise learn to match; an ORL-style photo is
# already the face, and its centre half would cut the eyes and mouth off.
CENTRE_HALF, WHOLE = "centre-half", "whole"
FACE_CROPS = (CENTRE_HALF, WHOLE)
# A face square smaller than this holds no face worth learning from (LFW-a's face crop is 125
# px, ORL's photos 92x112): a thumbnail or a 1x1 placeholder, blown up to a blur.
MIN_FACE_SIDE = 16


class ImageDecodeError(ValueError):
    """Files among the images that cannot be faces (as opposed to truncated JPEGs, which are
    decoded as far as they go): not an image, a header claiming too many pixels, too small."""


@dataclass(frozen=True)
class Preprocess:
    """How a face image becomes a network input, once its face crop is cut out.

    Arguments:
        image_size: side of the square input in pixels (Koch et al. used 105).
    """

    image_size: int = 105


class ImageStore:
    """Decoded images as one ``(n, size, size)`` uint8 array, addressed by path.

    Build it with ``ImageStore.load``; look rows up with ``rows(paths)``. The person of each
    row is ``names[path]`` where given (a photo in a subfolder of a person folder), else the
    photo's folder (``<Name>/<Name>_0001.jpg``).
    """

    def __init__(self, image_paths: list[str], pixels: np.ndarray, truncated: list[str],
                 names: dict[str, str] | None = None):
        self.paths = list(image_paths)
        self.pixels = pixels
        self.truncated = list(truncated)
        self._row = {p: i for i, p in enumerate(self.paths)}
        names = names or {}
        self.names = np.array([names.get(p) or Path(p).parent.name for p in self.paths])

    def __len__(self) -> int:
        return len(self.paths)

    def rows(self, image_paths) -> np.ndarray:
        """Row numbers of the given paths (int32), for index-based pair pipelines."""
        try:
            return np.fromiter((self._row[str(p)] for p in image_paths), dtype=np.int32)
        except KeyError as missing:
            raise KeyError(f"{missing.args[0]} is not in this ImageStore") from None

    @classmethod
    def load(cls, image_paths, preprocess: Preprocess = Preprocess(), face_crop: str = WHOLE,
             cache_dir: str | Path | None = None, progress: bool = True,
             names: dict[str, str] | None = None) -> ImageStore:
        """Decode the unique images among ``image_paths`` once, reusing an on-disk cache.

        The cache (``data/cache`` by default) is keyed by the exact paths, each file's size and
        modification time (a file replaced in place is decoded again), the face crop and the
        preprocessing, so nothing stale is ever served.
        """
        unique = sorted({str(p) for p in image_paths})
        stamps = [(stat.st_size, stat.st_mtime_ns) for stat in map(os.stat, unique)]
        digest = files.short_hash([_CACHE_FORMAT, asdict(preprocess), face_crop, unique, stamps])
        folder = Path(cache_dir) if cache_dir is not None else paths.data_dir() / "cache"
        size = preprocess.image_size
        cache_file = folder / f"images-{size}px-{digest}.npz"
        try:
            with np.load(cache_file) as cached:
                pixels, truncated = cached["pixels"], list(cached["truncated"])
            if pixels.shape != (len(unique), size, size) or pixels.dtype != np.uint8:
                raise ValueError(f"it holds {pixels.shape} {pixels.dtype} pixels")
        except FileNotFoundError:
            pixels = None
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as error:
            warnings.warn(f"the image cache {cache_file} is damaged ({error}); decoding the "
                          "images again and rewriting it", stacklevel=2)
            pixels = None
        if pixels is None:
            pixels, truncated = _decode_all(unique, preprocess, face_crop, progress)
            try:
                folder.mkdir(parents=True, exist_ok=True)
                with files.staged(cache_file, folder=False) as partial, open(partial, "wb") as out:
                    np.savez(out, pixels=pixels, truncated=np.array(truncated, str))
            except OSError as error:  # a read-only shared data folder, or a full disk
                warnings.warn(f"could not write the image cache {cache_file} "
                              f"({error.strerror or error}); the images were decoded and will be "
                              "decoded again next time", stacklevel=2)
        if truncated:
            warnings.warn(f"{len(truncated)} of {len(unique)} images are truncated JPEGs; they "
                          "were decoded as far as their data goes (see ImageStore.truncated)",
                          stacklevel=2)
        return cls(unique, pixels, truncated, names)


def decode_gray(path: str | Path, preprocess: Preprocess = Preprocess(),
                face_crop: str = WHOLE) -> np.ndarray:
    """One image file as a ``(size, size)`` uint8 array: grayscale, face-cropped, resized."""
    if face_crop not in FACE_CROPS:
        raise ValueError(f"face_crop must be one of {FACE_CROPS}, got {face_crop!r}")
    data = np.fromfile(str(path), dtype=np.uint8)
    try:
        # cv2.imdecode raises on an empty buffer: a zero-byte file is just another non-image.
        image = cv2.imdecode(data, cv2.IMREAD_GRAYSCALE) if data.size else None
    except cv2.error as error:  # e.g. a header claiming over CV_IO_MAX_IMAGE_PIXELS (2^30)
        raise ImageDecodeError(f"{path}: OpenCV refuses to decode it ({error.err}): a damaged "
                               "header or a decompression bomb, not a photo") from None
    if image is None:
        raise ImageDecodeError(f"{path}: not a readable JPEG/PNG/PGM image")
    height, width = image.shape
    side = min(width, height) // 2 if face_crop == CENTRE_HALF else min(width, height)
    if side < MIN_FACE_SIDE:
        raise ImageDecodeError(f"{path}: {width}x{height} px is too small for a face (its "
                               f"{face_crop!r} face crop keeps {side} px, fewer than "
                               f"{MIN_FACE_SIDE})")
    if face_crop == CENTRE_HALF:
        top, left = (height - side) // 2, (width - side) // 2
        image = image[top : top + side, left : left + side]
    size = preprocess.image_size
    if image.shape != (size, size):
        # INTER_AREA averages the pixels each output pixel covers: no aliasing when shrinking.
        image = cv2.resize(image, (size, size), interpolation=cv2.INTER_AREA)
    return np.ascontiguousarray(image, dtype=np.uint8)


def _decode_all(unique: list[str], preprocess: Preprocess, face_crop: str, progress: bool):
    """Decode every image with the process's stderr (fd 2) pointed at a temporary file.

    libjpeg reports a truncated JPEG only as text on fd 2, neither as an error nor as a flag
    any Python binding exposes; reading that file after each image attributes each message to
    its image and keeps them out of the student's terminal.
    """
    size = preprocess.image_size
    pixels = np.empty((len(unique), size, size), dtype=np.uint8)
    truncated, failures, other_messages = [], [], []
    # The bar goes to stdout: stderr is captured while decoding.
    bar = tqdm(unique, desc="decoding images", disable=not progress, file=sys.stdout)
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as sink:
        os.dup2(sink.fileno(), 2)
        try:
            for row, path in enumerate(bar):
                try:
                    pixels[row] = decode_gray(path, preprocess, face_crop)
                except ImageDecodeError as error:
                    failures.append(str(error))
                message = os.pread(2, os.fstat(2).st_size, 0).decode(errors="replace")
                os.ftruncate(2, 0)
                os.lseek(2, 0, os.SEEK_SET)  # the next image's message starts at 0 again
                if "Corrupt JPEG data" in message or "Premature end of JPEG" in message:
                    truncated.append(path)
                elif message:
                    other_messages.append(message)
        finally:
            os.dup2(saved, 2)
            os.close(saved)
    sys.stderr.write("".join(other_messages))
    if failures:
        raise ImageDecodeError(
            f"{len(failures)} file(s) among the images cannot be used, e.g.\n  "
            + "\n  ".join(sorted(failures)[:5])
            + "\nRemove them from the data folder. For a fetched data set, "
            "python -m siamlib.data fetch [--source PATH] then takes it again from its source."
        )
    return pixels, truncated
