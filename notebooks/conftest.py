"""nbval runs the notebooks under the smoke profile, away from the user's runs and figures.

nbval cannot pass notebook parameters, so ``$SIAMLIB_PROFILE`` is how it picks the smoke profile:
kernels inherit this process's environment, so setting it here (at collection, before any
kernel starts) makes every notebook's ``profile="auto"`` resolve to smoke.
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

# The reference run's executed copies are read, not re-run: they ran under `cpu` (hours).
collect_ignore = ["reference"]
