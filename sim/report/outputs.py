"""What the keys of the ``--json`` outputs and the columns of ``tpe sim model --csv`` mean: the
reference's words (``docs/reference/outputs.md``), checked against real outputs by
tests/test_reference.py (a key a command writes and this does not describe fails it)."""

from __future__ import annotations

from sim.report.tables import CSV_COLUMNS

__all__ = ["JSON_KEYS", "csv_columns"]

_OPERATOR = {
    "name": "the operator's name (gemm for tpe sim gemm; q_proj, attention, ... in a model)",
    "kind": "gemm, attention or vector",
    "count": "identical instances (figures are over all of them)",
    "shape": "the operator's shape and formats (GEMM: M, N, K, a_fmt, w_fmt, o_fmt, w_group; "
             "attention: batch, heads, kv_heads, q_len, kv_len, qk_dim, v_dim, causal, q_fmt, "
             "kv_fmt, the KV cache's kv_group, kv_scale_bits and kv_residual, paging and "
             "sparsity; vector: its kind, elements, operations per element, format, "
             "bytes, kernel launches)",
    "cycles": "cycles of all instances at the architecture's clock (exact integer)",
    "compute_cycles": "the cores' busy cycles with memory that never waits",
    "stall_cycles": "cycles - compute_cycles: waiting for memory",
    "engine_cycles": "cycles the engines compute",
    "vector_cycles": "cycles the vector units compute",
    "seconds": "cycles / clock",
    "macs": "useful multiply-accumulates",
    "vector_ops": "element-wise operations on the vector units",
    "dram_bytes": "bytes moved to and from the last memory level (exact integer)",
    "energy_pj": "energy, pJ",
    "breakdown": "energy by component (arithmetic, registers, each memory level, vector unit), "
                 "pJ",
    "utilization": "macs / (cycles x the peak MACs per cycle of all cores)",
    "bound": "memory when moving the DRAM bytes alone takes longer than the compute, else "
             "compute",
    "mapping": "how it was mapped: cores used, split, orientation, passes, tile, loop order, "
               "spatial unrolling, folds; on a GPU preset the kernel it stands for, its time "
               "timed alone as tpe gpu measure and predict time it (gpu_timed_alone_us; the "
               "operator's own time is the kernel's back to back in a stream), and notes where it "
               "converts formats (formats) or leaves the measured kernels (gpu_range)",
}
_ARCH = {
    "arch": "the architecture's name",
    "engine": "the engine's spec (every field, kind included)",
    "cores": "cores of the architecture",
    "gpu_validated": "GPU presets: whether the predictions were checked against kernels "
                     "measured on the card",
    "memory": "real (the architecture's memory levels) or ideal (no stalls)",
    "objective": "what the mapping search minimised: latency, energy or edp",
    "area_um2": "the architecture's area, um^2 (engines, buffers, vector units; a GPU's die)",
    "area_breakdown_um2": "area by component, um^2",
}
#: The workload of a model pass, and its end-to-end metrics (``tpe sim model``, on one
#: device or several).
_PASS = {
    "model": "the model's name", "phase": "prefill or decode", "batch": "sequences",
    "seq": "prompt tokens (prefill) or cached tokens (decode)",
    "quant": "the quantization scheme's name",
}
_PASS_RATES = {
    "ttft_s": "prefill: time to first token, s", "tpot_s": "decode: time per output token, s",
    "tokens": "tokens the pass handles (prompt tokens, or generated tokens)",
    "tokens_per_s": "tokens / seconds", "energy_per_token_pj": "energy_pj / tokens",
}
#: Per command: every key of its ``--json`` object and what it means.
JSON_KEYS: dict[str, dict[str, str]] = {
    "tpe sim gemm": {
        **_ARCH, **_OPERATOR,
        "core": "engine architectures: one core's share as the engine model sees it (its "
                "GEMM, cycles with stalls by cause (sram_stall_cycles, dram_stall_cycles), "
                "actions with their units, per-operand DRAM bytes, its mapping)",
    },
    "tpe sim attention": {**_ARCH, **_OPERATOR},
    "tpe sim model": {
        **_ARCH, **_PASS,
        "cycles": "cycles of the pass (sum over the operators)",
        "compute_cycles": "busy cycles of the pass", "stall_cycles": "cycles waiting for memory",
        "utilization": "engine MACs / (cycles x the peak of all cores)",
        "seconds": "the pass's time", **_PASS_RATES,
        "macs": "useful MACs", "vector_ops": "element-wise operations",
        "energy_pj": "energy of the pass, pJ", "breakdown": "energy by component, pJ",
        "dram_bytes": "bytes moved to and from the last memory level",
        "fits": "whether the weights and the KV cache fit the last memory level",
        "weight_bytes": "the weights' bytes under the scheme",
        "kv_cache_bytes": "the KV cache's bytes at the end of the pass",
        "capacity_bytes": "the last memory level's capacity",
        "runtime": "GPU presets: fused (a serving engine) or eager (eager PyTorch)",
        "launches": "kernels launched by the pass",
        "host_s": "eager: the host's time to launch them",
        "host_wait_s": "eager: time the device waits for the host",
        "mapping": "each operator's mapping, by name",
        "ops": "one object per operator, in workload order, with the operator keys of tpe "
               "sim gemm (name, kind, count, shape, cycles, ..., mapping, and core for a GEMM "
               "on an engine architecture)",
    },
    "tpe sim model --devices N": {
        "arch": "the architecture's name (one device)", **_PASS,
        **{k: _ARCH[k] for k in ("memory", "objective")},
        "devices": "devices in all (tp x pp)", "tp": "tensor-parallel devices per stage",
        "pp": "pipeline stages", "ep": "expert parallelism (1, or tp: whole experts per "
        "device)", "sp": "sequence parallelism", "microbatches": "micro-batches per pass",
        "overlap": "whether collectives overlap the operators producing their data",
        "interconnect": "the architecture's [interconnect] (topology, bandwidth, latencies)",
        "seconds": "the pass's time (the pipeline schedule over the stages)", **_PASS_RATES,
        "energy_pj": "energy of every device over the pass, pJ (links not modelled)",
        "fits": "whether every device's weights, KV cache and activations fit its last "
                "memory level",
        "stages": "one object per pipeline stage (keys below)",
        "stages[].stage": "the stage's index", "stages[].layers": "its layers [first, stop)",
        "stages[].devices": "its devices (tp)",
        "stages[].compute_s": "one device's operator time over the pass",
        "stages[].communication_s": "its collectives' time over the pass",
        "stages[].exposed_communication_s": "the part of it that adds to the stage's time "
                                            "(all of it without --overlap)",
        "stages[].idle_s": "time the stage's devices wait in the pipeline",
        "stages[].send_s": "sending one micro-batch's activations to the next stage",
        "stages[].send": "that send as a collective object (null on the last stage)",
        "stages[].weight_bytes": "one device's resident weights",
        "stages[].kv_cache_bytes": "one device's share of the whole batch's KV cache",
        "stages[].activation_bytes": "the largest operator's activations",
        "stages[].memory_bytes": "weights + KV cache + activations",
        "stages[].capacity_bytes": "the last memory level's capacity",
        "stages[].fits": "memory_bytes <= capacity_bytes",
        "stages[].collectives": "one object per collective of one micro-batch: name, kind, "
                                "bytes, group, count, after (the operator it follows), "
                                "seconds (all instances), exposed_s, algorithm, protocol",
        "stages[].energy_pj": "one device's energy for one micro-batch, pJ",
        "stages[].ops": "one device's operators of one micro-batch, with the operator keys "
                        "of tpe sim gemm",
    },
}


def csv_columns() -> dict[str, str]:
    """The columns of ``tpe sim model --csv`` and what each holds."""
    own = {"model": "the model's name", "phase": "prefill or decode",
           "arch": "the architecture's name", "M": "GEMMs: M (empty otherwise)",
           "N": "GEMMs: N", "K": "GEMMs: K",
           "shape": "the operator's shape in a few words (as the console table shows it)"}
    out = {c: own.get(c) or _OPERATOR[c] for c in CSV_COLUMNS}
    out["energy_<component>_pj"] = ("one column per energy component of the architecture "
                                    "(the JSON's breakdown), pJ")
    out["mapping"] = "the JSON's mapping object, as JSON text"
    return out
