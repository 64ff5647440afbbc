"""The train, validation and test pairs and their images, from one DataConfig, with no person
on two sides (docs/guide.md says how each source is split)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from siamlib import data, pairs
from siamlib.images import CENTRE_HALF, FACE_CROPS, WHOLE, ImageStore, Preprocess

LFW = "lfw-a"
VIEW2_FOLDS = 10
AUTO = "auto"
MIN_PEOPLE = 6  # each group of the 60/20/20 person split needs two, one with two photos


class _ChosenCrop(str):
    """A crop "auto" chose: equal to it for equality and the run key, yet a copy for another
    source (``dataclasses.replace``) chooses again rather than keep LFW-a's centre half."""


@dataclass(frozen=True)
class DataConfig:
    """Part of every run's key: ``face_crop`` "auto" becomes the source's own, so the key names
    it; ``generated_pairs`` are an identity folder's training pairs (a quarter for the others)."""

    source: str = LFW
    face_crop: str = AUTO
    preprocess: Preprocess = field(default_factory=Preprocess)
    val_fraction: float = 0.2
    split_seed: int = 0
    max_train_pairs: int | None = None
    max_eval_pairs: int | None = None
    generated_pairs: int = 2000
    view2_fold: int | None = None

    def __post_init__(self):
        if self.face_crop == AUTO or isinstance(self.face_crop, _ChosenCrop):
            chosen = _ChosenCrop(CENTRE_HALF if self.source == LFW else WHOLE)
            object.__setattr__(self, "face_crop", chosen)
        wrong = {  # field: what it must be, where it is not
            "source": (not str(self.source).strip(), f"{LFW!r} or a folder of identity folders"),
            "face_crop": (self.face_crop not in FACE_CROPS, f"one of {(AUTO, *FACE_CROPS)}"),
            "val_fraction": (not 0 < self.val_fraction < 1, "strictly between 0 and 1"),
            **{name: (getattr(self, name) is not None and getattr(self, name) < 2,
                      "None or at least 2 (a same and a different pair)")
               for name in ("max_train_pairs", "max_eval_pairs")},
            "generated_pairs": (self.generated_pairs < 8,
                                "at least 8 (validation and test get a quarter each)"),
            "view2_fold": (self.view2_fold is not None and (
                self.source != LFW or not 1 <= self.view2_fold <= VIEW2_FOLDS),
                f"None (View 1) or 1-{VIEW2_FOLDS}, with source={LFW!r} (source is "
                f"{self.source!r})"),
        }
        for name, (is_wrong, wanted) in wrong.items():
            if is_wrong:
                raise ValueError(f"DataConfig.{name} must be {wanted}, got {getattr(self, name)!r}")


@dataclass
class Splits:
    """Every image of the training people (for the samplers) and of the pairs, decoded once."""

    train: pd.DataFrame
    val: pd.DataFrame
    test: pd.DataFrame
    store: ImageStore
    train_people: set[str]

    def __repr__(self) -> str:
        return (f"Splits(train={len(self.train)} pairs, val={len(self.val)}, "
                f"test={len(self.test)}; {len(self.train_people)} training people; "
                f"{len(self.store)} images)")


def load_splits(config: DataConfig = DataConfig(), progress: bool = True) -> Splits:
    images = all_images(config.source, progress)
    train, val, test = split_pairs(config)
    train_people = pairs.pair_people(train)
    pair_paths = pd.concat([train, val, test])[["path_a", "path_b"]].to_numpy().ravel()
    needed = {*images.loc[images["name"].isin(train_people), "path"], *pair_paths}
    store = _decode(images, needed, config.preprocess, config.face_crop)
    print(f"{config.source}: face crop {config.face_crop}, {len(train)} training, {len(val)} "
          f"validation and {len(test)} test pairs, {len(store)} images")
    return Splits(train, val, test, store, train_people)


def split_pairs(config: DataConfig):
    """``load_splits``' pairs without decoding an image (what ``budget`` counts)."""
    lfw = data.fetch(progress=False) if config.source == LFW else None
    if config.view2_fold is not None:
        train, val, test = view2_experiment(
            pairs.read_view2(lfw / "pairs.txt", lfw / data.IMAGES), config.view2_fold)
    elif lfw:
        dev_train = pairs.read_pairs(lfw / "pairsDevTrain.txt", lfw / data.IMAGES)
        test = pairs.read_pairs(lfw / "pairsDevTest.txt", lfw / data.IMAGES)
        train, val = pairs.person_disjoint_split(dev_train, config.val_fraction,
                                                 seed=config.split_seed)
    else:  # balanced pairs inside each person group, fewer where a group has too few same pairs
        images, frames = all_images(config.source), []
        for offset, group in enumerate(check_data(config, 1, images)):
            group_images = images[images["name"].isin(set(group))]
            wanted = config.generated_pairs if offset == 0 else config.generated_pairs // 4
            per_person = group_images["name"].value_counts()
            same_available = int((per_person * (per_person - 1) // 2).sum())
            frames.append(pairs.make_pairs(group_images, min(wanted, 2 * same_available),
                                           seed=config.split_seed + offset))
        train, val, test = frames
    limits = (config.max_train_pairs, config.max_eval_pairs, config.max_eval_pairs)
    return tuple(frame if limit is None or limit >= len(frame) else pd.concat(  # balanced subsets
        group.sample(min(limit // 2, len(group)), random_state=config.split_seed)
        for _, group in frame.groupby("label", sort=True)).sort_index().reset_index(drop=True)
        for frame, limit in zip((train, val, test), limits))


def view2_experiment(view2: pd.DataFrame, fold: int):
    folds = sorted(view2["fold"].unique())
    val_fold = folds[(folds.index(fold) + 1) % len(folds)]
    return tuple(view2[part].reset_index(drop=True) for part in (
        ~view2["fold"].isin([fold, val_fold]), view2["fold"] == val_fold, view2["fold"] == fold))


def photos_of(people, config: DataConfig, preprocess: Preprocess | None = None) -> ImageStore:
    """The gallery for one-shot tasks, decoded as ``config`` says (or at ``preprocess``)."""
    photos = all_images(config.source)
    return _decode(photos, photos.loc[photos["name"].isin(set(people)), "path"],
                   preprocess or config.preprocess, config.face_crop)


def all_images(source: str = LFW, progress: bool = False) -> pd.DataFrame:
    return pairs.identity_images(data.fetch(progress=progress) / data.IMAGES if source == LFW
                                 else Path(source).expanduser())


def _decode(images: pd.DataFrame, image_paths, preprocess: Preprocess, face_crop: str):
    return ImageStore.load(image_paths, preprocess, face_crop, progress=False,
                           names=dict(zip(images["path"].astype(str), images["name"])))


def check_data(config: DataConfig, people_per_batch: int = 2,
               images: pd.DataFrame | None = None) -> list[np.ndarray]:
    """An identity folder's 60/20/20 person groups; one clear error before any training if it has
    too few people for them or for batches of ``people_per_batch`` (LFW-a's: when fetched)."""
    if config.source == LFW:
        return []
    images = all_images(config.source) if images is None else images
    people = np.array(sorted(images["name"].unique()))
    if len(people) < MIN_PEOPLE:
        raise ValueError(f"{config.source} has {len(people)} people; the 60/20/20 person split "
                         f"needs at least {MIN_PEOPLE}")
    np.random.default_rng(config.split_seed).shuffle(people)
    n_test = max(2, round(0.2 * len(people)))
    n_val = max(2, round(config.val_fraction * (len(people) - n_test)))
    groups = np.split(people, [len(people) - n_test - n_val, len(people) - n_test])
    photos = images["name"].value_counts()
    for what, group in zip(("training", "validation", "test"), groups):
        if len(group) < 2 or photos.loc[list(group)].max() < 2:
            raise ValueError(f"{config.source}: the {what} people ({len(group)} of "
                             f"{len(people)}) need two people, one with two or more photos")
    with_two = int((photos.loc[list(groups[0])] >= 2).sum())
    if with_two < people_per_batch:
        raise ValueError(f"{config.source}: identity batches of {people_per_batch} people need "
                         f"{people_per_batch} training people with two or more photos; the 60% "
                         f"of its {len(people)} people has {with_two}: use a smaller batch_size")
    return groups

