"""siamlib: the thin library behind the Siamese one-shot face-verification workbook.

The notebooks tell the story; siamlib holds what more than one notebook or a test needs.
One module per idea: ``paths`` (where things live), ``files`` (checksums, locks, building
aside), ``data`` (getting and verifying LFW-a), ``pairs`` and ``splits`` (pair files, identity
folders, splits), ``images`` (decoding and the uint8 cache), ``pipeline`` (tf.data pipelines),
``model`` (Koch's network and its variants), ``training`` (fit and the run cache),
``profiles`` (every named run of every machine, and each notebook's set-up), ``budget`` (time
before training), ``scoring``, ``metrics`` (rates), ``stats`` (intervals and paired tests that
resample people), ``plots``; ``search``, ``view2``, ``baseline``,
``runs`` and ``widgets`` serve one notebook or task each; ``runner`` runs the notebooks.

The pair-label convention, stated once for the whole workbook: **1 = same person,
0 = different people**, and every score is "higher means more likely the same person".
"""

import os

# TensorFlow's C++ start-up chatter (CUDA probes, CPU feature notes) buries notebook output;
# keep warnings and errors. A value the user set wins.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

SAME = 1
DIFFERENT = 0

__version__ = "0.1.0"

# The workbook's GitHub repository, stated once: the Colab badges of the notebooks and README and
# each notebook's setup cell (which clones it in Colab) spell it out, and
# tests/test_colab_links.py checks that every one of them agrees with this.
REPOSITORY = "siamlib-workbook/siamese-face-verification"
