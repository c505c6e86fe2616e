"""Write a design folder: ``<out>/<name>/<name>.v``, its ``lint.vlt`` and ``manifest.json``.

A design is an engine (an :class:`hw.spec.EngineSpec`: its streams and timing contract in the
manifest) or a whole tile (a :class:`hw.spec.TileSpec`: its descriptor registers, external
memory protocol and scratchpads in the manifest); both are written the same way.

The Verilog is emitted with ``emit_src=False``, so it changes only when the hardware does:
the same spec gives byte-identical files. Files are first written to a temporary folder and
moved into place only when every step (synthesis included) has succeeded, the manifest last,
so a failure never leaves a half-written design behind.

The Verilog itself (:func:`hw.verilog.to_verilog`) is Amaranth's, emitted so that Verilator's
lint sees what the generator meant; ``lint.vlt`` beside it (:mod:`hw.lint`) waives, each with
its reason, the warnings that Amaranth's and Yosys's way of writing Verilog still gives.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
from collections.abc import Callable
from importlib.metadata import version
from pathlib import Path
from typing import Any

from hw.generators import build_component, engine_streams, lane_order
from hw.lint import LINT_FILE, lint_config
from hw.packing import FieldDesc, describe_layout
from hw.spec import ArchSpec, EngineSpec, SpecError, TileSpec, spec_to_dict
from hw.verilog import UNINITIALIZED, to_verilog

__all__ = ["MANIFEST", "UNINITIALIZED", "arch_to_dict", "generate", "read_manifest",
           "tile_from_manifest", "to_verilog"]

MANIFEST = "manifest.json"
FORMAT_VERSION = 1


def _ports(metadata: dict[str, Any]) -> list[dict[str, Any]]:
    out = [
        {"name": "clk", "dir": "in", "width": 1, "role": "clock, rising edge"},
        {"name": "rst", "dir": "in", "width": 1, "role": "synchronous reset, active high"},
    ]

    def walk(members: dict[str, Any], path: str) -> None:
        for key, member in members.items():
            if member["type"] == "port":
                out.append({"name": member["name"], "dir": member["dir"],
                            "width": member["width"], "role": f"{path}{key}"})
            else:
                walk(member["members"], f"{path}{key}.")

    walk(metadata["interface"]["members"], "")
    return out


#: A callback told the start of each long step of :func:`generate` (one line, no newline).
Progress = Callable[[str], None]


def _field(f: FieldDesc, order: dict[str, str]) -> dict[str, Any]:
    """A payload field for the manifest: its descriptor and bit range, and for an array
    field what each lane holds (the kind's ``lane_order``; a missing one is a generator bug)."""
    out = f.as_json()
    if f.lanes:
        if f.name not in order:
            raise TypeError(f"lane_order of the generator has no entry for field {f.name!r}")
        out["lane_order"] = order[f.name]
    return out


def _quiet(_: str) -> None:
    """No progress lines."""


def render(spec: EngineSpec | TileSpec, progress: Progress = _quiet
           ) -> tuple[str, dict[str, Any]]:
    """The Verilog text and the manifest (without synthesis figures) of a spec; ``progress``
    is told each long step as it starts."""
    if isinstance(spec, TileSpec):
        progress(f"building {spec.name} and writing its Verilog (Amaranth's RTLIL through "
                 "Yosys)")
        return _render_tile(spec)
    progress(f"building {spec.name}'s Amaranth design")
    component = build_component(spec)
    progress("elaborating it and writing Verilog (Amaranth's RTLIL through Yosys)")
    text = to_verilog(component, spec.name)
    order = lane_order(spec)
    streams = {
        name: {
            "payload": f"{name}__payload",
            "valid": f"{name}__valid",
            "ready": f"{name}__ready",
            "fields": [_field(f, order.get(name, {})) for f in describe_layout(layout)],
        }
        for name, layout in engine_streams(spec).items()
    }
    manifest = {
        "format": FORMAT_VERSION,
        "name": spec.name,
        "kind": spec.kind,
        "top": spec.name,
        "verilog": f"{spec.name}.v",
        "lint": LINT_FILE,
        "generator": {"tpeforge": version("tpeforge"), "amaranth": version("amaranth")},
        "spec": spec_to_dict(spec),
        "ports": _ports(component.metadata.as_json()),
        "streams": streams,
        "timing": {
            **spec.timing_contract(),
            "evaluated": {
                "preload_cycles": spec.preload_cycles,
                "fill_cycles": spec.fill_cycles,
                "drain_cycles": spec.drain_cycles,
                "fold_cycles": {str(n): spec.fold_cycles(n) for n in (1, 16, 64, 1024)},
                "fold_interval": {str(n): spec.fold_interval(n) for n in (1, 16, 64, 1024)},
            },
        },
    }
    return text, manifest


def _render_tile(spec: TileSpec) -> tuple[str, dict[str, Any]]:
    """:func:`render` of a tile: the engine's spec, the scratchpads, the register map and the
    external port's streams (protocol in ``hw.tile``'s module docstring)."""
    import hw.tile

    component = hw.tile.Tile(spec)
    text = to_verilog(component, spec.name)
    streams = {}
    for name in ("rd_req", "rd_data", "wr_req", "wr_data"):
        layout = getattr(component, name).payload.shape()
        streams[name] = {
            "payload": f"{name}__payload", "valid": f"{name}__valid", "ready": f"{name}__ready",
            "fields": [f.as_json() for f in describe_layout(layout)],
        }
    doc = (hw.tile.__doc__ or "").strip()
    manifest = {
        "format": FORMAT_VERSION,
        "name": spec.name,
        "kind": "tile",
        "top": spec.name,
        "verilog": f"{spec.name}.v",
        "lint": LINT_FILE,
        "generator": {"tpeforge": version("tpeforge"), "amaranth": version("amaranth")},
        "arch": spec.arch,
        "architecture": arch_to_dict(spec.architecture),
        "spec": spec_to_dict(spec.engine),
        "tile": spec.to_dict(),
        "ports": _ports(component.metadata.as_json()),
        "streams": streams,
        "registers": [{"offset": r.offset, "name": r.name, "bits": r.bits, "doc": r.doc}
                      for r in spec.registers()],
        "protocol": doc[doc.index("**Ports**"):doc.index("**Structure.**")].strip(),
    }
    return text, manifest


def arch_to_dict(arch: ArchSpec) -> dict[str, Any]:
    """``arch`` as plain JSON values that :func:`hw.spec.arch_from_dict` reads back to an
    equal architecture (absent optional tables, such as ``gpu`` on an engine architecture,
    are left out)."""
    return {k: v for k, v in json.loads(json.dumps(spec_to_dict(arch))).items()
            if v is not None}


def tile_from_manifest(manifest: dict[str, Any]) -> TileSpec:
    """The :class:`TileSpec` a tile manifest was written from: its ``architecture`` derived
    again (``hw.spec.tile_spec``); :class:`hw.spec.SpecError` when the manifest has none or
    the derived tile differs from its ``tile`` entry (a manifest of another version:
    regenerate it with ``tpe gen tile``)."""
    from hw.spec import arch_from_dict, tile_spec

    if manifest.get("kind") != "tile" or not isinstance(manifest.get("architecture"), dict):
        raise SpecError("manifest.architecture: missing, so the tile's architecture is "
                        "unknown; regenerate the design with `tpe gen tile`")
    t = manifest.get("tile", {})
    spec = tile_spec(arch_from_dict(manifest["architecture"]),
                     dim_bits=t.get("dim_bits", 0), addr_bits=t.get("addr_bits", 0))
    if json.loads(json.dumps(spec.to_dict())) != t:
        raise SpecError("manifest.tile: differs from the tile its architecture gives; "
                        "regenerate the design with `tpe gen tile`")
    return spec


def _synthesize(spec: EngineSpec | TileSpec, vfile: Path,
                sram: Callable[[ArchSpec], dict[str, Any]] | None) -> dict[str, Any]:
    """The manifest's ``synth`` entry: Yosys's figures of the logic; for a tile, its
    scratchpads kept as memories (out of the logic figures), their bits per buffer level
    (``memory_bits``) and, with ``sram``, their SRAM area as ``sram`` prices the tile's
    architecture."""
    from hw.synth import synthesize

    if not isinstance(spec, TileSpec):
        return synthesize(vfile, spec.name)
    import hw.tile

    figures = synthesize(vfile, spec.name, keep_memories=UNINITIALIZED)
    figures["memory_bits"] = {
        p.level: sum(m["bits"] for name, m in figures["memories"].items()
                     if re.fullmatch(re.escape(hw.tile.SCRATCHPADS[p.operand]) + r"\d+", name))
        for p in (spec.a, spec.w, spec.o)}
    if sram is not None:
        figures["sram"] = sram(spec.architecture)
    return figures


def _submodules(spec: EngineSpec | TileSpec) -> dict[str, list[str]]:
    """The output ports of a design's submodules (a tile's engine), for its lint.vlt."""
    if not isinstance(spec, TileSpec):
        return {}
    from hw.tile import submodule_outputs

    return submodule_outputs(spec)


def generate(spec: EngineSpec | TileSpec, out_dir: Path | str, *, synth: bool = False,
             sram: Callable[[ArchSpec], dict[str, Any]] | None = None,
             progress: Progress = _quiet) -> Path:
    """Write the design folder for ``spec`` under ``out_dir``; returns the folder. With
    ``synth``, the manifest gets Yosys's figures; for a tile, ``sram`` (the simulator's
    ``sim.energy.sram_area``, passed in: hw does not import the cost model) prices its
    scratchpads, which Yosys keeps as memories. ``progress`` is told each long step (building,
    converting, synthesizing, writing) as it starts."""
    out_dir = Path(out_dir)
    text, manifest = render(spec, progress)
    out_dir.mkdir(parents=True, exist_ok=True)
    final = out_dir / spec.name
    with tempfile.TemporaryDirectory(prefix=f".{spec.name}.", dir=out_dir) as tmp:
        tmp_dir = Path(tmp)
        vfile = tmp_dir / manifest["verilog"]
        progress(f"writing {len(text) / 1e6:.1f} MB of Verilog")
        vfile.write_text(text)
        (tmp_dir / LINT_FILE).write_text(lint_config(spec.name, text, _submodules(spec)))
        if synth:
            progress("synthesizing with Yosys")
            manifest["synth"] = _synthesize(spec, vfile, sram)
        (tmp_dir / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
        final.mkdir(exist_ok=True)
        for name in (manifest["verilog"], LINT_FILE, MANIFEST):  # the manifest last
            os.replace(tmp_dir / name, final / name)
    return final


def read_manifest(design_dir: Path | str) -> dict[str, Any]:
    """The manifest of a design folder; ``FileNotFoundError`` names what is missing."""
    path = Path(design_dir) / MANIFEST
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no manifest; generate the design with `tpe gen`")
    return json.loads(path.read_text())


def remove_design(design_dir: Path) -> None:
    shutil.rmtree(design_dir, ignore_errors=True)
