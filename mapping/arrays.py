"""Array helpers the mapping search and the cost model share.

:func:`sorted_unique` stands in for ``np.unique`` on the integer arrays of candidate tiles and
stream lengths: ``np.unique`` (numpy 2) asks ``np.ma.is_masked`` first, which imports
``numpy.ma`` (tens of milliseconds) on the first call, a cost every ``tpe sim gemm`` paid
for masks it never has.
"""

from __future__ import annotations

import numpy as np

__all__ = ["sorted_unique"]


def sorted_unique(values: np.ndarray) -> np.ndarray:
    """The distinct values of an integer array, ascending, flattened: ``np.unique(values)``
    (the same sort-and-compare numpy itself falls back to), without loading ``numpy.ma``.

    Integer arrays only: NaNs, which ``np.unique`` merges, never compare equal here.
    """
    flat = np.sort(np.asarray(values), axis=None)
    keep = np.ones(flat.shape, dtype=bool)
    keep[1:] = flat[1:] != flat[:-1]
    return flat[keep]
