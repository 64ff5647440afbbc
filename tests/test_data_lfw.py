"""Integration test on the real LFW-a, taken from ``$SIAMLIB_LFW_SOURCE``.

Without the variable the test is skipped on a laptop but fails in CI, where a silent skip
would hide that the data set was never checked.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from required import no_lfw_source

from siamlib.data import LFW_A, SOURCE_ENV, fetch, verify


@pytest.fixture(scope="session")
def freshly_fetched_lfw(tmp_path_factory) -> Path:
    """LFW-a extracted from ``$SIAMLIB_LFW_SOURCE`` into a throwaway data folder: the whole
    fetch path on the real zip, not the copy other tests reuse."""
    source = os.environ.get(SOURCE_ENV)
    if not source:
        no_lfw_source()
    return fetch(source, data_dir=tmp_path_factory.mktemp("data"), progress=False)


@pytest.mark.integration
def test_lfw_a_is_complete_with_every_pair_image(freshly_fetched_lfw):
    counts = verify(freshly_fetched_lfw)
    assert counts["people"] == LFW_A.num_people == 5_749
    assert counts["images"] == LFW_A.num_images == 13_233
    assert counts["pairs"] == 2 * (1_100 + 500) + 10 * 600  # View 1, then View 2's ten folds
    assert (freshly_fetched_lfw / "images" / "Aaron_Peirsol" / "Aaron_Peirsol_0001.jpg").is_file()
    assert (freshly_fetched_lfw / "pairsDevTrain.txt").is_file()
    assert (freshly_fetched_lfw / "pairsDevTest.txt").is_file()
    assert (freshly_fetched_lfw / "pairs.txt").is_file()
