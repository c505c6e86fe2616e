"""The verification bench's run options and their limits (``tpe verify``), importable without
numpy, so that ``tpe --help`` stays light."""

from __future__ import annotations

__all__ = ["MAX_DIM", "RANDOM_GEMMS", "WAVE_FORMATS"]

#: Random GEMMs a verification run checks unless told otherwise (``tpe verify --cases``).
RANDOM_GEMMS = 3
#: The largest ``max_dim`` (``tpe verify --max-dim``): a GEMM's operands and results go through
#: the Python bench cycle by cycle.
MAX_DIM = 1024
#: Wave formats ``verify_design(wave=...)`` writes, by the file's suffix, and Verilator's flag
#: for each: FST (compressed; GTKWave and Surfer read it) or VCD.
WAVE_FORMATS = {".fst": "--trace-fst", ".vcd": "--trace"}
