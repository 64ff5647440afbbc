"""Integration test on the real LFW-a, taken from ``$SIAMLIB_LFW_SOURCE``.

Without the variable the test is skipped on a laptop but fails in CI, where a silent skip
would hide that the data set was never checked.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from siamlib.data import LFW_A, SOURCE_ENV, fetch, verify

NO_SOURCE = (
    f"{SOURCE_ENV} is not set: set it to a folder holding lfw2.zip, pairsDevTrain.txt and "
    f"pairsDevTest.txt (or to lfw2.zip itself) to run the tests on the real LFW-a."
)


@pytest.fixture(scope="session")
def lfw_dataset(tmp_path_factory) -> Path:
    """LFW-a made ready once per test session in a throwaway data folder."""
    source = os.environ.get(SOURCE_ENV)
    if not source:
        if os.environ.get("CI") == "true":
            pytest.fail(NO_SOURCE)
        pytest.skip(NO_SOURCE)
    return fetch(source, data_dir=tmp_path_factory.mktemp("data"), progress=False)


@pytest.mark.integration
def test_lfw_a_is_complete_with_every_pair_image(lfw_dataset):
    counts = verify(lfw_dataset)
    assert counts["people"] == LFW_A.num_people == 5_749
    assert counts["images"] == LFW_A.num_images == 13_233
    assert counts["pairs"] == 2 * (1_100 + 500)
    assert (lfw_dataset / "images" / "Aaron_Peirsol" / "Aaron_Peirsol_0001.jpg").is_file()
    assert (lfw_dataset / "pairsDevTrain.txt").is_file()
    assert (lfw_dataset / "pairsDevTest.txt").is_file()
