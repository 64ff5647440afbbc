"""What a test does when something it needs is not on this machine: skip locally, fail in CI.

Silently skipped integration tests would pass unseen in CI, where ``.ci/run`` installs
everything (the LFW-a source, Chromium); a developer's laptop may lack them and still runs
the rest. A module of its own (not conftest) because notebooks/ has a conftest too, and two
modules named ``conftest`` cannot both be imported by name.
"""

import os

import pytest

LFW_SOURCE_HELP = (
    "The LFW-a integration tests need the data set. Set SIAMLIB_LFW_SOURCE to a folder holding "
    "lfw2.zip, pairsDevTrain.txt and pairsDevTest.txt (or run `python -m siamlib.data fetch`)."
)


def unavailable(message: str):
    """Skip the test with ``message`` locally; fail it with ``message`` under CI=true."""
    if os.environ.get("CI") == "true":
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


def no_lfw_source():
    unavailable(LFW_SOURCE_HELP)
