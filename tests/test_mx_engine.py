"""The MX dot-product engine: amaranth.sim grid, Verilator points, reference, timing, specs and
the simulator's view of it.

Every grid point runs random GEMMs in formats drawn from the point's (partial tiles, several
folds, partial last blocks, special values) and checks the results bit for bit against the
reference and the cycles against the cycle model; one more run injects idle input cycles and
output back-pressure. The reference itself is checked against exact rational arithmetic on
:func:`models.mx.decode`'s element values and against hand-computed roundings.
"""

from __future__ import annotations

import dataclasses
import json
import re
import zlib
from fractions import Fraction

import numpy as np
import pytest
from cli_run import run
from lockstep import check_gemm_amaranth, ci_subset, verify_lockstep

from hw.spec import SpecError, engine_from_dict, engine_kinds, load_arch
from hw.spec.mx import MX_ELEMENTS, MxSpec, element_decode
from models.mx import decode, quantize
from models.ops import Gemm
from models.quant import get_scheme, named_schemes
from sim.engines.mx import arith_actions, gemm_compute_cycles, gemm_folds
from sim.verify.amaranth_bench import run_gemm_amaranth
from sim.verify.driver import Case
from sim.verify.plan_mx import MxOperand, case_operands, plan_cases, reference_gemm

ALL = "+".join(MX_ELEMENTS)


def _random_specs(n: int, seed: int) -> list[MxSpec]:
    rng = np.random.default_rng(seed)
    specs = []
    for i in range(n):
        fmts = list(rng.choice(MX_ELEMENTS, size=int(rng.integers(1, 4)), replace=False))
        specs.append(MxSpec(
            rows=int(rng.integers(1, 4)), lanes=int(rng.integers(1, 5)),
            block=int(2 ** rng.integers(0, 4)),
            formats="+".join(fmts),
            # half the points with a narrow accumulator: results wrap
            acc_bits=int(rng.integers(8, 25)) if i % 2 else int(rng.integers(32, 65)),
            acc_lsb_exp=int(rng.integers(-40, 8))))
    return specs


EDGE_SPECS = [
    MxSpec(rows=2, lanes=2, block=4, formats=ALL, acc_bits=40, acc_lsb_exp=-20),
    MxSpec(lanes=1, block=1, formats="fp4_e2m1", acc_bits=1, acc_lsb_exp=0),
    MxSpec(rows=3, lanes=1, block=2, formats="fp6_e2m3+fp4_e2m1", acc_bits=20,
           acc_lsb_exp=-10),
    MxSpec(lanes=3, block=8, formats="fp8_e5m2", acc_bits=64, acc_lsb_exp=-60),
    MxSpec(lanes=2, block=2, formats="int8+fp8_e4m3", acc_bits=16, acc_lsb_exp=-4),
    MxSpec(lanes=2, block=32, formats="fp6_e3m2+fp6_e2m3+fp4_e2m1", acc_bits=32),
]
SPECS = EDGE_SPECS + _random_specs(16, seed=20261205)
#: CI runs the corners and the first 4 random points; all of them run with ``pytest -m slow``.
CI_SPECS = range(len(EDGE_SPECS) + 4)


def _check(spec: MxSpec, case: Case, rng: np.random.Generator, **stalls: float) -> None:
    check_gemm_amaranth(spec, case, rng, operands=case_operands, reference=reference_gemm,
                        **stalls)


@pytest.mark.parametrize("spec", ci_subset(SPECS, CI_SPECS))
def test_lockstep_amaranth(spec: MxSpec) -> None:
    rng = np.random.default_rng(zlib.crc32(spec.name.encode()))
    R, L, B = spec.rows, spec.lanes, spec.block
    for n in range(3):
        M, N, K = (int(rng.integers(1, 2 * R + 3)), int(rng.integers(1, 2 * L + 3)),
                   int(rng.integers(1, 3 * B + 3)))
        _check(spec, Case("grid", M, N, K, extreme="special" if n == 2 else ""), rng)
    _check(spec, Case("stalls", R + 1, L + 1, 2 * B + 1), rng, p_idle=0.4, p_stall=0.4)


def test_plan_cases_run_on_amaranth() -> None:
    """The planner's own cases (what `tpe verify` runs), every format pair drawn."""
    spec = MxSpec(rows=2, lanes=2, block=4, formats=ALL, acc_bits=24, acc_lsb_exp=-8)
    rng = np.random.default_rng(5)
    for case in plan_cases(spec, rng, random_gemms=8):
        _check(spec, case, rng, **({} if case.checks_cycles else
                                   {"p_idle": case.p_idle, "p_stall": case.p_stall}))


# -- the reference --------------------------------------------------------------------------


def _exact(spec: MxSpec, A: MxOperand, W: MxOperand) -> list[list[Fraction | None]]:
    """``A @ W`` in exact rationals from :func:`models.mx.decode` (None where not finite)."""
    B = spec.block
    av, wv = decode(A.codes, A.fmt), decode(W.codes, W.fmt)
    out = []
    for m in range(A.codes.shape[0]):
        row = []
        for n in range(W.codes.shape[1]):
            total: Fraction | None = Fraction(0)
            for k in range(A.codes.shape[1]):
                sa, sw = int(A.scales[m, k // B]), int(W.scales[k // B, n])
                x, y = av[m, k], wv[k, n]
                if 255 in (sa, sw) or not (np.isfinite(x) and np.isfinite(y)):
                    total = None
                    break
                total += (Fraction(float(x)) * Fraction(2) ** (sa - 127)
                          * Fraction(float(y)) * Fraction(2) ** (sw - 127))
            row.append(total)
        out.append(row)
    return out


@pytest.mark.parametrize("fmts", [("fp8_e4m3", "fp4_e2m1"), ("fp8_e5m2", "fp8_e5m2"),
                                  ("fp6_e3m2", "int8"), ("fp6_e2m3", "fp8_e4m3")])
def test_reference_is_the_exact_dot_product_when_nothing_is_dropped(fmts) -> None:
    """With the LSB at the smallest product's weight (no bit below it), the accumulator is
    the exact dot product of the decoded values in units of 2^acc_lsb_exp, modulo 2^64 (the
    register wraps); a NaN scale or a NaN/Inf element gives the integer indefinite."""
    lsb = element_decode(fmts[0]).unit + element_decode(fmts[1]).unit - 14  # scales >= 2^-7
    spec = MxSpec(lanes=1, block=4, formats="+".join(dict.fromkeys(fmts)), acc_bits=64,
                  acc_lsb_exp=lsb)
    rng = np.random.default_rng(11)
    case = Case("x", 3, 4, 11)
    for trial in range(6):
        # A in the pair's first format, W in its second; scales near 1 (nothing dropped),
        # but for the last trial, whose NaN scales and codes give the indefinite
        A = case_operands(MxSpec(lanes=1, block=4, formats=fmts[0]), case, rng)[0]
        W = case_operands(MxSpec(lanes=1, block=4, formats=fmts[1]), case, rng)[1]
        if trial < 5:
            A = MxOperand(A.codes, np.clip(A.scales, 120, 130), A.fmt)
            W = MxOperand(W.codes, np.clip(W.scales, 120, 130), W.fmt)
        got, want = reference_gemm(spec, A, W), _exact(spec, A, W)
        for m in range(3):
            for n in range(4):
                if want[m][n] is None:
                    assert got[m, n] == -(1 << 63)
                elif trial < 5:
                    units = want[m][n] / Fraction(2) ** lsb
                    assert units.denominator == 1
                    assert (units.numerator - int(got[m, n])) % (1 << 64) == 0


def test_reference_floors_each_block_and_wraps() -> None:
    """Hand-computed: FP4 E2M1 code 1 is 0.5, code 9 is -0.5, code 7 is 6.0; at scale 2^0
    (E8M0 127) one block of 0.5 x 0.5 = 0.25 enters an LSB of 2^-1 as floor(0.5) = 0, and
    0.5 x -0.5 as floor(-0.5) = -1; per block, not per dot product: two such blocks give 0
    and -2, not floor(0.5) and floor(-0.5) of the sum. 6 x 6 x 2^3 = 288 wraps in 8 bits
    to 32."""
    spec = MxSpec(lanes=1, block=1, formats="fp4_e2m1", acc_bits=8, acc_lsb_exp=-1)

    def op(codes, scales):
        return MxOperand(np.array(codes), np.array(scales), "fp4_e2m1")

    one = np.full((1, 1), 127)
    assert reference_gemm(spec, op([[1]], one), op([[1]], one))[0, 0] == 0
    assert reference_gemm(spec, op([[1]], one), op([[9]], one))[0, 0] == -1
    two = np.full((1, 2), 127)
    assert reference_gemm(spec, op([[1, 1]], two), op([[1], [1]], two.T))[0, 0] == 0
    assert reference_gemm(spec, op([[1, 1]], two), op([[9], [9]], two.T))[0, 0] == -2
    big = np.full((1, 1), 128)
    spec0 = dataclasses.replace(spec, acc_lsb_exp=0)
    assert reference_gemm(spec0, op([[7]], big), op([[7]], np.full((1, 1), 128)))[0, 0] == \
        (6 * 6 * 4 + 128) % 256 - 128
    nan = np.full((1, 1), 255)
    assert reference_gemm(spec, op([[0]], nan), op([[0]], one))[0, 0] == -128


def test_engine_matches_models_mx_on_quantized_data() -> None:
    """Real data through models.mx.quantize, run on the engine: the result is the
    dequantized product to the accumulator's LSB (floor per block)."""
    spec = MxSpec(lanes=3, block=8, formats="fp8_e4m3+fp4_e2m1", acc_bits=48, acc_lsb_exp=-24)
    rng = np.random.default_rng(3)
    a, w = rng.normal(size=(2, 21)), rng.normal(size=(21, 5))
    qa = quantize(a, dataclasses.replace(_fmt("mxfp8_e4m3"), block=8))
    qw = quantize(w.T, dataclasses.replace(_fmt("mxfp4"), block=8))
    K = 21
    A = MxOperand(qa.elements.reshape(2, -1)[:, :K], qa.scales, "fp8_e4m3")
    W = MxOperand(qw.elements.reshape(5, -1)[:, :K].T, qw.scales.T, "fp4_e2m1")
    got, _ = run_gemm_amaranth(spec, A, W, rng)
    np.testing.assert_array_equal(got, reference_gemm(spec, A, W))
    from models.mx import dequantize

    want = dequantize(qa) @ dequantize(qw).T
    blocks = -(-K // 8)
    assert np.all(np.abs(got * 2.0 ** -24 - want) <= blocks * 2.0 ** -24)


def _fmt(name: str):
    from models.formats import get_block_format

    return get_block_format(name)


# -- the spec -------------------------------------------------------------------------------


def test_element_decode_is_models_mx_decode() -> None:
    """Every code of every format: sig * 2^(shift + unit) is models.mx.decode's value, the
    special codes are its infinities and NaNs, and the fixed-point widths are those of the
    lead's table (E2M1 5, E2M3 7, E3M2 10, E4M3 19, E5M2 34, INT8 8)."""
    widths = {}
    for name in MX_ELEMENTS:
        d = element_decode(name)
        codes = np.arange(1 << d.bits)
        values = decode(codes, name)
        for c, v in zip(codes.tolist(), values, strict=True):
            sig, shift, special = d.fields(c)
            assert special == (not np.isfinite(v)), (name, c)
            if not special:
                assert sig * 2.0 ** (shift + d.unit) == v, (name, c)
                assert -(1 << (d.fixed_bits - 1)) <= sig << shift < 1 << (d.fixed_bits - 1)
        widths[name] = d.fixed_bits
    assert widths == {"fp8_e4m3": 19, "fp8_e5m2": 34, "fp6_e3m2": 10, "fp6_e2m3": 7,
                      "fp4_e2m1": 5, "int8": 8}


def test_timing_contract_formulas_match_fold_cycles() -> None:
    for spec in SPECS:
        contract = spec.timing_contract()
        for n in (1, 2, 17, 1000):
            env = {**dataclasses.asdict(spec), "K": n}
            assert eval(contract["fold_cycles"], {}, env) == spec.fold_cycles(n)
            parts = sum(eval(contract[k], {}, env) for k in
                        ("preload_cycles", "fill_cycles", "stream_cycles", "drain_cycles"))
            assert parts == spec.fold_cycles(n)
        assert spec.unrolling().stream == "k"
    spec = MxSpec(lanes=32)
    assert spec.macs_per_cycle == 1024 and spec.fold_cycles(4096) == 129
    assert gemm_folds(spec, 3, 65, 64).folds == 9
    spec = MxSpec(rows=4, lanes=8)
    assert spec.macs_per_cycle == 1024 and spec.fold_cycles(4096) == 132
    assert gemm_folds(spec, 5, 17, 64).folds == 2 * 3
    with pytest.raises(ValueError, match="stream_len must be >= 1"):
        spec.fold_cycles(0)


def test_kind_is_discovered_and_names_are_unique() -> None:
    assert engine_kinds()["mx"] is MxSpec
    assert len({s.name for s in SPECS}) == len(set(SPECS))
    assert all(re.fullmatch(r"[A-Za-z0-9_]+", s.name) for s in SPECS)
    # the code widths follow the formats
    assert (MxSpec(lanes=1, formats="fp4_e2m1").a_bits, MxSpec(lanes=1, formats=ALL).w_bits) \
        == (4, 8)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"lanes": 0}, r"^engine\.lanes: must be >= 1 \(got 0\)$"),
        ({"lanes": 2, "block": 12}, r"^engine\.block: must be a power of two \(got 12\)$"),
        ({"lanes": 2, "block": 64}, r"^engine\.block: must be <= 32 \(got 64\)$"),
        ({"lanes": 2, "formats": "fp4"},
         r"^engine\.formats: unknown element format 'fp4'; use one or more of fp8_e4m3, "
         r"fp8_e5m2, fp6_e3m2, fp6_e2m3, fp4_e2m1, int8 joined by '\+'$"),
        ({"lanes": 2, "formats": "int8+int8"},
         r"^engine\.formats: 'int8\+int8' names a format twice$"),
        ({"lanes": 2, "formats": "fp4_e2m1", "a_bits": 8},
         r"^engine: a_bits: the codes of fp4_e2m1 are 4 bits wide; leave a_bits out or set "
         r"it to 4 \(got 8\)$"),
        ({"lanes": 2, "signed": False}, r"^engine\.signed: must be one of True \(got False\)$"),
        ({"lanes": 2, "acc_lsb_exp": 401}, r"^engine\.acc_lsb_exp: must be <= 400 \(got 401\)$"),
        ({"lanes": 2, "blocks": 4},
         r"^engine\.blocks: unknown key; remove it or check its spelling$"),
    ],
)
def test_bad_values_name_the_field(data: dict, message: str) -> None:
    with pytest.raises(SpecError, match=message) as info:
        engine_from_dict({"kind": "mx", **data})
    assert "\n" not in str(info.value)


# -- Verilator ------------------------------------------------------------------------------

RTL_POINTS = [
    MxSpec(rows=2, lanes=2, block=4, formats=ALL, acc_bits=40, acc_lsb_exp=-20),
    MxSpec(lanes=3, block=2, formats="fp4_e2m1+fp8_e4m3", acc_bits=12, acc_lsb_exp=-3),
    MxSpec(rows=2, lanes=2, block=32, formats="fp8_e4m3+fp6_e3m2+fp6_e2m3+fp4_e2m1+int8"),
    MxSpec(rows=3, lanes=4, block=16, formats="fp8_e5m2+int8", acc_bits=64, acc_lsb_exp=-40),
]


@pytest.mark.rtl
@pytest.mark.parametrize("spec", ci_subset(RTL_POINTS, [0, 1]))
def test_verilog_lockstep(spec: MxSpec, tmp_path) -> None:
    report = verify_lockstep(spec, tmp_path)
    assert any(c["case"].startswith("special values") for c in report.cases)


# -- the simulator --------------------------------------------------------------------------


def test_preset_runs_every_scheme(capsys) -> None:
    """The preset runs every named scheme: the MX ones in its element formats as they are
    (mixed W-MXFP4 A-MXFP8 too), the rest saying how (NVFP4's E4M3 scales on the vector
    unit, FP16 activations in INT8 slices); an engine without int8 refuses what it cannot
    decode in one line naming the fix."""
    base = ["sim", "model", "--arch", "mx", "--model", "llama-3-8b", "--phase", "decode",
            "--batch", "1", "--seq", "128", "--json"]
    seconds, notes = {}, {}
    for quant in [*named_schemes(), "auto"]:
        code, out, err = run(capsys, [*base, "--quant", quant])
        assert code == 0, (quant, err)
        d = json.loads(out)
        seconds[quant] = d["seconds"]
        notes[quant] = {op["name"]: op["mapping"] for op in d["ops"]}["q_proj"].get(
            "formats", "")
    assert seconds["mxfp4"] < seconds["mxfp8"] == seconds["auto"]  # fewer weight bytes
    assert all(notes[q] == "" for q in ("mxfp8", "mxfp6", "mxfp4", "mxfp4-a8", "mxint8"))
    assert notes["nvfp4"].startswith("fp4_e2m1 with fp8_e4m3 scales per 16 along K: the "
                                     "engine runs the elements (one group per beat of 32")
    assert notes["w4a16"].startswith("fp16 as 12-bit block floating point integers")
    code, _, err = run(capsys, [*base, "--quant", "nvfp4", "--set", "engine.formats=fp8_e4m3"])
    assert code == 2 and err.count("\n") == 1
    assert err.startswith("tpe: error: --quant: nvfp4: q_proj.a_fmt: fp4_e2m1 is not an "
                          "element format of the MX engine") \
        and err.rstrip().endswith("add int8 to --set engine.formats (floats then run in INT8 "
                                  "slices)")


def _gemm(quant: str, M: int, N: int, K: int) -> Gemm:
    s = get_scheme(quant)
    return Gemm(name="g", M=M, N=N, K=K, a_fmt=s.a_fmt, w_fmt=s.w_fmt, a_group=s.a_group,
                a_scale_bits=s.a_scale_bits, a_scale_fmt=s.a_scale_fmt, w_group=s.w_group,
                w_scale_bits=s.w_scale_bits, w_scale_fmt=s.w_scale_fmt)


@pytest.mark.parametrize(("quant", "block", "passes", "per_output"), [
    ("mxfp4", 32, 1, lambda K: 1),  # E8M0 blocks of 32 in the engine: one conversion
    ("nvfp4", 16, 1, lambda K: 2 * (K // 16)),  # two E4M3 scales per group of 16, outside
    ("bf16-kvmxint8", 32, 4, lambda K: 1 + 3),  # 2 x 2 INT8 slices, shift-added
    ("w4a16", 32, 2, lambda K: (K // 128) * (1 + 1)),  # FP16 in 2 slices, scales per 128
])
def test_plan_of_formats_the_engine_lacks(quant, block, passes, per_output) -> None:
    """What the preset's engine does for each scheme (sim.engines.mx module doc): the block
    it runs at, its passes and the vector unit's operations per output; its cycles are those
    of an engine of that block."""
    from sim.execution import plan_gemm

    arch = load_arch("mx")
    M, N, K = 8, 16, 512
    plan = plan_gemm(arch, _gemm(quant, M, N, K))
    assert plan.arch.engine.block == block and plan.passes == passes
    assert plan.rescale_ops == M * N * per_output(K)
    assert gemm_compute_cycles(plan.arch.engine, M, N, K) == \
        (M // 4) * (N // 8) * (K // block + 4)


def test_gemm_quant_flag_and_cycles_independent_of_format(capsys) -> None:
    argv = ["sim", "gemm", "--arch", "mx", "--M", "16", "--N", "256", "--K", "1024",
            "--memory", "ideal", "--json"]
    res = {}
    for q in ("mxfp8", "mxfp4", "mxfp4-a8"):
        code, out, err = run(capsys, [*argv, "--quant", q])
        assert code == 0, err
        res[q] = json.loads(out)
    spec = load_arch("mx").engine
    for r in res.values():
        assert r["compute_cycles"] >= gemm_compute_cycles(spec, 16, 256, 1024)
        assert r["macs"] == 16 * 256 * 1024
    assert res["mxfp4"]["compute_cycles"] == res["mxfp8"]["compute_cycles"]
    code, _, err = run(capsys, [*argv, "--quant", "mxfp4", "--a-fmt", "int8"])
    assert code == 2 and "--quant: give either --quant or --a-fmt/--w-fmt" in err
    code, _, err = run(capsys, [*argv[:-1], "--a-fmt", "bf16", "--set",
                                "engine.formats=fp8_e4m3"])
    assert code == 2 and err.startswith("tpe: error: --a-fmt: bf16 is not an element format")
    # E8M0 blocks of 32 on an engine of 16: each block's scale repeated for its two beats
    code, out, err = run(capsys, [*argv, "--quant", "mxfp4", "--set", "engine.block=16"])
    assert code == 0, err
    assert json.loads(out)["compute_cycles"] >= gemm_compute_cycles(
        dataclasses.replace(spec, block=16), 16, 256, 1024)


def test_costs_follow_the_widest_format() -> None:
    """E4M3's 5x5 significands and 28-step shifts cost more per MAC than FP4's 3x3 and 4."""
    from sim.energy import load_table

    table = load_table("horowitz45")
    fp4, fp8 = MxSpec(lanes=8, formats="fp4_e2m1"), MxSpec(lanes=8, formats="fp8_e4m3")

    def per_mac(spec):
        return sum(a.energy_pj * a.per_mac for a in arith_actions(spec, table, 45.0))

    assert per_mac(fp4) < per_mac(fp8)
    names = [a.name for a in arith_actions(MxSpec(lanes=1, formats="int8"), table, 45.0)]
    assert names == ["multiply", "block_add", "block_scale"]  # no shifter for INT8 alone
