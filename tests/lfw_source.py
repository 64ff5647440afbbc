"""What the LFW-a integration tests do when they have no data: skip locally, fail in CI.

A module of its own (not conftest) because notebooks/ has a conftest too, and two modules
named ``conftest`` cannot both be imported by name.
"""

import os

import pytest

LFW_SOURCE_HELP = (
    "The LFW-a integration tests need the data set. Set SIAMLIB_LFW_SOURCE to a folder holding "
    "lfw2.zip, pairsDevTrain.txt and pairsDevTest.txt (or run `python -m siamlib.data fetch`)."
)


def no_lfw_source():
    """Skip locally, fail in CI: silently skipped integration tests would pass unseen there."""
    if os.environ.get("CI") == "true":
        pytest.fail(LFW_SOURCE_HELP, pytrace=False)
    pytest.skip(LFW_SOURCE_HELP)
