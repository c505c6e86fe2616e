"""Every error the simulator and its clients raise for bad input, in one place.

Each is a :class:`ValueError` whose ``str`` is one line naming the field, flag or key and the
fix; the ``tpe`` command line prints it and exits 2 (:data:`INPUT_ERRORS`). The layers below
``sim`` define their own (:class:`hw.spec.SpecError` for specs, :class:`mapping.MappingError`
when nothing fits, :class:`models.ModelError` for workloads); they are re-exported here so that
a caller catches every input error from one module.
"""

from __future__ import annotations

from hw.spec import SpecError
from mapping import MappingError
from models import ModelError

__all__ = ["INPUT_ERRORS", "FormatError", "InputError", "MappingError", "ModelError",
           "SpecError", "ToolchainError", "VerifyError"]


class InputError(ValueError):
    """Bad input found by a command itself (a flag out of range, an unwritable path)."""


class FormatError(SpecError):
    """A number format does not fit the engine; ``str`` names the flag and the fix."""


class ToolchainError(RuntimeError):
    """A tool (Verilator, g++, make) is missing or too old; ``str`` is one line naming it and
    the fix."""


class VerifyError(RuntimeError):
    """A design could not be built or its bench could not run; ``str`` is one line."""


#: What a command turns into one line on stderr and exit status 2.
INPUT_ERRORS: tuple[type[Exception], ...] = (SpecError, InputError, ModelError)
