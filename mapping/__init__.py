"""How an operator runs on an architecture: buffer tiling, loop order, spatial unrolling,
attention tiles, the split over cores and the engine's orientation.

Imports ``hw.spec`` and ``models`` only: every search takes its cost function as a parameter
(:func:`search` for the GEMM tiling, :func:`pick` for the typed candidate sets of
:func:`attention_tiles` and :func:`core_splits`), under one set of objectives
(:func:`objective_key`).
"""

from typing import TYPE_CHECKING, Any

from mapping.cores import ORIENTATIONS, CoreSplit, SplitDim, core_splits
from mapping.mapper import (
    OBJECTIVES,
    CostFn,
    Costs,
    Objective,
    Scored,
    best_index,
    check_objective,
    clear_caches,
    objective_key,
    pick,
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
    count_product,
    fold_grid,
    stream_granule,
    untiled,
)

__all__ = [
    "DIMS",
    "LOOP_ORDERS",
    "MIN_TILE_KEYS",
    "MIN_TILE_ROWS",
    "OBJECTIVES",
    "OPERAND_DIMS",
    "ORIENTATIONS",
    "AttentionTile",
    "Candidates",
    "CoreSplit",
    "CostFn",
    "Costs",
    "Dim",
    "FoldGrid",
    "Mapping",
    "MappingError",
    "Objective",
    "Scored",
    "SplitDim",
    "attention_tiles",
    "best_index",
    "candidates",
    "check_objective",
    "clear_caches",
    "core_splits",
    "count_product",
    "fold_grid",
    "key_share",
    "objective_key",
    "pick",
    "search",
    "stream_granule",
    "tile_sizes",
    "untiled",
    "visible_keys",
]

#: The names of :mod:`mapping.attention`, imported on first use: a GEMM's simulation does not
#: load the attention tiling (``tests/test_imports.py``).
_ATTENTION_NAMES = ("MIN_TILE_KEYS", "MIN_TILE_ROWS", "AttentionTile", "attention_tiles",
                    "key_share", "tile_sizes", "visible_keys")
if TYPE_CHECKING:
    from mapping.attention import (
        MIN_TILE_KEYS,
        MIN_TILE_ROWS,
        AttentionTile,
        attention_tiles,
        key_share,
        tile_sizes,
        visible_keys,
    )


def __getattr__(name: str) -> Any:
    """:data:`_ATTENTION_NAMES` from :mod:`mapping.attention`, imported on first use."""
    if name in _ATTENTION_NAMES:
        from mapping import attention

        return getattr(attention, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
