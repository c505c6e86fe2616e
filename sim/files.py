"""The files a command reads and writes: checked before any work starts, and written whole or
not at all.

A command checks every output path up front (:func:`output_file`, :func:`output_dir`): a path
that cannot be written, or is the wrong kind (a folder where a file goes, a file where a
folder goes, an image with a suffix no plotter writes), raises
:class:`sim.errors.InputError` with one line naming the flag and the path. Every file is
then written through :func:`replacing`: a temporary file in the target folder, renamed onto
the target when it is complete and removed when anything fails, so a failed or interrupted
command never leaves a half-written file (and an older file of that name stays as it was).
"""

from __future__ import annotations

import contextlib
import errno
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

from sim.errors import InputError

__all__ = ["FILE_SUFFIXES", "IMAGE_SUFFIXES", "output_dir", "output_file", "replacing"]

#: The image formats the plots are written in (matplotlib's Agg, PDF, SVG and PostScript
#: back-ends, all installed with matplotlib), by file suffix.
IMAGE_SUFFIXES = (".png", ".pdf", ".svg", ".jpg", ".jpeg", ".eps", ".ps", ".tif", ".tiff",
                  ".webp")


def _probe(folder: Path, flag: str, path: Path) -> None:
    """Fail unless a file can be created in ``folder`` (tried, not guessed from permission
    bits: root may lack write access to /proc, and a read-only mount says so only here)."""
    try:
        fd, name = tempfile.mkstemp(prefix=".tpe-probe-", dir=folder)
    except OSError as err:
        reason = err.strerror or errno.errorcode.get(err.errno or 0, "error")
        raise InputError(f"{flag}: cannot write {path}: no file can be created in {folder} "
                         f"({reason}); choose a folder you can write to") from None
    os.close(fd)
    os.unlink(name)


def _existing_ancestor(path: Path) -> Path:
    """The nearest folder above ``path`` (``path`` itself excluded) that exists."""
    for parent in path.absolute().parents:
        if parent.exists():
            return parent
    return Path("/")  # pragma: no cover (the root always exists)


def output_file(path: str | os.PathLike[str], flag: str, *,
                suffixes: tuple[str, ...] = ()) -> Path:
    """``path`` as a file a command may write (created or replaced), checked: not a folder,
    not another kind of file, ``suffixes`` (lower-case, with the dot) its suffix if given,
    and its folder writable (missing folders above it are created when writing, so the
    nearest existing one must be writable). Raises :class:`InputError` naming ``flag``."""
    p = Path(path)
    if p.is_dir():
        raise InputError(f"{flag}: {p} is a folder; give a file path")
    if p.exists() and not p.is_file():
        raise InputError(f"{flag}: {p} exists and is not a regular file; give a file path")
    if suffixes and p.suffix.lower() not in suffixes:
        raise InputError(f"{flag}: {p} must end in {', '.join(suffixes)}")
    _check_ancestors(p.absolute().parent, flag, p)
    return p


#: Suffixes of the single files the commands write or read (plots, tables, reports, Verilog,
#: specs): a folder flag given such a name (``--plot p.png``, ``--out r.csv``) is refused,
#: since it would make a folder named as a file.
FILE_SUFFIXES = (*IMAGE_SUFFIXES, ".csv", ".tsv", ".json", ".jsonl", ".xlsx", ".txt", ".md",
                 ".html", ".v", ".sv", ".vcd", ".toml")


def output_dir(path: str | os.PathLike[str], flag: str) -> Path:
    """``path`` as a folder a command may write into (created if missing), checked: not a
    file, not named as one (:data:`FILE_SUFFIXES`), and writable (or the nearest existing
    folder above it). Raises :class:`InputError` naming ``flag``."""
    p = Path(path)
    if p.exists() and not p.is_dir():
        raise InputError(f"{flag}: {p} exists and is not a folder; give a folder path")
    if not p.is_dir() and p.suffix.lower() in FILE_SUFFIXES:
        raise InputError(f"{flag}: {str(p)!r} names a {p.suffix} file, but {flag} takes a "
                         f"folder; give a folder name, e.g. {str(p.with_suffix(''))!r}")
    _check_ancestors(p.absolute(), flag, p)
    return p


def _check_ancestors(folder: Path, flag: str, path: Path) -> None:
    """``folder`` (to be created if missing) can hold new files: it or the nearest existing
    folder above it is a writable folder, with no file in the way."""
    here = folder if folder.exists() else _existing_ancestor(folder)
    if not here.is_dir():
        raise InputError(f"{flag}: cannot write {path}: {here} is a file, not a folder")
    _probe(here, flag, path)


@contextlib.contextmanager
def replacing(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Write ``path`` whole or not at all: yields a temporary path in ``path``'s folder (with
    ``path``'s suffix, so writers that choose the format by suffix still do), renamed onto
    ``path`` when the block ends and removed if it raises (or is interrupted). Missing
    folders above ``path`` are created."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{target.stem}.", suffix=f".tmp{target.suffix}",
                                dir=target.parent)
    os.close(fd)
    tmp = Path(name)
    mask = os.umask(0)  # mkstemp makes the file private; give it the permissions of open()
    os.umask(mask)
    os.chmod(tmp, 0o666 & ~mask)
    try:
        yield tmp
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
