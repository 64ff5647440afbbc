"""Face images decoded once into one uint8 array that every pipeline shares, cached on disk:
pairs name the same images many times, so they refer to rows, and floats are made per batch."""

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

# LFW-a's alignment puts the face in the centre half of its 250 px frame (the rest is background
# and hair the network would learn to match); an ORL-style photo is the face.
CENTRE_HALF, WHOLE = "centre-half", "whole"
FACE_CROPS = (CENTRE_HALF, WHOLE)
MIN_FACE_SIDE = 16  # smaller is a thumbnail or a placeholder (LFW-a's face is 125 px, ORL's 92)


class ImageDecodeError(ValueError):
    """Files that cannot be faces: not an image, a header claiming too many pixels, too small."""


@dataclass(frozen=True)
class Preprocess:
    """How a face crop becomes a network input: a square of ``image_size`` pixels."""

    image_size: int = 105


class ImageStore:
    """Images as one ``(n, size, size)`` uint8 array, addressed by path. A row's person is
    ``names[path]`` where given (a photo in a person folder's subfolder), else its folder."""

    def __init__(self, image_paths: list[str], pixels: np.ndarray, truncated: list[str],
                 names: dict[str, str] | None = None):
        self.paths = list(image_paths)
        self.pixels = pixels
        self.truncated = list(truncated)
        self._row = {p: i for i, p in enumerate(self.paths)}
        self.names = np.array([(names or {}).get(p) or Path(p).parent.name for p in self.paths])

    def __len__(self) -> int:
        return len(self.paths)

    def rows(self, image_paths) -> np.ndarray:
        try:
            return np.fromiter((self._row[str(p)] for p in image_paths), dtype=np.int32)
        except KeyError as missing:
            raise KeyError(f"{missing.args[0]} is not in this ImageStore") from None

    @classmethod
    def load(cls, image_paths, preprocess: Preprocess = Preprocess(), face_crop: str = WHOLE,
             cache_dir: str | Path | None = None, progress: bool = True,
             names: dict[str, str] | None = None) -> ImageStore:
        """Cached by each file's size and modification time too: one replaced is decoded again."""
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
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as error:
            if not isinstance(error, FileNotFoundError):
                warnings.warn(f"the image cache {cache_file} is damaged ({error}); rebuilding it",
                              stacklevel=2)
            pixels, truncated = _decode_all(unique, preprocess, face_crop, progress)
            try:
                folder.mkdir(parents=True, exist_ok=True)
                with files.staged(cache_file, folder=False) as partial, open(partial, "wb") as out:
                    np.savez(out, pixels=pixels, truncated=np.array(truncated, str))
            except OSError as error:  # a read-only shared data folder, or a full disk
                warnings.warn(f"could not write the image cache {cache_file} "
                              f"({error.strerror or error}); decoding again next time",
                              stacklevel=2)
        if truncated:
            warnings.warn(f"{len(truncated)} of {len(unique)} images are truncated JPEGs, decoded "
                          "as far as they go (ImageStore.truncated)", stacklevel=2)
        return cls(unique, pixels, truncated, names)


def decode_gray(path: str | Path, preprocess: Preprocess = Preprocess(),
                face_crop: str = WHOLE) -> np.ndarray:
    if face_crop not in FACE_CROPS:
        raise ValueError(f"face_crop must be one of {FACE_CROPS}, got {face_crop!r}")
    data = np.fromfile(str(path), dtype=np.uint8)
    try:
        # cv2.imdecode raises on an empty buffer: a zero-byte file is just another non-image.
        image = cv2.imdecode(data, cv2.IMREAD_GRAYSCALE) if data.size else None
    except cv2.error as error:  # e.g. a header claiming over CV_IO_MAX_IMAGE_PIXELS (2^30)
        raise ImageDecodeError(f"{path}: OpenCV refuses to decode it ({error.err}): a damaged "
                               "header or a decompression bomb") from None
    if image is None:
        raise ImageDecodeError(f"{path}: not a readable JPEG/PNG/PGM image")
    height, width = image.shape
    side = min(width, height) // 2 if face_crop == CENTRE_HALF else min(width, height)
    if side < MIN_FACE_SIDE:
        raise ImageDecodeError(f"{path}: {width}x{height} px is too small for a face (its "
                               f"{face_crop!r} face crop keeps {side} px)")
    if face_crop == CENTRE_HALF:
        top, left = (height - side) // 2, (width - side) // 2
        image = image[top : top + side, left : left + side]
    # INTER_AREA averages the pixels each output pixel covers: no aliasing when shrinking.
    image = cv2.resize(image, (preprocess.image_size,) * 2, interpolation=cv2.INTER_AREA)
    return np.ascontiguousarray(image, dtype=np.uint8)


def _decode_all(unique: list[str], preprocess: Preprocess, face_crop: str, progress: bool):
    """libjpeg reports a truncated JPEG only as text on fd 2: fd 2 goes to a file read per image."""
    pixels = np.empty((len(unique), preprocess.image_size, preprocess.image_size), np.uint8)
    truncated, failures = [], []
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
        finally:
            os.dup2(saved, 2)
            os.close(saved)
    if failures:
        raise ImageDecodeError(f"{len(failures)} file(s) cannot be used, e.g.\n  " + "\n  ".join(
            sorted(failures)[:5]) + "\nRemove them from the data folder (LFW-a: fetch again).")
    return pixels, truncated
