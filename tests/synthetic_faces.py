"""A tiny generated face set that a Siamese network can really learn, and one run trained on it.

Each "person" is a smooth random 6x6 pattern blown up to the image size; each of their images is
that pattern plus pixel noise. Same-person images are therefore alike and different people are
not, so a small network learns to tell them apart in a few seconds: a test that trains on this
set can check that training works (the loss drops, validation accuracy is high), not only that
it runs.

The trained run is cached under pytest's base temporary folder, keyed by its RunConfig like any
run, so test modules that need it share one training: the first one trains, the others load.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from siamlib import paths
from siamlib.images import Preprocess
from siamlib.model import ModelConfig
from siamlib.splits import DataConfig
from siamlib.training import Run, RunConfig, TrainConfig, train

NUM_PEOPLE = 24
IMAGES_PER_PERSON = 6
IMAGE_SIZE = 48
PATTERN_SIDE = 6  # 8x8 patterns made validation accuracy swing from 0.75 to 1.0 across seeds
NOISE = 0.08  # pixel noise (images are in [0, 1]); the patterns themselves span the full range


def write_face_folder(
    root: Path,
    num_people: int = NUM_PEOPLE,
    images_per_person: int = IMAGES_PER_PERSON,
    size: int = IMAGE_SIZE,
    noise: float = NOISE,
    seed: int = 0,
) -> Path:
    """``root/Person_NN/Person_NN_000K.png`` grayscale images; returns ``root``."""
    rng = np.random.default_rng(seed)
    for person in range(num_people):
        folder = root / f"Person_{person:02d}"
        folder.mkdir(parents=True)
        pattern = rng.random((PATTERN_SIDE, PATTERN_SIDE))
        base = cv2.resize(pattern, (size, size), interpolation=cv2.INTER_CUBIC)
        for index in range(1, images_per_person + 1):
            image = base + rng.normal(0.0, noise, (size, size))
            pixels = np.clip(image * 255.0, 0, 255).astype(np.uint8)
            cv2.imwrite(str(folder / f"Person_{person:02d}_{index:04d}.png"), pixels)
    return root


def small_run_config(source: Path, name: str = "synthetic") -> RunConfig:
    """A network small enough to train on two CPU cores in seconds, on the generated faces."""
    return RunConfig(
        name=name,
        data=DataConfig(source=str(source), preprocess=Preprocess(image_size=IMAGE_SIZE)),
        model=ModelConfig(
            image_size=IMAGE_SIZE,
            filters=(16, 32),
            kernels=(5, 3),
            dense_units=64,
            init="glorot",
            l2=0.0,
        ),
        train=TrainConfig(
            learning_rate=1e-3,
            batch_size=32,
            epochs=12,
            patience=12,
            sampling="unrestricted",
            pairs_per_epoch=1024,
        ),
    )


def synthetic_workspace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One folder per test session holding the face set (made once), runs and image caches."""
    workspace = tmp_path_factory.getbasetemp() / "synthetic"
    faces = workspace / "faces"
    if not faces.is_dir():
        write_face_folder(faces)
    return workspace


def trained_synthetic_run(tmp_path_factory: pytest.TempPathFactory) -> Run:
    """The run of ``small_run_config``: trained by the first caller in a session, then loaded.

    The image cache goes to the workspace too (``$SIAMLIB_DATA_DIR``), never to ``data/``.
    """
    workspace = synthetic_workspace(tmp_path_factory)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(paths.DATA_DIR_ENV, str(workspace / "data"))
        return train(small_run_config(workspace / "faces"), runs_root=workspace / "runs",
                     progress=False)
