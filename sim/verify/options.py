"""The verification bench's run options and their limits (``tpe verify``), importable without
numpy, so that ``tpe --help`` stays light."""

from __future__ import annotations

from pathlib import Path

__all__ = ["MAX_CASES", "MAX_DIM", "RANDOM_GEMMS", "WAVE_FORMATS", "option_error"]

#: Random GEMMs a verification run checks unless told otherwise (``tpe verify --cases``).
RANDOM_GEMMS = 3
#: The most random GEMMs one run checks (``tpe verify --cases``): each goes through the Python
#: bench cycle by cycle, about 30 ms on an 8x8 systolic array at the default sizes (200 took
#: 6.5 s there, measured with ``tpe verify``), so this many is an hour or more; the bench plans
#: every case before it starts. More cases: further runs with other ``--seed`` values.
MAX_CASES = 100_000
#: The largest ``max_dim`` (``tpe verify --max-dim``): a GEMM's operands and results go through
#: the Python bench cycle by cycle.
MAX_DIM = 1024
#: Wave formats ``verify_design(wave=...)`` writes, by the file's suffix, and Verilator's flag
#: for each: FST (compressed; GTKWave and Surfer read it) or VCD.
WAVE_FORMATS = {".fst": "--trace-fst", ".vcd": "--trace"}


def option_error(cases: object, max_dim: object, wave: Path | None, seed: object = 0
                 ) -> tuple[str, str] | None:
    """``(field, reason)`` of the first run option out of range (``cases``, ``max_dim``,
    ``wave``, ``seed``), ``None`` when all are valid: the one check that the library and
    ``tpe verify`` (which names the flag) share."""
    if not isinstance(cases, int) or isinstance(cases, bool) or not 1 <= cases <= MAX_CASES:
        return "cases", (f"must be an integer in 1..{MAX_CASES} (got {cases!r}); check more "
                         "in further runs with other seeds")
    if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
        # (numpy's generators, which draw the bench's GEMMs, take no negative seed)
        return "seed", f"must be an integer >= 0 (got {seed!r})"
    if max_dim is not None and not (isinstance(max_dim, int) and not isinstance(max_dim, bool)
                                    and 1 <= max_dim <= MAX_DIM):
        return "max_dim", f"must be an integer in 1..{MAX_DIM} (got {max_dim!r})"
    if wave is not None:
        from sim.errors import InputError
        from sim.files import output_file

        try:
            output_file(wave, "wave", suffixes=tuple(WAVE_FORMATS))
        except InputError as err:
            return "wave", str(err).removeprefix("wave: ")
    return None
