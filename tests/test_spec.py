"""hw.spec: validation with one-line errors naming the field, TOML presets and overrides."""

from __future__ import annotations

import re

import pytest

from hw.spec import (
    PRESET_DIR,
    ArchSpec,
    SpecError,
    SystolicSpec,
    apply_overrides,
    arch_from_dict,
    engine_from_dict,
    list_presets,
    load_arch,
    load_arch_dict,
    parse_override,
)


def test_presets_load_and_validate() -> None:
    assert "systolic" in list_presets()
    for name in list_presets():
        arch = load_arch(name)
        assert isinstance(arch, ArchSpec)
        assert arch.name == name


def test_systolic_preset_is_the_documented_default() -> None:
    arch = load_arch("systolic")
    e = arch.engine
    assert (e.rows, e.cols, e.a_bits, e.w_bits, e.dataflow) == (32, 32, 8, 8, "os")


def test_overrides_apply_and_revalidate() -> None:
    arch = load_arch("systolic", ["engine.rows=8", "engine.dataflow=ws", "clock_mhz=500"])
    assert (arch.engine.rows, arch.engine.dataflow, arch.clock_mhz) == (8, "ws", 500.0)
    raw = load_arch_dict("systolic")
    assert apply_overrides(raw, []) == raw
    assert raw["engine"]["rows"] == 32  # overrides never touch the source mapping


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("engine.rows=0", r"^engine\.rows: must be >= 1 \(got 0\)$"),
        ("engine.cols=257", r"^engine\.cols: must be <= 256 \(got 257\)$"),
        ("engine.a_bits=17", r"^engine\.a_bits: must be <= 16 \(got 17\)$"),
        ("engine.w_bits=0", r"^engine\.w_bits: must be >= 1 \(got 0\)$"),
        ("engine.acc_bits=65", r"^engine\.acc_bits: must be <= 64 \(got 65\)$"),
        ("engine.rowz=3", r"^engine\.rowz: unknown key; remove it or check its spelling$"),
        ("engine.dataflow=xs", r"^engine\.dataflow: must be one of 'os' or 'ws' \(got 'xs'\)$"),
        ("engine.weight_double_buffer=true",
         r"^engine\.weight_double_buffer: needs weight-stationary weights to double buffer "
         r"\(dataflow='os'\); set dataflow=ws or weight_double_buffer=false$"),
        ("engine.dataflow=ws engine.output_double_buffer=true",
         r"^engine\.output_double_buffer: needs output-stationary results to double buffer "
         r"\(dataflow='ws'\); set dataflow=os or output_double_buffer=false$"),
        ('engine.a_bits="8"', r"^engine\.a_bits: input should be a valid integer \(got '8'\)$"),
        ("engine.signed=1", r"^engine\.signed: input should be a valid boolean \(got 1\)$"),
        ("engine.kind=cube2", r"^engine\.kind: unknown engine kind 'cube2'; known kinds: "),
        ("dram.bandwidth_gb_per_s=0", r"^dram\.bandwidth_gb_per_s: must be > 0(\.0)? \(got 0\)$"),
        ("a_buffer.capacity_bytes=-4", r"^a_buffer\.capacity_bytes: must be >= 1 \(got -4\)$"),
        ("clock_mhz=-1", r"^clock_mhz: must be > 0(\.0)? \(got -1\)$"),
        ("frequency=3", r"^frequency: unknown key; remove it or check its spelling$"),
        ("engine.rows.x=3", r"^engine\.rows: is a value, not a table; cannot set engine\.rows\.x$"),
        ("=3", r"^--set: expected key\.path=value, got '=3'$"),
    ],
)
def test_bad_values_name_the_field(override: str, message: str) -> None:
    with pytest.raises(SpecError, match=message) as info:
        load_arch("systolic", override.split(" "))
    assert "\n" not in str(info.value)


def test_missing_tables_and_keys() -> None:
    raw = load_arch_dict("systolic")
    del raw["engine"]
    with pytest.raises(SpecError, match=r"^engine: required but missing"):
        arch_from_dict(raw)
    raw = load_arch_dict("systolic")
    del raw["engine"]["rows"]
    with pytest.raises(SpecError, match=r"^engine\.rows: required but missing$"):
        arch_from_dict(raw)
    raw = load_arch_dict("systolic")
    raw["memory"]["dram"] = 5
    with pytest.raises(SpecError, match=r"^dram: must be a table, got int$"):
        arch_from_dict(raw)


def test_toml_files(tmp_path) -> None:
    good = tmp_path / "mine.toml"
    src = (PRESET_DIR / "systolic.toml").read_text()
    good.write_text(src.replace('name = "systolic"', 'name = "mine"'))
    assert load_arch(str(good)).name == "mine"
    bad = tmp_path / "bad.toml"
    bad.write_text("name = \n")
    with pytest.raises(SpecError, match=r"bad\.toml: malformed TOML: .*line 1"):
        load_arch(str(bad))
    with pytest.raises(SpecError, match=r"nope\.toml: file not found$"):
        load_arch(str(tmp_path / "nope.toml"))
    with pytest.raises(SpecError, match=r"is a directory, expected a TOML file$"):
        load_arch(str(tmp_path))
    with pytest.raises(SpecError, match=r"^--arch: unknown preset 'tpu9'; presets: .*systolic"):
        load_arch("tpu9")


def test_parse_override_types() -> None:
    assert parse_override("a.b=3") == ("a.b", 3)
    assert parse_override("a=true") == ("a", True)
    assert parse_override("a=1.5") == ("a", 1.5)
    assert parse_override("a=os") == ("a", "os")
    assert parse_override('a="os"') == ("a", "os")


def test_engine_from_dict_and_frozen() -> None:
    spec = engine_from_dict({"kind": "systolic", "rows": 4, "cols": 2})
    assert spec == SystolicSpec(rows=4, cols=2)
    with pytest.raises(Exception, match=r"frozen|cannot assign"):
        spec.rows = 3  # type: ignore[misc]
    assert hash(spec) == hash(SystolicSpec(rows=4, cols=2))


@pytest.mark.parametrize("dataflow", ["os", "ws"])
def test_fold_cycles_formula(dataflow: str) -> None:
    spec = SystolicSpec(rows=5, cols=3, dataflow=dataflow)
    extra = 2 if dataflow == "os" else 1
    for n in (1, 9, 100):
        assert spec.fold_cycles(n) == n + 2 * 5 + 3 - extra
    with pytest.raises(ValueError, match=re.escape("stream_len must be >= 1, got 0")):
        spec.fold_cycles(0)


# -- architecture files built on a base ------------------------------------------------------


def _same_but_names(a: ArchSpec, b: ArchSpec) -> bool:
    import dataclasses

    return dataclasses.replace(a, name=b.name, description=b.description) == b


def test_a_file_on_a_base_is_the_base_with_its_changes(tmp_path) -> None:
    (tmp_path / "small.toml").write_text(
        'base = "systolic"\n[engine]\nrows = 16\ncols = 12\n'
        "[memory.dram]\nbandwidth_gb_per_s = 25.6\n")
    derived = load_arch(str(tmp_path / "small.toml"))
    want = load_arch("systolic", ["engine.rows=16", "engine.cols=12",
                                  "dram.bandwidth_gb_per_s=25.6"])
    assert _same_but_names(derived, want)
    assert derived.name == "small" and "systolic" in derived.description
    # a chain of files, each path relative to the file that names it; --set still applies
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "fast.toml").write_text(
        'base = "../small.toml"\nname = "fast"\nclock_mhz = 1500.0\n')
    fast = load_arch(str(tmp_path / "sub" / "fast.toml"), ["engine.rows=8"])
    assert fast.name == "fast"
    assert _same_but_names(fast, load_arch(str(tmp_path / "small.toml"),
                                           ["clock_mhz=1500", "engine.rows=8"]))


def test_a_base_of_another_engine_kind_and_a_new_level(tmp_path) -> None:
    cube = load_arch_dict("cube")["engine"]
    (tmp_path / "k.toml").write_text(
        'base = "systolic"\n[engine]\n' + "".join(
            f"{k} = {v!r}\n".replace("'", '"').replace("True", "true").replace("False", "false")
            for k, v in cube.items()))
    arch = load_arch(str(tmp_path / "k.toml"))
    assert arch.engine == load_arch("cube").engine  # the other kind replaces the engine
    assert arch.memory == load_arch("systolic").memory
    levels = "".join(f"[memory.{n}]\n" for n in ("a_buffer", "w_buffer", "o_buffer"))
    (tmp_path / "l2.toml").write_text(
        'base = "systolic"\n' + levels + '[memory.l2]\nholds = ["A", "W", "O"]\n'
        'instances = "chip"\ncapacity_bytes = 4194304\nbandwidth_gb_per_s = 200.0\n'
        "[memory.dram]\nlatency_ns = 80.0\n")
    l2 = load_arch(str(tmp_path / "l2.toml"))
    assert [lv.name for lv in l2.memory] == ["a_buffer", "w_buffer", "o_buffer", "l2", "dram"]
    assert l2.memory[:3] == load_arch("systolic").memory[:3]
    assert l2.memory[-1] == load_arch("systolic", ["dram.latency_ns=80"]).memory[-1]


@pytest.mark.parametrize(("text", "pattern"), [
    ('base = "systolic"\n[memory.l2]\nholds = ["A"]\n',
     r"^memory\.l2: systolic has no level of that name; to add one, list every level"),
    ('base = "nope"\n', r"^base: unknown preset 'nope'"),
    # an older file's [a_buffer] beside [memory.*] tables: refused, not dropped
    ('base = "systolic"\n[a_buffer]\ncapacity_bytes = 1024\n[memory.dram]\nlatency_ns = 5.0\n',
     r"^a_buffer: no memory level of that name"),
    ('base = "missing.toml"\n', r"^base: 'missing.toml': no such file"),
    ("base = 3\n", r"^base: must be a preset name or a TOML path"),
    ('base = "me.toml"\n', r"^base: 'me.toml' leads back to itself"),
])
def test_a_bad_base_is_one_line_naming_it(tmp_path, text: str, pattern: str) -> None:
    (tmp_path / "me.toml").write_text(text)
    with pytest.raises(SpecError, match=pattern):
        load_arch(str(tmp_path / "me.toml"))
