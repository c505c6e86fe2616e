"""The ``tpe`` command line.

Every subcommand lives in a module that exposes ``register(subparsers)``; each registered
parser sets ``func`` (called with the parsed namespace, returning the exit code).

A command imports only what it needs: at module level the modules here import the standard
library and ``models`` (plain Python) alone; the simulator, pydantic (through ``hw.spec``) and
numpy are imported by the functions that use them. A parser whose options need the
simulator's data (engine kinds, presets, schemes) is added with ``add_parser(..., fill=f)``:
``f(parser)`` adds its options when that command is chosen, so ``tpe --help`` and ``tpe sim
gemm`` do not load what ``tpe gen`` or ``tpe gpu`` need; and ``tpe COMMAND ...`` imports the
module of that command alone (:data:`COMMAND_MODULES`). benchmarks/cli_speed.py times it;
tests/test_imports.py checks what ``tpe sim gemm`` imports.

Exit codes: 0 success, 1 a check failed, 2 bad input (one line on stderr naming the field).
"""

from __future__ import annotations

import argparse
import gc
import importlib
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any

__all__ = ["InputError", "LazyHelp", "main"]


class _SubParsers(argparse._SubParsersAction):
    """argparse's subcommands, plus ``add_parser(..., fill=f)``: ``f(parser)`` adds the
    parser's arguments (and subcommands) only when its command is chosen."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._fill: dict[str, tuple[argparse.ArgumentParser,
                                    Callable[[argparse.ArgumentParser], object]]] = {}

    def add_parser(self, name: str, *,
                   fill: Callable[[argparse.ArgumentParser], object] | None = None,
                   **kwargs: Any) -> argparse.ArgumentParser:
        parser = super().add_parser(name, **kwargs)
        if fill is not None:
            self._fill[name] = (parser, fill)
        return parser

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace,
                 values: Any, option_string: str | None = None) -> None:
        pending = self._fill.pop(values[0], None)
        if pending is not None:
            sub, fill = pending
            fill(sub)
        super().__call__(parser, namespace, values, option_string)


class LazyHelp(str):
    """A help text made when help is printed, from ``make()``: for a text that costs a file
    read (the quantization schemes' names), which a command that prints no help never makes.

    argparse expands every help text with ``%`` (``%(default)s`` and friends) as it prints
    it; that is where this one is made (the text itself only tells that it is not yet).
    """

    make: Callable[[], str]

    def __new__(cls, make: Callable[[], str]) -> LazyHelp:
        text = super().__new__(cls, "(made when help is printed)")
        text.make = make
        return text

    def __mod__(self, params: Any) -> str:
        return self.make() % params


class _Version(argparse.Action):
    """``tpe --version``: the installed package's version, looked up only when asked (the
    lookup reads the package metadata, which every other command can do without)."""

    def __init__(self, option_strings: Sequence[str], dest: str = argparse.SUPPRESS,
                 default: str = argparse.SUPPRESS, help: str | None = None) -> None:
        super().__init__(option_strings, dest=dest, default=default, nargs=0, help=help)

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace,
                 values: Any, option_string: str | None = None) -> None:
        from importlib.metadata import PackageNotFoundError, version

        try:
            text = version("tpeforge")
        except PackageNotFoundError:  # run from a source tree that was never installed
            text = "unknown (not installed; pip install -e . in the repository)"
        print(f"tpe (TPEForge) {text}")
        parser.exit(0)


def _terminal_columns() -> int:
    """``shutil.get_terminal_size().columns``: ``COLUMNS``, else the width of the terminal on
    standard output, else 80 (shutil's rule, without importing shutil: see :class:`_Formatter`)."""
    try:
        columns = int(os.environ["COLUMNS"])
    except (KeyError, ValueError):
        columns = 0
    if columns <= 0:
        try:
            columns = os.get_terminal_size(sys.__stdout__.fileno()).columns
        except (AttributeError, ValueError, OSError):
            columns = 0
    return columns or 80


class _Formatter(argparse.HelpFormatter):
    """argparse's help layout at the same width: argparse makes a formatter for every option
    it adds (to check its metavar) and, given no width, imports ``shutil`` for the terminal's
    (and with it zlib, bz2 and lzma), which a command that prints no help does without."""

    def __init__(self, prog: str, indent_increment: int = 2, max_help_position: int = 24,
                 width: int | None = None) -> None:
        # argparse leaves a margin of 2 on the terminal's width it finds itself
        super().__init__(prog, indent_increment, max_help_position,
                         _terminal_columns() - 2 if width is None else width)


class _Parser(argparse.ArgumentParser):
    """argparse, but usage errors are one line and exit 2; subcommands may be filled lazily
    (:class:`_SubParsers`)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", _Formatter)
        super().__init__(*args, **kwargs)
        self.register("action", "parsers", _SubParsers)

    def error(self, message: str):  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


#: The module of ``sim.cli`` whose ``register`` adds each command, in ``tpe --help``'s order.
#: ``tpe COMMAND ...`` imports that module alone (tests/test_cli_imports.py checks the table
#: against what the modules register).
COMMAND_MODULES: dict[str, str] = {
    "demo": "demo", "gen": "hw", "verify": "hw", "sim": "sim", "gpu": "gpu", "sweep": "sweep",
}


def build_parser(argv: Sequence[str] | None = None) -> argparse.ArgumentParser:
    """The ``tpe`` parser. For an ``argv`` that starts with a command, only the module of that
    command is imported and registered (the other commands' modules are not needed to parse
    it); otherwise (``tpe --help``, an unknown command, no ``argv``) every command is."""
    parser = _Parser(
        prog="tpe",
        description="TPEForge: generate, verify and simulate tensor processing engines.",
    )
    parser.add_argument("--version", action=_Version, help="print the version and exit")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True
    first = argv[0] if argv else None
    chosen = [COMMAND_MODULES[first]] if first in COMMAND_MODULES else COMMAND_MODULES.values()
    for name in dict.fromkeys(chosen):
        importlib.import_module(f"{__name__}.{name}").register(sub)
    return parser


#: pydantic's plugin loader, which :func:`_no_pydantic_plugins` replaces.
PYDANTIC_PLUGIN_LOADER = "pydantic.plugin._loader"
#: The values of ``PYDANTIC_DISABLE_PLUGINS`` with which pydantic loads no plugin at all.
PYDANTIC_PLUGINS_OFF = ("__all__", "1", "true")


def _no_pydantic_plugins() -> None:
    """With pydantic's plugins off (``PYDANTIC_DISABLE_PLUGINS``), give pydantic a plugin
    loader that answers what its own answers then, no plugins, without importing
    ``importlib.metadata``.

    pydantic imports its loader on its first class, and the loader imports
    ``importlib.metadata`` (email, zipfile, csv, socket, tempfile and more: about 15 ms, 6% of
    ``tpe sim gemm``) before it looks at the switch, only to return no plugins. Nothing is
    replaced when the user turned plugins on or the loader is already imported;
    tests/test_imports.py checks that pydantic still takes ``get_plugins`` alone from it and
    that both loaders give the same answer.
    """
    if (os.environ.get("PYDANTIC_DISABLE_PLUGINS") not in PYDANTIC_PLUGINS_OFF
            or PYDANTIC_PLUGIN_LOADER in sys.modules):
        return
    import types

    loader = types.ModuleType(PYDANTIC_PLUGIN_LOADER, "pydantic's plugin loader with every "
                              "plugin off (sim.cli._no_pydantic_plugins)")
    loader.get_plugins = _no_plugins  # type: ignore[attr-defined]
    sys.modules[PYDANTIC_PLUGIN_LOADER] = loader


def _no_plugins() -> tuple[()]:
    return ()


def _parse(argv: list[str]) -> argparse.Namespace:
    """``argv`` parsed by the parser of its command (which loads that command's modules)."""
    # pydantic (the spec classes' base) looks for plugins of its own on its first class by
    # scanning every installed distribution's entry points (importlib.metadata, about 5 ms
    # of a 0.25 s command); tpe uses none, so it skips the scan unless the user chose
    # otherwise (PYDANTIC_DISABLE_PLUGINS is pydantic's documented switch)
    os.environ.setdefault("PYDANTIC_DISABLE_PLUGINS", "__all__")
    _no_pydantic_plugins()
    return build_parser(argv).parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """``tpe argv`` (default: the process's arguments); returns the exit code.

    Given no ``argv`` (the ``tpe`` script, ``python -m sim.cli``), the process is the
    command's, and its start-up objects are kept out of the cyclic garbage collector: the
    collector is off while the command's modules load and its arguments are parsed, then every
    object made so far is frozen (``gc.freeze``) and the collector runs as usual. Start-up
    makes hundreds of thousands of objects (modules, classes, functions, the spec classes'
    validators) that live as long as the process and are no garbage; the collector, run every
    few hundred allocations, walked them again and again, and once more at exit: about 7% of
    ``tpe sim gemm``'s instructions. A caller that passes ``argv`` (tests, scripts) keeps its
    collector as it is.
    """
    own_process = argv is None
    argv = sys.argv[1:] if argv is None else list(argv)
    collecting = own_process and gc.isenabled()
    if collecting:
        gc.disable()
    try:
        args = _parse(argv)
    finally:
        if collecting:
            gc.freeze()
            gc.enable()
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("tpe: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # the reader (e.g. `| head`) went away: not an error of ours
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0
    except Exception as err:
        from sim.errors import INPUT_ERRORS  # here, not above: it loads hw.spec and numpy

        if not isinstance(err, INPUT_ERRORS):
            raise
        print(f"tpe: error: {err}", file=sys.stderr)
        return 2


def __getattr__(name: str) -> Any:
    """``sim.cli.InputError`` (:class:`sim.errors.InputError`), imported on first use."""
    if name == "InputError":
        from sim.errors import InputError

        return InputError
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
