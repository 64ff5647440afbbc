"""Tests for siamlib.splits: the face crop belongs to the data source (issue 22, 10).

LFW-a's alignment puts the face in the centre half of its 250 px frame, so "auto" crops that
half there; a folder of ORL-style 92x112 photos is the face, so "auto" keeps the whole frame.
"""

from __future__ import annotations

from dataclasses import asdict, replace
from pathlib import Path

import cv2
import numpy as np
import pytest

from siamlib import profiles
from siamlib.images import CENTRE_HALF, WHOLE, Preprocess, decode_gray
from siamlib.splits import LFW, DataConfig, load_splits, photos_of
from siamlib.training import RunConfig

ORL_WIDTH, ORL_HEIGHT = 92, 112


def write_orl_style_folder(root: Path, people: int = 6, photos: int = 3) -> Path:
    """``root/s<k>/<i>.pgm``: 92x112 photos whose border is bright and whose centre half is
    dark, so a crop shows in the pixels."""
    rng = np.random.default_rng(0)
    for person in range(1, people + 1):
        (root / f"s{person}").mkdir(parents=True)
        for photo in range(1, photos + 1):
            pixels = rng.integers(200, 256, (ORL_HEIGHT, ORL_WIDTH), dtype=np.uint8)
            pixels[33:79, 23:69] = rng.integers(0, 40, (46, 46), dtype=np.uint8)
            cv2.imwrite(str(root / f"s{person}" / f"{photo}.pgm"), pixels)
    return root


@pytest.fixture(autouse=True)
def own_data_folder(tmp_path, monkeypatch):
    """The image cache goes under the test's folder, not the repository's data/."""
    monkeypatch.setenv("SIAMLIB_DATA_DIR", str(tmp_path / "data"))


@pytest.fixture
def orl(tmp_path) -> Path:
    return write_orl_style_folder(tmp_path / "orl")


def test_auto_is_the_centre_half_for_lfw_a_and_the_whole_frame_for_an_identity_folder(orl):
    assert DataConfig().face_crop == CENTRE_HALF
    assert DataConfig(source=LFW, face_crop="auto").face_crop == CENTRE_HALF
    assert DataConfig(source=str(orl)).face_crop == WHOLE


def test_an_explicit_face_crop_is_kept_for_any_source(orl):
    assert DataConfig(face_crop=WHOLE).face_crop == WHOLE
    assert DataConfig(source=str(orl), face_crop=CENTRE_HALF).face_crop == CENTRE_HALF


def test_a_copy_for_another_source_chooses_its_crop_again_unless_one_was_given(orl):
    """What a notebook does with a profile's run: ``config.replace(data={"source": ...})``."""
    assert replace(DataConfig(), source=str(orl)).face_crop == WHOLE
    assert replace(DataConfig(source=str(orl)), source=LFW).face_crop == CENTRE_HALF
    explicit = DataConfig(face_crop=CENTRE_HALF)
    assert replace(explicit, source=str(orl)).face_crop == CENTRE_HALF
    for profile in profiles.PROFILES.values():
        on_orl = profile.all_pairs.replace(data={"source": str(orl)})
        assert on_orl.data.face_crop == WHOLE, profile.name


def test_the_resolved_crop_is_what_the_run_key_holds(orl):
    auto, centre_half, whole = (DataConfig(face_crop=crop) for crop in ("auto", CENTRE_HALF,
                                                                           WHOLE))
    assert auto == centre_half and asdict(auto) == asdict(centre_half)
    assert asdict(auto)["face_crop"] == "centre-half"
    assert whole != centre_half
    keys = {RunConfig("run", data).key("float32") for data in (auto, centre_half, whole)}
    assert len(keys) == 2  # "auto" on LFW-a is the centre half's run; the whole frame is another


def test_an_unknown_face_crop_is_an_error_naming_the_choices():
    with pytest.raises(ValueError, match=r"face_crop must be one of \('auto', 'centre-half', "
                                         r"'whole'\), got 'haar'"):
        DataConfig(face_crop="haar")


def test_an_orl_style_folder_is_decoded_whole_and_load_splits_says_so(orl, capsys):
    config = DataConfig(source=str(orl), preprocess=Preprocess(46), generated_pairs=8)
    splits = load_splits(config, progress=False)
    printed = capsys.readouterr().out
    assert f"{orl}: face crop whole, {len(splits.train)} training, {len(splits.val)} " \
           f"validation and {len(splits.test)} test pairs, {len(splits.store)} images" in printed
    path = splits.store.paths[0]
    whole = cv2.resize(cv2.imread(path, cv2.IMREAD_GRAYSCALE), (46, 46),
                       interpolation=cv2.INTER_AREA)
    np.testing.assert_array_equal(splits.store.pixels[0], whole)
    assert splits.store.pixels[0].max() > 200  # the bright border is there: nothing cut off


def test_photos_of_uses_the_sources_face_crop_and_any_input_size(orl):
    config = DataConfig(source=str(orl), face_crop=CENTRE_HALF, preprocess=Preprocess(46))
    photos = photos_of({"s2", "s5"}, config)
    assert sorted(set(photos.names)) == ["s2", "s5"] and len(photos) == 6
    np.testing.assert_array_equal(photos.pixels[0], decode_gray(photos.paths[0], Preprocess(46),
                                                                CENTRE_HALF))
    assert photos.pixels.max() < 40  # the dark centre half only
    assert photos_of({"s2"}, config, Preprocess(20)).pixels.shape == (3, 20, 20)
