"""How an operator runs on an architecture: buffer tiling, loop order, spatial unrolling.

Imports ``hw.spec`` and ``models`` only; the cost function is a parameter of :func:`search`.
"""

from mapping.mapper import (
    OBJECTIVES,
    CostFn,
    Costs,
    Objective,
    best_index,
    clear_caches,
    search,
)
from mapping.tiling import (
    DIMS,
    LOOP_ORDERS,
    OPERAND_DIMS,
    Candidates,
    Dim,
    FoldGrid,
    Mapping,
    MappingError,
    candidates,
    fold_grid,
    stream_granule,
    untiled,
)

__all__ = [
    "DIMS",
    "LOOP_ORDERS",
    "OBJECTIVES",
    "OPERAND_DIMS",
    "Candidates",
    "CostFn",
    "Costs",
    "Dim",
    "FoldGrid",
    "Mapping",
    "MappingError",
    "Objective",
    "best_index",
    "candidates",
    "clear_caches",
    "fold_grid",
    "search",
    "stream_granule",
    "untiled",
]
