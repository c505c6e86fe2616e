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
    Mapping,
    MappingError,
    candidates,
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
    "Mapping",
    "MappingError",
    "Objective",
    "best_index",
    "candidates",
    "clear_caches",
    "search",
    "untiled",
]
