"""Baseline process of the fit benchmark: load an .npz of views and compute X^T X.

``python benchmarks/load_gram.py DATA.npz``: ``numpy.load`` every array, stack the
views side by side (X, n x d) and form ``X^T X`` (numpy's ``syrk``); the floor a
fit from the same file is compared with (``bench_fit.py``).
"""

import sys

import numpy as np

with np.load(sys.argv[1]) as npz:
    x = np.concatenate([npz[k] for k in npz.files], axis=1)
g = x.T @ x
print(g.shape, float(g[0, 0]))
