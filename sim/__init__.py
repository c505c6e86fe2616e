"""The cost model: cycles, energy and area of operators and whole models on an architecture.

Results, searches and parsed data files are memoized (:mod:`models.caches`, one registry for
every package); :func:`clear_caches` empties them all, so that the next call runs cold, and
:func:`cache_info` reports each cache's hits, misses and size.
"""

from models.caches import cache_info, clear_caches

__all__ = ["cache_info", "clear_caches"]
