"""Shared fixtures: a tiny generated face set for the unit tests, and the real LFW-a.

The generated set mimics LFW-a's layout (``images/<Name>/<Name>_0001.jpg`` plus pair files) so
that the same code paths run on both; every image is a distinct smooth pattern, and the arrays
that were encoded are kept, so a test can tell which file a decoded image came from.
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import pytest
from required import no_lfw_source

FRAME = 250  # LFW-a frames are 250x250 grayscale

# Person -> file suffix of each of their images, in order (index 1, 2, ...).
PEOPLE = {
    "Ann_A": [".jpg"] * 5,
    "Bob_B": [".jpg"] * 4,
    "Cat_C": [".jpg"] * 3,  # Cat_C_0003.jpg is the truncated JPEG
    "Dan_D": [".jpg", ".png"],
    "Eve_E": [".jpg"],
    "Fay_F": [".jpg", ".pgm"],
}
TRUNCATED = ("Cat_C", 3)

# LFW's own format, tab-separated. View 1: "N", then N same and N different lines.
VIEW1_PAIRS = """3
Ann_A\t1\t2
Bob_B\t1\t3
Cat_C\t1\t2
Ann_A\t3\tBob_B\t4
Dan_D\t1\tEve_E\t1
Cat_C\t2\tFay_F\t1
"""
# View 2: "folds N", then that block once per fold.
VIEW2_PAIRS = """2\t2
Ann_A\t1\t3
Bob_B\t2\t4
Ann_A\t4\tCat_C\t1
Bob_B\t1\tEve_E\t1
Ann_A\t4\t5
Cat_C\t1\t2
Dan_D\t1\tFay_F\t1
Eve_E\t1\tAnn_A\t2
"""

CORRUPT_JPEG = "Corrupt JPEG data: premature end of data segment"
TRUNCATION_MESSAGES = (CORRUPT_JPEG, "Premature end of JPEG")  # libjpeg's words for a cut file

def face_pattern(person: int, image: int) -> np.ndarray:
    """A smooth 250x250 uint8 image: a gradient whose direction is the person's, plus a blob
    whose position is the image's. Smooth, so JPEG keeps it within a few grey levels."""
    y, x = np.mgrid[0:FRAME, 0:FRAME].astype(np.float64)
    angle = person * np.pi / 3
    gradient = (np.cos(angle) * (x - 125) + np.sin(angle) * (y - 125)) / 177  # in [-1, 1]
    blob = np.exp(-((x - 40 - 40 * image) ** 2 + (y - 125) ** 2) / (2 * 18.0**2))
    return np.clip(128 + 70 * gradient + 80 * blob, 0, 255).astype(np.uint8)


def truncate_jpeg(data: bytes, keep: float = 0.6) -> bytes:
    """The first ``keep`` of a JPEG's bytes and an end-of-image marker: the entropy-coded data
    stops early, as in LFW-a's damaged files."""
    return data[: int(len(data) * keep)] + b"\xff\xd9"


def _libjpeg_messages(image_paths) -> dict[str, str]:
    """What the native decoder writes to stderr for each image, found without siamlib.

    The images are decoded in a child process whose stdout and stderr share one pipe; a marker
    line is flushed before each image, so each message lands after the name of its image.
    """
    script = (
        "import sys, cv2\n"
        "for path in sys.stdin.read().splitlines():\n"
        "    print('@@IMAGE@@' + path, flush=True)\n"
        "    cv2.imread(path, cv2.IMREAD_GRAYSCALE)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script],
        input="\n".join(str(p) for p in image_paths),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        check=True,
    )
    messages, current = {}, None
    for line in result.stdout.splitlines():
        if line.startswith("@@IMAGE@@"):
            current = line[len("@@IMAGE@@") :]
        elif line.strip() and current is not None:
            messages[current] = (messages.get(current, "") + line).strip()
    return messages


@pytest.fixture(scope="session")
def find_truncated_jpegs():
    """A function: the paths, among those given, that libjpeg reports as cut short (sorted).

    It decodes in a child process and reads libjpeg's own messages, independently of how
    siamlib.images catches them, so the two can be compared.
    """

    def find(image_paths) -> list[str]:
        messages = _libjpeg_messages(image_paths)
        return sorted(
            path
            for path, text in messages.items()
            if any(words in text for words in TRUNCATION_MESSAGES)
        )

    return find


@dataclass(frozen=True)
class FaceSet:
    """A generated LFW-like data set; treat it as read-only (it is shared by the session)."""

    root: Path  # holds images/, pairs_view1.txt, pairs_view2.txt
    images_dir: Path  # images/<Name>/<Name>_NNNN.<ext>
    truth: dict[str, np.ndarray]  # path -> the 250x250 array that was written to it
    truncated: str  # path of the cut-short JPEG
    view1: Path
    view2: Path

    def path(self, name: str, index: int) -> str:
        suffix = PEOPLE[name][index - 1]
        return str(self.images_dir / name / f"{name}_{index:04d}{suffix}")

    @property
    def counts(self) -> dict[str, int]:
        return {name: len(suffixes) for name, suffixes in PEOPLE.items()}

    @property
    def readable(self) -> list[str]:
        """Every image path except the truncated one, sorted."""
        return sorted(p for p in self.truth if p != self.truncated)


@pytest.fixture(scope="session")
def face_set(tmp_path_factory) -> FaceSet:
    """6 people with 1-5 images each (JPEG, one PNG, one PGM, one truncated JPEG), a stray
    non-image in a person folder and at the top, and a View 1 and a View 2 pair file."""
    root = tmp_path_factory.mktemp("faces")
    images_dir = root / "images"
    truth = {}
    for person, (name, suffixes) in enumerate(PEOPLE.items()):
        folder = images_dir / name
        folder.mkdir(parents=True)
        for index, suffix in enumerate(suffixes, start=1):
            path = folder / f"{name}_{index:04d}{suffix}"
            pixels = face_pattern(person, index)
            ok, encoded = cv2.imencode(suffix, pixels)
            assert ok, f"cv2 could not encode {suffix}"
            data = encoded.tobytes()
            if (name, index) == TRUNCATED:
                data = truncate_jpeg(data)
            path.write_bytes(data)
            truth[str(path)] = pixels
    (images_dir / "Ann_A" / "notes.txt").write_text("not an image\n")
    (images_dir / "README.txt").write_text("not a person folder\n")
    view1, view2 = root / "pairs_view1.txt", root / "pairs_view2.txt"
    view1.write_text(VIEW1_PAIRS)
    view2.write_text(VIEW2_PAIRS)
    truncated = str(images_dir / "Cat_C" / "Cat_C_0003.jpg")
    # The cut must produce libjpeg's own complaint, or the truncation tests test nothing.
    messages = _libjpeg_messages(truth)
    assert set(messages) == {truncated}, messages
    assert CORRUPT_JPEG in messages[truncated]
    return FaceSet(root, images_dir, truth, truncated, view1, view2)


@pytest.fixture(scope="session")
def lfw_dataset() -> Path:
    """The real LFW-a, made ready by ``siamlib.data.fetch`` (cheap once it has run).

    Without ``$SIAMLIB_LFW_SOURCE`` and without an earlier fetch there is nothing to test on:
    skip locally, but fail in CI, where silently skipped integration tests would pass unseen.
    """
    from siamlib import data

    if not os.environ.get("SIAMLIB_LFW_SOURCE") and not data.dataset_dir().is_dir():
        no_lfw_source()
    return data.fetch(progress=False)



@pytest.fixture
def refuse_writes(monkeypatch):
    """A function: from now on, writing anything under a folder raises PermissionError.

    This stands in for ``chmod a-w``: the tests run as root, where chmod does not stop writes.
    Opening for writing, creating, renaming and deleting are refused, as on a read-only mount.
    """
    import builtins
    import errno
    import io

    guarded: list[Path] = []
    real_open, real_os_open = builtins.open, os.open

    def inside(*names) -> bool:
        for name in names:
            if isinstance(name, (str, os.PathLike)):
                path = Path(os.path.abspath(os.fspath(name)))
                if any(path.is_relative_to(folder) for folder in guarded):
                    return True
        return False

    def refuse(name):
        raise PermissionError(errno.EACCES, "Permission denied", os.fspath(name))

    def guarded_open(file, mode="r", *args, **kwargs):
        if any(flag in mode for flag in "wax+") and inside(file):
            refuse(file)
        return real_open(file, mode, *args, **kwargs)

    def guarded_os_open(path, flags, *args, **kwargs):
        if flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT) and inside(path):
            refuse(path)
        return real_os_open(path, flags, *args, **kwargs)

    def guard(function):
        def guarded_call(*args, **kwargs):
            if inside(*args[:2]):
                refuse(args[0])
            return function(*args, **kwargs)
        return guarded_call

    monkeypatch.setattr(builtins, "open", guarded_open)
    monkeypatch.setattr(io, "open", guarded_open)
    monkeypatch.setattr(os, "open", guarded_os_open)
    for name in ("mkdir", "makedirs", "replace", "rename", "unlink", "remove", "rmdir"):
        monkeypatch.setattr(os, name, guard(getattr(os, name)))

    def make_read_only(folder: Path) -> None:
        guarded.append(Path(os.path.abspath(folder)))

    return make_read_only


@pytest.fixture
def notebook_shows(tmp_path, monkeypatch, capsys):
    """What a notebook cell running ``code`` shows: an IPython shell, which displays errors as a
    kernel does, with the user's IPython folder and history left alone."""
    from IPython.core.interactiveshell import InteractiveShell
    from traitlets.config import Config

    monkeypatch.setenv("IPYTHONDIR", str(tmp_path))
    config = Config()
    config.HistoryManager.enabled = False
    shell = InteractiveShell(config=config)

    def shows(code: str) -> str:
        shell.run_cell(code)
        return capsys.readouterr().out.strip()

    return shows
