"""The g++ optimisation levels a Verilated model may be built at (no imports: the command
line's parser reads them without loading the simulator)."""

__all__ = ["CXX_OPT_LEVELS", "DEFAULT_CXX_OPT"]

#: Optimisation levels the Verilated C++ model may be compiled at (g++'s ``-O`` levels).
CXX_OPT_LEVELS = ("0", "1", "2", "3", "s")

#: The default: ``-O0``. A bench runs a few thousand cycles, so the C++ build dominates a
#: verification: measured on this project's 2-core CI machine (2026-12-05), a 16x16 INT8
#: systolic array builds and runs in 64 s at ``-O0`` against 100 s at Verilator's own default
#: ``-Os`` (the run alone: 6.8 s and 7.0 s), a 3x7 array in 24 s against 36 s.
DEFAULT_CXX_OPT = "0"
