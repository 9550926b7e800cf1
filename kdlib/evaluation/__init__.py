"""Measuring models.

- ``metrics``: EER, minDCF, accuracy.
- ``verification``: the one speaker-verification evaluation (embeddings in batches, trial lists or all pairs).
- ``probing``: linear probes of what a frozen representation knows (speaker, keyword, words).
- ``superb``: the SUPERB-style suite (a weighted sum of frozen layers feeds light downstream models).
- ``attribution``: Integrated Gradients, integrated inputs (IML-KD), deletion and insertion tests.
- ``bench``: size and speed (parameters, serialized bytes, CPU and GPU latency).
"""
