"""siamlib: the thin library behind the Siamese one-shot face-verification workbook.

The notebooks tell the story; siamlib holds what more than one notebook or a test needs, one
module per idea (the README's "The library" says what each holds). The pair-label convention,
stated once for the whole workbook: **1 = same person, 0 = different people**, and every score
is "higher means more likely the same person".
"""

import os

# TensorFlow's C++ start-up chatter (CUDA probes, CPU feature notes) buries notebook output;
# keep warnings and errors. A value the user set wins.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

SAME = 1
DIFFERENT = 0

# The workbook's GitHub repository, stated once: tests/test_colab_links.py checks that the
# Colab badges of the notebooks and README, and each notebook's setup cell, agree with it.
REPOSITORY = "siamlib-workbook/siamese-face-verification"
