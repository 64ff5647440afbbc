"""Decoding face images once into a compact uint8 store that every pipeline shares.

A pair set names the same images many times (DevTrain's 2,200 pairs use 3,443 images), so
images are decoded once, by path, and pairs refer to rows of one uint8 array. Scaling to
[0, 1] floats happens per batch inside the tf.data pipeline: holding every pair as float64
arrays (what the seed reports did) costs ~100x the memory for the same information.

Some LFW-a JPEGs are truncated: their coded data stops early (libjpeg says "Corrupt JPEG
data: premature end of data segment") and the rest of the frame is filled in. They are
decoded as far as their data goes, counted, and reported in one warning, not one per image.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import tempfile
import warnings
import zipfile
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

import cv2
import numpy as np
from tqdm.auto import tqdm

from siamlib import paths

_CACHE_FORMAT = 1


class ImageDecodeError(ValueError):
    """Files among the images that are not images at all (as opposed to truncated JPEGs)."""


@dataclass(frozen=True)
class Preprocess:
    """How a face image (a 250x250 LFW-a frame, a 92x112 ORL photo, ...) becomes a network input.

    Arguments:
        image_size: side of the square input in pixels (Koch et al. used 105).
        crop: side of the centre square kept before resizing, as a fraction of the image's
            shorter side (0 < crop <= 1), so one value fits every face set; None keeps the
            whole frame. The face fills roughly the middle 100-150 pixels of an LFW-a frame;
            the rest is background and hair, which the network would otherwise learn to match.
            0.6 keeps LFW-a's centre 150 pixels (ORL's centre 55). A number above 1 is a side
            in pixels, as crops were given before; it fits only images at least that large.
    """

    image_size: int = 105
    crop: float | None = None

    def __post_init__(self):
        if self.crop is not None and not self.crop > 0:
            raise ValueError(f"Preprocess.crop must be a fraction in (0, 1] of the image's "
                             f"shorter side (or a side in pixels), got {self.crop!r}")

    def crop_side(self, width: int, height: int) -> int | None:
        """The side in pixels of the centre square kept from a ``width`` x ``height`` image."""
        if self.crop is None:
            return None
        return round(self.crop * min(width, height)) if self.crop <= 1 else int(self.crop)


class ImageStore:
    """Decoded images as one ``(n, size, size)`` uint8 array, addressed by path.

    Build it with ``ImageStore.load``; look rows up with ``rows(paths)``.
    """

    def __init__(self, image_paths: list[str], pixels: np.ndarray, truncated: list[str]):
        self.paths = list(image_paths)
        self.pixels = pixels
        self.truncated = list(truncated)
        self._row = {p: i for i, p in enumerate(self.paths)}
        # The identity of each row: its folder's name (``<Name>/<Name>_0001.jpg``).
        self.names = np.array([Path(p).parent.name for p in self.paths])

    def __len__(self) -> int:
        return len(self.paths)

    def rows(self, image_paths) -> np.ndarray:
        """Row numbers of the given paths (int32), for index-based pair pipelines."""
        try:
            return np.fromiter((self._row[str(p)] for p in image_paths), dtype=np.int32)
        except KeyError as missing:
            raise KeyError(f"{missing.args[0]} is not in this ImageStore") from None

    @classmethod
    def load(
        cls,
        image_paths,
        preprocess: Preprocess = Preprocess(),
        cache_dir: str | Path | None = None,
        progress: bool = True,
    ) -> ImageStore:
        """Decode the unique images among ``image_paths`` once, reusing an on-disk cache.

        The cache (``data/cache`` by default) is keyed by the exact paths, each file's size and
        modification time, and the preprocessing, so changing any of them decodes again and
        nothing stale is ever served.
        """
        unique = sorted({str(p) for p in image_paths})
        cache_file = _cache_file(unique, preprocess, cache_dir)
        store = _load_cached(cls, cache_file, unique, preprocess)
        if store is None:
            pixels, truncated = _decode_all(unique, preprocess, progress)
            store = cls(unique, pixels, truncated)
            try:
                _save_atomically(
                    cache_file, pixels=pixels, truncated=np.array(truncated, dtype=str)
                )
            except OSError as error:  # a read-only shared data folder, or a full disk
                warnings.warn(
                    f"could not write the image cache {cache_file} ({error.strerror or error}); "
                    "the images were decoded and will be decoded again next time",
                    stacklevel=2,
                )
        if store.truncated:
            warnings.warn(
                f"{len(store.truncated)} of {len(unique)} images are truncated JPEGs; they were "
                "decoded as far as their data goes (see ImageStore.truncated)",
                stacklevel=2,
            )
        return store


def _load_cached(cls, cache_file: Path, unique: list[str], preprocess: Preprocess):
    """The store from its cache file; None (after a warning naming the file) when damaged."""
    if not cache_file.is_file():
        return None
    size = preprocess.image_size
    try:
        with np.load(cache_file) as cached:
            pixels, truncated = cached["pixels"], list(cached["truncated"])
        if pixels.shape != (len(unique), size, size) or pixels.dtype != np.uint8:
            raise ValueError(f"it holds {pixels.shape} {pixels.dtype} pixels")
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as error:
        warnings.warn(
            f"the image cache {cache_file} is damaged ({error}); decoding the images again "
            "and rewriting it",
            stacklevel=3,
        )
        return None
    return cls(unique, pixels, truncated)


def decode_gray(path: str | Path, preprocess: Preprocess = Preprocess()) -> np.ndarray:
    """One image file as a ``(size, size)`` uint8 array: grayscale, centre-cropped, resized."""
    data = np.fromfile(str(path), dtype=np.uint8)
    # cv2.imdecode raises on an empty buffer: a zero-byte file is just another non-image.
    image = cv2.imdecode(data, cv2.IMREAD_GRAYSCALE) if data.size else None
    if image is None:
        raise ImageDecodeError(f"{path}: not a readable JPEG/PNG/PGM image")
    return _crop_and_resize(image, preprocess)


def _crop_and_resize(image: np.ndarray, preprocess: Preprocess) -> np.ndarray:
    height, width = image.shape
    side = preprocess.crop_side(width, height)
    if side is not None:
        if side > min(width, height):
            raise ValueError(f"crop {side} is larger than the {width}x{height} image "
                             f"(a fraction such as crop=0.6 fits every image)")
        top, left = (height - side) // 2, (width - side) // 2
        image = image[top : top + side, left : left + side]
    size = preprocess.image_size
    if image.shape != (size, size):
        # INTER_AREA averages the pixels each output pixel covers: no aliasing when shrinking.
        image = cv2.resize(image, (size, size), interpolation=cv2.INTER_AREA)
    return np.ascontiguousarray(image, dtype=np.uint8)


@contextmanager
def _native_stderr():
    """Capture what C libraries write to the process's stderr; yields "text since last call".

    libjpeg reports a damaged JPEG ("Corrupt JPEG data: premature end of data segment") only
    as text on file descriptor 2, neither as an error nor as a flag any Python binding exposes.
    Decoding one image at a time with fd 2 pointed at a temporary file lets us attribute each
    message to its image, count them, and keep them out of the student's terminal.
    """
    sys.stderr.flush()
    with tempfile.TemporaryFile() as sink:
        saved = os.dup(2)
        os.dup2(sink.fileno(), 2)
        seen = 0

        def new_text() -> str:
            nonlocal seen
            size = os.fstat(sink.fileno()).st_size
            text = os.pread(sink.fileno(), size - seen, seen).decode(errors="replace")
            seen = size
            return text

        try:
            yield new_text
        finally:
            os.dup2(saved, 2)
            os.close(saved)


def _decode_all(unique: list[str], preprocess: Preprocess, progress: bool):
    size = preprocess.image_size
    pixels = np.empty((len(unique), size, size), dtype=np.uint8)
    truncated, failures, other_messages = [], [], []
    # The bar goes to stdout: stderr is captured while decoding.
    bar = tqdm(unique, desc="decoding images", disable=not progress, file=sys.stdout)
    with _native_stderr() as new_text:
        for row, path in enumerate(bar):
            try:
                pixels[row] = decode_gray(path, preprocess)
            except ImageDecodeError as error:
                failures.append(str(error))
            message = new_text()
            if "Corrupt JPEG data" in message or "Premature end of JPEG" in message:
                truncated.append(path)
            elif message:
                other_messages.append(message)
    for message in other_messages:
        sys.stderr.write(message)
    if failures:
        raise ImageDecodeError(
            f"{len(failures)} file(s) among the images could not be decoded, e.g.\n  "
            + "\n  ".join(sorted(failures)[:5])
            + "\nRemove them from the data folder. For a fetched data set, "
            "python -m siamlib.data verify --deep lists every damaged file and "
            "python -m siamlib.data fetch --deep --source PATH takes them again from the source."
        )
    return pixels, truncated


def _cache_file(unique: list[str], preprocess: Preprocess, cache_dir) -> Path:
    # Size and modification time stand in for content: a file replaced in place (a data set
    # fetched again or repaired) changes the key instead of being served from a stale cache.
    stamps = [(stat.st_size, stat.st_mtime_ns) for stat in map(os.stat, unique)]
    key = json.dumps([_CACHE_FORMAT, asdict(preprocess), unique, stamps]).encode()
    digest = hashlib.sha256(key).hexdigest()[:16]
    folder = Path(cache_dir) if cache_dir is not None else paths.data_dir() / "cache"
    return folder / f"images-{preprocess.image_size}px-{digest}.npz"


def _save_atomically(target: Path, **arrays) -> None:
    """Whole or not at all: a failed write (a full disk) leaves no ``.part`` file behind."""
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f".{target.name}.{os.getpid()}.part")
    try:
        with open(partial, "wb") as handle:
            np.savez(handle, **arrays)
        os.replace(partial, target)
    finally:
        partial.unlink(missing_ok=True)
