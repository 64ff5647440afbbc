"""nbval runs the notebooks under the smoke profile, away from the user's runs and figures.

Kernels inherit this process's environment, so setting it here (at collection, before any
kernel starts) is what makes every notebook pick the smoke profile through ``profile="auto"``.
Trained runs and figures go to a temporary folder: a test run must neither reuse a stale run
nor overwrite the committed figures.
"""

import os
import shutil
import tempfile

_scratch = tempfile.mkdtemp(prefix="siamlib-nbval-")
os.environ.setdefault("SIAMLIB_PROFILE", "smoke")
os.environ["SIAMLIB_RUNS_DIR"] = os.path.join(_scratch, "runs")
os.environ["SIAMLIB_FIGURES_DIR"] = os.path.join(_scratch, "figures")


def pytest_sessionfinish(session, exitstatus):
    shutil.rmtree(_scratch, ignore_errors=True)
