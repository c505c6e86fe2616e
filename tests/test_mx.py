"""Block-scaled formats (models.formats.BLOCK_FORMATS, models.mx) against the OCP Microscaling
(MX) v1.0 specification's tables and rules and NVIDIA's NVFP4 recipe: element values, special
values, round-to-nearest-even, saturation, scale selection."""

from __future__ import annotations

import numpy as np
import pytest

from models import ModelError
from models.formats import BLOCK_FORMATS, get_block_format, get_format
from models.mx import ELEMENTS, decode, dequantize, encode, ksort, quantize, round_to

# The specification's element tables (OCP MX v1.0, section 5.3, tables 2 and 3; OCP 8-bit
# floating point v1.0 for E4M3 and E5M2): largest normal, smallest normal, largest and
# smallest subnormal.
SPEC = {
    "fp8_e4m3": (448.0, 2.0 ** -6, 0.875 * 2.0 ** -6, 2.0 ** -9),
    "fp8_e5m2": (57344.0, 2.0 ** -14, 0.75 * 2.0 ** -14, 2.0 ** -16),
    "fp6_e3m2": (28.0, 0.25, 0.1875, 0.0625),
    "fp6_e2m3": (7.5, 1.0, 0.875, 0.125),
    "fp4_e2m1": (6.0, 1.0, 0.5, 0.5),
}


@pytest.mark.parametrize("name", sorted(SPEC))
def test_element_tables(name: str) -> None:
    top, min_normal, max_sub, min_sub = SPEC[name]
    codes = np.arange(1 << get_format(name).bits)
    values = decode(codes, name)
    finite = values[np.isfinite(values)]
    assert finite.max() == top and finite.min() == -top
    positive = np.unique(finite[finite > 0])
    assert positive[0] == min_sub
    e = ELEMENTS[name]
    subnormal = decode(np.arange(1, 1 << e.man_bits), name)
    assert subnormal.max() == max_sub
    assert decode(np.array([1 << e.man_bits]), name)[0] == min_normal
    # every code decodes to a distinct value but for +-0 (and NaNs)
    assert len(np.unique(finite)) == len(finite) - 1


def test_fp4_values_and_fp8_specials() -> None:
    assert decode(np.arange(8), "fp4_e2m1").tolist() == [0, 0.5, 1, 1.5, 2, 3, 4, 6]
    e4 = decode(np.arange(256), "fp8_e4m3")
    assert np.flatnonzero(np.isnan(e4)).tolist() == [0x7F, 0xFF] and not np.isinf(e4).any()
    e5 = decode(np.arange(256), "fp8_e5m2")
    assert np.flatnonzero(np.isinf(e5)).tolist() == [0x7C, 0xFC]
    assert np.flatnonzero(np.isnan(e5)).tolist() == [0x7D, 0x7E, 0x7F, 0xFD, 0xFE, 0xFF]
    for name in ("fp6_e3m2", "fp6_e2m3", "fp4_e2m1"):  # neither infinity nor NaN
        v = decode(np.arange(1 << get_format(name).bits), name)
        assert np.isfinite(v).all()
        with pytest.raises(ModelError, match="has no NaN"):
            encode(np.array([np.nan]), name)
    assert np.isnan(round_to(np.array([np.nan]), "fp8_e4m3")).all()
    assert np.isnan(round_to(np.array([np.nan]), "fp8_e5m2")).all()


def test_round_to_nearest_even_and_saturation() -> None:
    x = np.array([0.25, 0.75, 1.25, 1.75, 2.5, 3.5, 5.0, 7.0, 1e9, -2.5, -0.24, 0.26])
    assert round_to(x, "fp4_e2m1").tolist() == [0, 1, 1, 2, 2, 4, 4, 6, 6, -2, -0.0, 0.5]
    # E4M3: 448 is the largest; 464 (halfway to the next binade step) saturates, no infinity
    assert round_to(np.array([450.0, 464.0, 1e6, -1e6]), "fp8_e4m3").tolist() == [
        448, 448, 448, -448]
    # E5M2 saturates too in MX conversion (no overflow to infinity)
    assert round_to(np.array([1e9]), "fp8_e5m2").tolist() == [57344]
    # ties between subnormals go to the even code: 2^-10 is halfway between 0 and 2^-9
    assert round_to(np.array([2.0 ** -10, 3 * 2.0 ** -10]), "fp8_e4m3").tolist() == [
        0, 2 * 2.0 ** -9]


def test_mx_scale_selection() -> None:
    """The shared scale is 2^(floor(log2 max|V|) - emax), stored as E8M0 (bias 127)."""
    q = quantize(np.array([[5.0, -1.0] + [0.0] * 30, [0.3] + [0.01] * 31]), "mxfp4")
    assert (q.scales[:, 0] - 127).tolist() == [0, -4]  # emax of E2M1 is 2
    assert dequantize(q)[0, :2].tolist() == [4.0, -1.0]  # 5 ties to 4 (even), -1 exact
    assert dequantize(q)[1, 0] == 0.25  # 0.3 * 16 = 4.8 -> 4 -> 4 / 16
    emax = {n: ELEMENTS[n].emax for n in ("fp8_e4m3", "fp8_e5m2", "fp6_e3m2", "fp6_e2m3",
                                          "fp4_e2m1", "int8")}
    assert emax == {"fp8_e4m3": 8, "fp8_e5m2": 15, "fp6_e3m2": 4, "fp6_e2m3": 2,
                    "fp4_e2m1": 2, "int8": 0}
    # MXINT8: elements k * 2^-6 in [-(2 - 2^-6), 2 - 2^-6], symmetric
    q = quantize(np.array([[1.0, -1.0, 0.5] + [0.0] * 29]), "mxint8")
    assert q.scales[0, 0] == 127 and decode(q.elements[0, 0, :3], "int8").tolist() == [
        1.0, -1.0, 0.5]
    assert round_to(np.array([-5.0, 5.0]), "int8").tolist() == [-(2 - 2 ** -6), 2 - 2 ** -6]
    # E8M0's range: the exponent clamps at -127 and 127, NaN or infinity give the NaN scale
    tiny, huge = quantize(np.array([[1e-45] * 32, [1e40] * 32]), "mxfp4").scales[:, 0]
    assert (tiny, huge) == (0, 254)
    bad = quantize(np.array([[1.0, np.nan] + [0.0] * 30, [np.inf] + [1.0] * 31]), "mxfp8_e4m3")
    assert bad.scales[:, 0].tolist() == [255, 255] and np.isnan(dequantize(bad)).all()


def test_nvfp4_two_level_scales() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(4, 64)) * np.array([1.0, 10.0, 0.01, 300.0])[:, None]
    q = quantize(x, "nvfp4")
    assert q.tensor_scale == np.abs(x).max() / (6 * 448)
    block_amax = np.abs(x.reshape(4, 4, 16)).max(axis=-1)
    want = decode(encode(block_amax / 6 / q.tensor_scale, "fp8_e4m3"), "fp8_e4m3")
    assert np.array_equal(decode(q.scales, "fp8_e4m3"), want)
    err = np.abs(dequantize(q) - x) / block_amax.repeat(16, axis=-1)
    assert err.max() <= 0.17  # half of E2M1's widest step (2 of 6), relative to the block max
    # re-quantizing the dequantized tensor changes nothing
    again = quantize(dequantize(q), "nvfp4")
    assert np.array_equal(dequantize(again), dequantize(q))


def test_nvfp4_saturation_and_special_values() -> None:
    """An element beyond E2M1's 6 after its block scale rounds down saturates at 6; a block
    holding a NaN or an infinity gets E4M3's NaN scale (S.1111.111) and leaves the tensor
    scale and the other blocks as they would be without it; an all-zero tensor is zeros."""
    # block 0 sets the tensor scale to 1 (amax 6 * 448); block 1's scale 55.5 / 6 = 9.25
    # rounds to E4M3's 9 (steps of 1 in [8, 16)), so 55.5 / 9 = 6.17 saturates at 6
    x = np.concatenate([np.full(16, 6.0 * 448), np.full(16, 55.5)])[None]
    q = quantize(x, "nvfp4")
    assert q.tensor_scale == 1.0 and decode(q.scales, "fp8_e4m3").tolist() == [[448.0, 9.0]]
    assert dequantize(q)[0, 16:].tolist() == [54.0] * 16
    for special in (np.nan, np.inf, -np.inf):
        y = np.concatenate([x[0], [special], np.full(15, 1.0)])[None]
        q = quantize(y, "nvfp4")
        assert q.tensor_scale == 1.0 and q.scales[0, 2] in (0x7F, 0xFF)
        assert np.isnan(dequantize(q)[0, 32:]).all()
        assert dequantize(q)[0, 16:32].tolist() == [54.0] * 16
    z = quantize(np.zeros((2, 32)), "nvfp4")
    assert z.tensor_scale == 1.0 and not dequantize(z).any()


@pytest.mark.parametrize("name", sorted(BLOCK_FORMATS))
def test_every_block_format_round_trips(name: str) -> None:
    f = get_block_format(name)
    rng = np.random.default_rng(len(name))
    x = rng.standard_t(3, size=(3, 5 * f.block + 7))  # heavy tails; a partial last block
    q = quantize(x, f)
    y = dequantize(q)
    assert y.shape == x.shape
    assert np.array_equal(dequantize(quantize(y, f)), y)  # representable values stay put
    assert f.storage_bits == get_format(f.element).bits + f.scale_bits / f.block


def test_ksort_keeps_outliers_apart() -> None:
    """Channels sorted by calibration magnitude: the outlier channels share blocks, so the
    other blocks keep a fine scale (a smaller error than without the order)."""
    rng = np.random.default_rng(1)
    x = rng.normal(size=(64, 256))
    outliers = rng.choice(256, size=8, replace=False)
    x[:, outliers] *= 50.0
    order = ksort(np.abs(x).mean(axis=0))
    plain = dequantize(quantize(x, "bfp4"))
    sorted_ = dequantize(quantize(x, "bfp4_ksort", order=order))
    normal = np.setdiff1d(np.arange(256), outliers)
    err_plain = np.mean((plain - x)[:, normal] ** 2)
    err_sorted = np.mean((sorted_ - x)[:, normal] ** 2)
    assert err_sorted < 0.5 * err_plain  # the ordinary channels no longer share an outlier's
    assert np.abs(sorted_ - x)[:, outliers].max() <= 50 * 4  # outliers keep their magnitude
    with pytest.raises(ModelError, match="order applies to reorder formats"):
        quantize(x, "bfp4", order=order)


# -- schemes stored in block formats ------------------------------------------------------------

BLOCK_SCHEMES = ["mxfp8", "mxfp6", "mxfp4", "mxfp4-a8", "mxint8", "nvfp4", "bf16-kvmxint8",
                 "bf16-kvbfp4"]


@pytest.mark.parametrize("name", BLOCK_SCHEMES)
def test_block_schemes_store_their_scales(name: str) -> None:
    """A scheme's *_block sets the element format, group and scale bits: the lowered model's
    tensors then carry the block format's storage bits, scales included."""
    from models.llm import load_model, lower
    from models.quant import get_scheme

    s = get_scheme(name)
    ops = {op.name: op for op in lower(load_model("llama-2-7b"), phase="decode", batch=1,
                                       seq=64, quant=s)}
    q, att = ops["q_proj"], ops["attention"]
    for block, bits in ((s.w_block, q.w_storage_bits), (s.a_block, q.a_storage_bits),
                        (s.kv_block, att.kv_storage_bits)):
        if block:
            assert bits == get_block_format(block).storage_bits  # 4096 is whole blocks


def test_transposing_keeps_block_scales() -> None:
    """C^T = W^T A^T stores the same bytes: each operand's scale groups follow it."""
    from models.ops import Gemm
    from sim.execution import _transpose

    g = Gemm(name="g", M=7, N=96, K=100, a_fmt="fp8_e4m3", w_fmt="fp4_e2m1", o_fmt="fp32",
             w_group=32, w_scale_bits=8, a_group=16, a_scale_bits=8)
    t = _transpose(g)
    assert t.exact_a_storage_bits * t.M * t.K == g.exact_w_storage_bits * g.K * g.N
    assert t.exact_w_storage_bits * t.K * t.N == g.exact_a_storage_bits * g.M * g.K


def test_block_schemes_run_on_every_preset(capsys) -> None:
    """Every (preset, block scheme) pair runs, and a preset that does not take a scheme's
    formats as they are says how it runs them: no preset takes NVFP4's E4M3 block scales or
    BF16 on an integer datapath; the MX preset takes the MX schemes as they are."""
    import json

    from cli_run import run

    from hw.spec import list_presets

    for preset in list_presets():
        for quant in BLOCK_SCHEMES:
            code, out, err = run(capsys, ["sim", "model", "--arch", preset, "--model",
                                          "llama-3-8b", "--phase", "decode", "--batch", "1",
                                          "--seq", "64", "--quant", quant, "--json"])
            assert code == 0, (preset, quant, err)
            d = json.loads(out)
            assert d["quant"] == quant and d["seconds"] > 0 and d["energy_pj"] > 0
            note = {op["name"]: op["mapping"] for op in d["ops"]}["q_proj"].get("formats", "")
            if quant in ("nvfp4", "bf16-kvmxint8", "bf16-kvbfp4") and preset not in GPUS:
                assert note, (preset, quant)
            if preset == "mx":
                assert (note == "") == (quant not in ("nvfp4", "bf16-kvmxint8",
                                                      "bf16-kvbfp4")), (quant, note)


#: The GPU presets (their tensor cores take BF16 as it is).
GPUS = ("a100", "h100", "h200")


def test_gpu_presets_say_how_they_run_formats_they_lack(capsys) -> None:
    """H100 tensor cores take bf16, fp16, fp8 and int8: a 4-bit float is converted as it
    loads, MX block scales are applied outside them; the output says so per operator."""
    import json

    from cli_run import run

    argv = ["sim", "model", "--arch", "h100", "--model", "llama-2-7b", "--phase", "decode",
            "--batch", "1", "--seq", "64"]
    notes = {}
    for quant in ("mxfp4", "mxfp8", "bf16"):
        code, out, err = run(capsys, [*argv, "--quant", quant, "--json"])
        assert code == 0, err
        ops = {op["name"]: op["mapping"] for op in json.loads(out)["ops"]}
        notes[quant] = ops["q_proj"].get("formats", "")
    assert notes["mxfp4"].startswith("fp4_e2m1 run on the bf16 tensor cores")
    assert notes["mxfp8"].startswith("block scales along K applied to each block's partial "
                                     "sums on the CUDA cores") and notes["bf16"] == ""
    code, out, _ = run(capsys, [*argv, "--quant", "nvfp4"])
    assert code == 0 and "  formats on h100: fp4_e2m1 run on the bf16 tensor cores" in out
    assert "  formats on h100: attention's fp8_e4m3 KV cache converted to bf16 as it loads" in out


def test_gpu_block_scales_take_cuda_core_time() -> None:
    """A GEMM with MX scales on both operands takes, beyond the same GEMM without them, two
    FP32 operations per output and block of 32 at the card's CUDA-core rate."""
    import pytest

    from hw.spec import load_arch
    from models.ops import Gemm
    from sim.gpu_model import block_scale_ops, op_estimate

    arch = load_arch("h100")
    # C in the accumulator's format, as a model's GEMMs (the GPU model refuses another)
    plain = Gemm(name="g", M=2048, N=4096, K=4096, a_fmt="fp8_e4m3", w_fmt="fp8_e4m3",
                 o_fmt="fp32")
    mx = Gemm(name="g", M=2048, N=4096, K=4096, a_fmt="fp8_e4m3", w_fmt="fp8_e4m3", o_fmt="fp32",
              a_group=32, a_scale_bits=8, a_scale_fmt="e8m0", w_group=32, w_scale_bits=8,
              w_scale_fmt="e8m0")
    assert block_scale_ops(plain) == 0
    assert block_scale_ops(mx) == 2048 * 4096 * (4096 // 32) * 2
    extra_us = block_scale_ops(mx) / (128 * 132 * 1980.0)  # H100: 128 FP32 lanes x 132 SMs
    t_plain = op_estimate(arch, plain, "ideal")[0].us
    t_mx = op_estimate(arch, mx, "ideal")[0].us
    assert t_mx == pytest.approx(t_plain + extra_us, rel=1e-9)
