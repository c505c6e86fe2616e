"""The manifest's payload fields: every field's bit range and, for an array field, what each
lane holds, for every engine kind (the reader needs nothing but the manifest)."""

from __future__ import annotations

import itertools

import pytest

from hw.emit import render
from hw.packing import Codec
from hw.spec import engine_from_dict, engine_kinds

#: One small point per kind and dataflow (the lanes' meaning differs between dataflows).
POINTS = [
    dict(kind="systolic", rows=2, cols=3), dict(kind="systolic", rows=2, cols=3, dataflow="ws"),
    dict(kind="cube", m=2, n=3, k=2), dict(kind="addertree", lanes=2, k=3),
    dict(kind="addertree", lanes=2, k=3, dataflow="ws"), dict(kind="matrix2d", rows=2, cols=2),
    dict(kind="lut", rows=2, cols=2, group=3), dict(kind="bitslice", rows=2, cols=2),
    dict(kind="bitplane", rows=2, cols=2, depth=4),
    dict(kind="mx", rows=2, lanes=2, block=4, formats="fp8_e4m3+fp4_e2m1"),
]


def test_points_cover_every_kind() -> None:
    assert {p["kind"] for p in POINTS} == set(engine_kinds())


@pytest.mark.parametrize("point", POINTS, ids=lambda p: engine_from_dict(p).name)
def test_fields_give_bit_ranges_and_lane_order(point) -> None:
    _, manifest = render(engine_from_dict(point))
    widths = {p["name"]: p["width"] for p in manifest["ports"]}
    for name, stream in manifest["streams"].items():
        fields = sorted(stream["fields"], key=lambda f: f["lsb"])
        # the fields tile the payload port, LSB first, without gaps or overlaps
        assert fields[0]["lsb"] == 0
        for f, g in itertools.pairwise(fields):
            assert g["lsb"] == f["msb"] + 1
        assert fields[-1]["msb"] == widths[stream["payload"]] - 1
        for f in fields:
            assert f["msb"] - f["lsb"] + 1 == f["elem_width"] * max(f["lanes"], 1)
            assert (f["lanes"] > 0) == ("lane_order" in f), (name, f)
            if f["lanes"]:
                assert f["lane_order"].startswith("lane "), f["lane_order"]
        # a bench rebuilds its codec from these entries
        codec = Codec(stream["fields"])
        values = {f["name"]: [1] * f["lanes"] if f["lanes"] else 1 for f in fields}
        assert codec.unpack(codec.pack(**values)) == values
