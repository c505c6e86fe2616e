"""The reference pages (``docs/reference/``), written from the code itself: every command and
flag (from the parser), every architecture key (from the spec models: type, range, default,
meaning), every sweep-spec key, every number format and quantization scheme, the columns of
shapes.csv and of ``tpe sim model --csv``, and the keys of the ``--json`` outputs.

``python -m sim.cli.reference`` rewrites the pages; ``--check`` exits 1 when the committed
pages differ from what the code gives (tests/test_reference.py runs it).
"""

from __future__ import annotations

import argparse
import dataclasses
import inspect
import os
import re
import sys
import types
import typing
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

__all__ = ["PAGES", "pages", "write_pages"]

REPO = Path(__file__).resolve().parents[2]
OUT = REPO / "docs" / "reference"
_HEADER = ("<!-- Written by `python -m sim.cli.reference` from the code; do not edit "
           "(tests/test_reference.py checks it). -->\n\n")


# -- helpers ------------------------------------------------------------------------------------


def _cell(text: object) -> str:
    """``text`` fit for a Markdown table cell."""
    return " ".join(str(text).split()).replace("|", "\\|")


def _table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> list[str]:
    out = ["| " + " | ".join(header) + " |", "|" + "|".join(" --- " for _ in header) + "|"]
    out += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in rows]
    return [*out, ""]


def _comments(cls: type) -> dict[str, str]:
    """The ``#:`` comments above each field of ``cls``'s body (its own and its bases'), by
    field name."""
    out: dict[str, str] = {}
    for klass in reversed(cls.__mro__):
        try:
            lines = inspect.getsource(klass).splitlines()
        except (OSError, TypeError):
            continue
        pending: list[str] = []
        for line in lines:
            stripped = line.strip()
            if stripped.startswith("#:"):
                pending.append(stripped[2:].strip())
                continue
            m = re.match(r"^\s+([a-z_][a-z0-9_]*)\s*:", line)
            if m and pending:
                out[m.group(1)] = " ".join(pending)
            if not stripped.startswith("#"):
                pending = []
    return out


def _type(annotation: Any) -> str:
    """A field's type in words."""
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin is typing.Annotated:
        return _type(args[0])
    if origin is typing.Literal:
        return "one of " + ", ".join(f"`{a}`" for a in args)
    if origin in (typing.Union, types.UnionType):
        kinds = [_type(a) for a in args if a is not type(None)]
        optional = any(a is type(None) for a in args)
        return " or ".join(kinds) + (" (or unset)" if optional else "")
    if origin is tuple:
        return "list of " + _type(args[0]) if args else "list"
    if isinstance(annotation, type):
        return {"int": "integer", "float": "number", "bool": "boolean", "str": "string"}.get(
            annotation.__name__, annotation.__name__)
    return str(annotation)


def _constraints(info: Any) -> list[Any]:
    """The annotated_types constraints of a field, nested ones (``X | None``) included."""
    found = list(getattr(info, "metadata", []))

    def walk(annotation: Any) -> None:
        for arg in typing.get_args(annotation):
            if isinstance(arg, type) or arg is None:
                continue
            meta = getattr(arg, "metadata", None)
            if meta:
                found.extend(meta)
            walk(arg)
    walk(getattr(info, "annotation", None))
    return found


def _range(info: Any) -> str:
    parts = []
    for c in _constraints(info):
        for attr, sign in (("ge", ">="), ("gt", ">"), ("le", "<="), ("lt", "<")):
            if hasattr(c, attr):
                value = getattr(c, attr)
                parts.append(f"{sign} {value:,}" if isinstance(value, int) else f"{sign} {value:g}")
        if hasattr(c, "min_length"):
            parts.append(f"length >= {c.min_length}")
        if hasattr(c, "max_length"):
            parts.append(f"length <= {c.max_length}")
        if getattr(c, "pattern", None):
            parts.append(f"matches `{c.pattern}`")
    return ", ".join(parts) or "-"


def _default(info: Any) -> str:
    from pydantic_core import PydanticUndefined

    if info.default is PydanticUndefined and info.default_factory is None:
        return "required"
    value = info.default if info.default_factory is None else info.default_factory()
    if value is None:
        return "unset"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, tuple):
        return "[" + ", ".join(f'"{v}"' if isinstance(v, str) else str(v) for v in value) + "]"
    return f'"{value}"' if isinstance(value, str) else f"{value}"


def _fields(cls: type, skip: Sequence[str] = ()) -> list[list[str]]:
    """Rows ``key, type, range, default, meaning`` of a spec dataclass's fields."""
    notes = _comments(cls)
    rows = []
    for f in dataclasses.fields(cls):
        if f.name in skip:
            continue
        info = cls.__pydantic_fields__[f.name]  # type: ignore[attr-defined]
        meaning = info.description or notes.get(f.name, "")
        rows.append([f"`{f.name}`", _type(info.annotation), _range(info), _default(info),
                     meaning])
    return rows


# -- the pages ----------------------------------------------------------------------------------


def _parsers() -> Iterator[tuple[str, argparse.ArgumentParser]]:
    """Every ``tpe`` command's parser (every lazily filled one filled), with its words."""
    from sim.cli import build_parser

    def walk(parser: argparse.ArgumentParser, words: str) -> Iterator[
            tuple[str, argparse.ArgumentParser]]:
        yield words, parser
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                pending = getattr(action, "_fill", {})
                for name, sub in action.choices.items():
                    if name in pending:
                        target, fill = pending.pop(name)
                        fill(target)
                    yield from walk(sub, f"{words} {name}")
    yield from walk(build_parser(), "tpe")


def commands_md() -> str:
    """Every command and flag."""
    lines = ["# Commands", "",
             "Every `tpe` command and its options, as `tpe COMMAND --help` gives them. Exit "
             "status: 0 success, 1 a check failed, 2 bad input (one line on standard error "
             "naming the flag).", ""]
    for words, parser in _parsers():
        formatter = parser._get_formatter()
        lines += [f"## `{words}`", ""]
        if parser.description:
            lines += [" ".join(parser.description.split()), ""]
        usage = " ".join(parser.format_usage().split()).removeprefix("usage: ")
        lines += ["```text", usage, "```", ""]
        rows = []
        for action in parser._actions:
            if isinstance(action, (argparse._HelpAction, argparse._SubParsersAction)):
                if isinstance(action, argparse._SubParsersAction):
                    rows += [[f"`{name}`", "command", "-", _cell(sub.help or "")]
                             for name, sub in zip(action.choices, action._choices_actions,
                                                  strict=False)]
                continue
            name = action.metavar or action.dest
            flags = ", ".join(f"`{s}`" for s in action.option_strings) or f"`{name}`"
            if action.choices is not None and not isinstance(action.choices, Mapping):
                value = "one of " + ", ".join(f"`{c}`" for c in action.choices)
            elif action.nargs == 0:
                value = "flag"
            else:
                value = action.metavar or action.dest.upper()
                value = value if isinstance(value, str) else " ".join(value)
            default = action.default
            shown = ("-" if default in (None, False, argparse.SUPPRESS) or action.nargs == 0
                     or default == [] else f"`{default}`")
            if action.required:
                shown = "required"
            help_text = formatter._expand_help(action) if action.help else ""
            rows.append([flags, value, shown, help_text])
        if rows:
            lines += _table(("option", "value", "default", "meaning"), rows)
    return "\n".join(lines)


def architecture_md() -> str:
    """Every architecture key: the top level, memory levels, the vector unit, the GPU table and
    each engine kind's fields."""
    from hw.spec import ArchSpec, GpuSpec, InterconnectSpec, LevelSpec, VectorSpec, engine_kinds

    lines = ["# Architecture files", "",
             "An architecture is a TOML file (the presets are in `hw/presets/`): top-level "
             "keys, an `[engine]` table, one `[memory.NAME]` table per memory level (innermost "
             "first), an optional `[vector]`, for a GPU a `[gpu]` table, and an optional "
             "`[interconnect]` joining several devices. `base = "
             "\"<preset or file>\"` starts from another architecture: the file then gives only "
             "what it changes (tables merge key by key, an `[engine]` of another kind replaces "
             "the engine, levels merge by name). Any key can be changed on the command line "
             "with `--set key=value` (a level's as `NAME.field`) and swept as a sweep axis.",
             "", "## Top level", ""]
    lines += _table(("key", "type", "range", "default", "meaning"),
                    [["`base`", "string", "-", "unset",
                      "a preset name or an architecture file (a path relative to this file) "
                      "this file starts from"],
                     *_fields(ArchSpec, skip=("engine", "memory", "vector", "gpu",
                                              "interconnect"))])
    lines += ["## `[memory.NAME]`: a memory level", ""]
    lines += _table(("key", "type", "range", "default", "meaning"),
                    _fields(LevelSpec, skip=("name",)))
    lines += ["## `[vector]`: the vector unit of each core", ""]
    lines += _table(("key", "type", "range", "default", "meaning"), _fields(VectorSpec))
    lines += ["## `[gpu]`: a GPU architecture", ""]
    lines += _table(("key", "type", "range", "default", "meaning"), _fields(GpuSpec))
    lines += ["## `[interconnect]`: the links between devices (`tpe sim model --devices N`)",
              ""]
    lines += _table(("key", "type", "range", "default", "meaning"), _fields(InterconnectSpec))
    lines += ["## `[engine]`: the engine of each core", "",
              "`kind` chooses the engine; the other keys are the kind's. Every kind has "
              "`a_bits`, `w_bits`, `acc_bits` and `signed`.", ""]
    for kind, cls in sorted(engine_kinds().items()):
        doc = inspect.getdoc(cls) or ""
        lines += [f"### `kind = \"{kind}\"`", "", " ".join(doc.split("\n\n")[0].split()), ""]
        lines += _table(("key", "type", "range", "default", "meaning"),
                        _fields(cls, skip=("kind",)))
    return "\n".join(lines)


def sweep_md() -> str:
    """Every sweep-spec key and the results' columns."""
    from sim.sweep.spec import (
        METRIC_COLUMNS,
        METRIC_MEANINGS,
        METRICS,
        SWEEP_KEYS,
        WORKLOAD_KEYS,
    )

    lines = ["# Sweep specs", "",
             "A sweep spec is a TOML file with a `[sweep]` table, an `[axes]` table and a "
             "`[workload]` table (`tpe sweep SPEC.toml`).", "", "## `[sweep]`", ""]
    lines += _table(("key", "meaning"), [[f"`{k}`", v] for k, v in SWEEP_KEYS.items()])
    lines += ["## `[axes]`", "",
              "Each key is an architecture key (`--set` syntax, e.g. `\"engine.rows\"`, "
              "`\"dram.bandwidth_gb_per_s\"`; see [architecture.md](architecture.md)) or "
              "`base` (presets or architecture files); each value a list, `{values = [...]}`, "
              "`{start, stop, step}` (inclusive) or `{start, stop, factor}`. With a `base` axis, "
              "a table `[axes.<base>]` holds axes of that base only.", "",
              "## `[workload]`", ""]
    lines += _table(("key", "meaning"), [[f"`{k}`", v] for k, v in WORKLOAD_KEYS.items()])
    lines += ["## Objectives and result columns", "",
              "`sweep.objectives` entries are `metric:max` or `metric:min` over these metrics; "
              "each row of the results holds the point id, every axis, the workload, the "
              "architecture and engine names, these columns and `error`.", ""]
    lines += _table(("column", "type", "better", "meaning"),
                    [[f"`{k}`", t, METRICS.get(k, "-"), METRIC_MEANINGS[k]]
                     for k, t in METRIC_COLUMNS.items()])
    return "\n".join(lines)


def formats_md() -> str:
    """Every number format and quantization scheme."""
    from models.formats import get_format, known_formats
    from models.quant import get_scheme, named_schemes

    lines = ["# Number formats and quantization schemes", "", "## Number formats", "",
             "Names taken by `--a-fmt`, `--w-fmt`, `--o-fmt`, `--q-fmt`, `--kv-fmt` and by the "
             "schemes; integer widths run from 1 to 64 bits.", ""]
    rows = []
    for name in known_formats():
        example = name.split("..")[0]
        f = get_format(example)
        bits = f"{f.bits}" if ".." not in name else "1..64"
        rows.append([f"`{name}`", f.family, bits, f.mantissa_bits if f.is_float else "-",
                     "yes" if f.signed else "no"])
    lines += _table(("format", "family", "bits", "stored significand bits", "signed"), rows)
    from models.formats import BLOCK_FORMATS

    lines += ["## Block-scaled formats", "",
              "Blocks of consecutive elements along the reduction dimension share one scale "
              "(conversion in `models/mx.py`: round-to-nearest-even, saturating). Schemes use "
              "them through `w_block`, `a_block` and `kv_block`.", ""]
    lines += _table(("format", "element", "block", "scale", "bits per element", "source"),
                    [[f"`{f.name}`", f"`{f.element}`", f.block,
                      f"`{f.scale}`" + (f" + {f.tensor_scale_bits}-bit per tensor"
                                        if f.tensor_scale_bits else "")
                      + (", channels K-sorted" if f.reorder else ""),
                      f"{f.storage_bits:g}", f.source] for f in BLOCK_FORMATS.values()])
    lines += ["## Quantization schemes", "",
              "`--quant` and the sweeps' `workload.quant` take these names, the generic "
              "`wNaM[kvB]` (integer N-bit weights, M-bit activations, a16 = fp16, a B-bit KV "
              "cache) and any scheme with `+kvB` for a KIVI B-bit KV cache; `auto` is the "
              "engine's own integer widths.", ""]
    rows = []
    for name in named_schemes():
        s = get_scheme(name)
        w = s.w_block or s.w_fmt + (f" (group {s.w_group})" if s.w_group else "")
        a = s.a_block or s.a_fmt
        kv = s.kv_block or s.kv_fmt + (f" (group {s.kv_group}, {s.kv_residual} recent tokens "
                                       "kept)" if s.kv_group else "")
        rows.append([f"`{name}`", w, a, kv, s.description, s.source])
    lines += _table(("scheme", "weights", "activations", "KV cache", "meaning", "source"), rows)
    return "\n".join(lines)


def outputs_md() -> str:
    """The input and output columns and keys."""
    from sim.gpu.shapes import COLUMN_MEANINGS
    from sim.report.outputs import JSON_KEYS, csv_columns

    lines = ["# Files and outputs", "", "## shapes.csv (`tpe gpu measure`, `predict`, `check`)",
             ""]
    lines += _table(("column", "meaning"), [[f"`{k}`", v] for k, v in COLUMN_MEANINGS.items()])
    lines += ["## `tpe sim model --csv`: one row per operator", ""]
    lines += _table(("column", "meaning"), [[f"`{k}`", v] for k, v in csv_columns().items()])
    for command, keys in JSON_KEYS.items():
        lines += [f"## `{command} --json`", ""]
        lines += _table(("key", "meaning"), [[f"`{k}`", v] for k, v in keys.items()])
    return "\n".join(lines)


#: The pages and what writes each.
PAGES: dict[str, Callable[[], str]] = {
    "commands.md": commands_md, "architecture.md": architecture_md, "sweep.md": sweep_md,
    "formats.md": formats_md, "outputs.md": outputs_md,
}


def pages() -> dict[str, str]:
    """Every page's text (the parser's help laid out at a fixed width)."""
    old = os.environ.get("COLUMNS")
    os.environ["COLUMNS"] = "100"
    try:
        return {name: _HEADER + write().rstrip() + "\n" for name, write in PAGES.items()}
    finally:
        if old is None:
            os.environ.pop("COLUMNS", None)
        else:
            os.environ["COLUMNS"] = old


def write_pages(out: Path = OUT) -> list[Path]:
    from sim.files import replacing

    out.mkdir(parents=True, exist_ok=True)
    written = []
    for name, text in pages().items():
        with replacing(out / name) as tmp:
            tmp.write_text(text)
        written.append(out / name)
    return written


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m sim.cli.reference",
                                description=__doc__.split("\n\n")[0])
    p.add_argument("--check", action="store_true",
                   help="exit 1 if docs/reference differs from what the code gives")
    args = p.parse_args(argv)
    if args.check:
        stale = [name for name, text in pages().items()
                 if not (OUT / name).is_file() or (OUT / name).read_text() != text]
        for name in stale:
            print(f"docs/reference/{name}: differs from the code; run python -m "
                  "sim.cli.reference")
        return 1 if stale else 0
    for path in write_pages():
        print(f"wrote {path.relative_to(REPO)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
