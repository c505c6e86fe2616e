"""Checks of a design's Verilog hierarchy (``hw.hier``), shared by the hierarchy tests."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

#: A module's header, over several lines where its port list is long.
HEADER = re.compile(r"^module (\S+)\(([^;]*)\);$", re.MULTILINE)


def modules(text: str) -> dict[str, str]:
    """Module name -> its text (header to endmodule)."""
    return {m.group(1): text[m.start():text.index("endmodule", m.start())]
            for m in HEADER.finditer(text)}


def ports(module_text: str) -> list[str]:
    """The port names in a module's header."""
    match = HEADER.match(module_text)
    assert match is not None, module_text[:80]
    return re.split(r",\s*", match.group(2))


def check_blocks(text: str, top: str,
                 blocks: Mapping[str, Sequence[str] | Mapping[str, Sequence[str]]]
                 ) -> dict[str, str]:
    """``text`` (a design ``top``'s Verilog) defines ``top`` and one module ``<top>_<block>``
    per block of ``blocks`` (block -> its instance names in ``top``, or -> {parent block: its
    instance names in the parent's module}, for a block placed inside another), each once,
    instantiated exactly at those names, every pin connected to named signals, their bits or
    constants (no escaped name), and every module's interface readable. Returns
    :func:`modules`."""
    mods = modules(text)
    assert set(mods) == {top} | {f"{top}_{b}" for b in blocks}
    for block, where in blocks.items():
        module = f"{top}_{block}"
        assert text.count(f"\nmodule {module}(") == 1
        parents = dict(where) if isinstance(where, Mapping) else {None: where}
        for parent in mods:
            owner = None if parent == top else parent.removeprefix(f"{top}_")
            positions = parents.get(owner, [])
            instances = re.findall(rf"^  {module} (\S+) \($", mods[parent], re.MULTILINE)
            assert sorted(instances) == sorted(positions), (block, parent)
            pins = re.findall(rf"^  {module} \S+ \(\n((?:    \..*\n)+)  \);", mods[parent],
                              re.MULTILINE)
            assert len(pins) == len(positions)
            for lines in pins:
                for line in lines.splitlines():
                    assert re.fullmatch(r"    \.\w+\([\w\[\]:'{}, ]+\),?", line), line
    for header in HEADER.finditer(text):
        assert "\\" not in header.group(0), header.group(0)
    return mods
