"""Output paths: every command that writes checks its paths before any work (exit 2, one line
naming the flag) and writes its files whole or not at all (sim.files)."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from cli_run import run

from sim.errors import InputError
from sim.files import output_dir, output_file, replacing

ROOT = Path(__file__).resolve().parents[1]
MEASURED = str(ROOT / "sim" / "data" / "gpu" / "measured_h100.csv")
SPEC = str(ROOT / "examples" / "sweeps" / "llama7b_10k.toml")
UNWRITABLE = "/proc/tpe-x"  # /proc takes no new files, not even from root


def test_output_file_refuses_folders_suffixes_and_unwritable_places(tmp_path: Path) -> None:
    (tmp_path / "d").mkdir()
    with pytest.raises(InputError, match=r"^--out: .*d is a folder"):
        output_file(tmp_path / "d", "--out")
    with pytest.raises(InputError, match=r"^--out: .*x\.txt must end in \.csv"):
        output_file(tmp_path / "x.txt", "--out", suffixes=(".csv",))
    with pytest.raises(InputError, match=r"^--out: cannot write /proc/tpe-x/a\.csv"):
        output_file(f"{UNWRITABLE}/a.csv", "--out")
    (tmp_path / "f").write_text("x")
    with pytest.raises(InputError, match="is a file, not a folder"):
        output_file(tmp_path / "f" / "a.csv", "--out")
    # a missing folder is fine (created on writing) when the nearest existing one is writable
    assert output_file(tmp_path / "new" / "a.csv", "--out") == tmp_path / "new" / "a.csv"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d", "f"]  # the probe left nothing


def test_output_dir(tmp_path: Path) -> None:
    (tmp_path / "f").write_text("x")
    with pytest.raises(InputError, match=r"^--plot: .*f exists and is not a folder"):
        output_dir(tmp_path / "f", "--plot")
    with pytest.raises(InputError, match=r"^--plot: cannot write"):
        output_dir(UNWRITABLE, "--plot")
    assert output_dir(tmp_path / "a" / "b", "--plot") == tmp_path / "a" / "b"
    assert not (tmp_path / "a").exists()  # checking creates nothing
    # a folder named as a file (``--plot p.png``) is refused; an existing folder so named, or
    # a suffix no command writes a single file with (a Parquet dataset's), is not
    for name in ("p.png", "r.CSV", "t.json", "x.v"):
        with pytest.raises(InputError, match=r"^--plot: '.*' names a \.\w+ file, but --plot "
                                             r"takes a folder; give a folder name, e.g. '.*'$"):
            output_dir(tmp_path / name, "--plot")
        assert not (tmp_path / name).exists()
    (tmp_path / "old.png").mkdir()
    assert output_dir(tmp_path / "old.png", "--plot") == tmp_path / "old.png"
    assert output_dir(tmp_path / "results.parquet", "--out") == tmp_path / "results.parquet"


def test_replacing_writes_whole_files_or_nothing(tmp_path: Path) -> None:
    target = tmp_path / "out.csv"
    target.write_text("old")
    with pytest.raises(RuntimeError), replacing(target) as tmp:
        assert tmp.parent == tmp_path and tmp.suffix == ".csv" and tmp != target
        tmp.write_text("half")
        raise RuntimeError("killed mid-write")
    assert target.read_text() == "old"  # the old file stays as it was
    assert [p.name for p in tmp_path.iterdir()] == ["out.csv"]  # no temporary left
    with replacing(tmp_path / "sub" / "out.csv") as tmp:
        tmp.write_text("new")
    written = tmp_path / "sub" / "out.csv"
    assert written.read_text() == "new"
    mask = os.umask(0)
    os.umask(mask)
    assert stat.S_IMODE(written.stat().st_mode) == 0o666 & ~mask  # as open() would make it


#: (argv, the flag the one-line error names): each path is wrong in one way.
CASES = [
    (["gen", "systolic", "--rows", "2", "--cols", "2", "--out", UNWRITABLE], "--out"),
    (["gen", "systolic", "--rows", "2", "--cols", "2", "--out", "f.csv"], "--out"),
    (["gen", "tile", "--arch", "systolic", "--out", "f.csv"], "--out"),
    (["demo", "--out", UNWRITABLE], "--out"),
    (["sim", "model", "--arch", "systolic", "--model", "llama-2-7b", "--phase", "decode",
      "--batch", "1", "--seq", "8", "--plot", "f.csv"], "--plot"),
    (["sim", "model", "--arch", "systolic", "--model", "llama-2-7b", "--phase", "decode",
      "--batch", "1", "--seq", "8", "--plot", UNWRITABLE], "--plot"),
    (["sim", "model", "--arch", "systolic", "--model", "llama-2-7b", "--phase", "decode",
      "--batch", "1", "--seq", "8", "--csv", "d"], "--csv"),
    (["sim", "model", "--arch", "systolic", "--model", "llama-2-7b", "--phase", "decode",
      "--batch", "1", "--seq", "8", "--csv", "ops.txt"], "--csv"),
    (["gpu", "predict", "--in", MEASURED, "--gpu", "h100", "--out", "d"], "--out"),
    (["gpu", "predict", "--in", MEASURED, "--gpu", "h100", "--out", f"{UNWRITABLE}.csv"],
     "--out"),
    (["gpu", "check", "--measured", MEASURED, "--plot", "plot.txt"], "--plot"),
    (["gpu", "check", "--measured", MEASURED, "--plot", "d"], "--plot"),
    (["gpu", "calibrate", "--measured", MEASURED, "--out", "cal.csv"], "--out"),
    (["gpu", "measure", "--in", MEASURED, "--out", "d"], "--out"),
    (["sweep", SPEC, "--out", UNWRITABLE], "--out"),
    (["sweep", SPEC, "--out", "f.csv"], "--out"),
    (["sweep", SPEC, "--report", "f.csv"], "--report"),
    (["sweep", "report", SPEC], "RESULTS"),
    (["sweep", "report", "f.csv"], "RESULTS"),
    (["verify", "design", "--wave", "d"], "--wave"),
    (["verify", "design", "--wave", f"{UNWRITABLE}.vcd"], "--wave"),
]


@pytest.mark.parametrize(("argv", "flag"), CASES, ids=[" ".join(c[0][:2]) + f" {c[1]} {i}"
                                                         for i, c in enumerate(CASES)])
def test_a_wrong_path_exits_2_naming_it_and_writes_nothing(
        capsys, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, argv: list[str], flag: str
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "d").mkdir()
    (tmp_path / "f.csv").write_text("not, a, design\n")
    (tmp_path / "design").mkdir()
    (tmp_path / "design" / "manifest.json").write_text("{}")
    before = sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*"))
    code, out, err = run(capsys, argv)
    assert code == 2, (out, err)
    assert err.count("\n") == 1 and err.startswith(f"tpe: error: {flag}"), err
    assert sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*")) == before
