"""The time of a collective over an architecture's interconnect (``[interconnect]``,
:class:`hw.spec.InterconnectSpec`): standard alpha-beta models of the algorithms, the faster
of them taken as NCCL's tuner takes the fastest algorithm and protocol.

A collective of ``n`` bytes over ``p`` devices costs ``launch + steps x step + volume / bw``:

* **ring** (Patarasuk and Yuan, "Bandwidth optimal all-reduce algorithms for clusters of
  workstations", JPDC 2009; Thakur, Rabenseifner and Gropp, "Optimization of collective
  communication operations in MPICH", IJHPCA 2005): all-reduce ``2 (p - 1)`` steps moving
  ``2 (p - 1) / p x n`` through each device; all-gather and reduce-scatter ``p - 1`` steps and
  ``(p - 1) / p x n``.
* **tree** (all-reduce on a ``switch`` only; the pipelined two-tree algorithm of Sanders, Speck
  and Traeff, "Two-tree algorithms for full bandwidth broadcast, reduction and scan", Parallel
  Computing 2009, which NCCL implements as its double binary tree): ``2 ceil(log2 p)`` steps,
  ``2 n`` through each device.
* **2D torus** (``torus2d``, the devices as the most nearly square ``px x py`` grid): the ring
  algorithm along one dimension then the other (reduce-scatter along x, all-reduce of the
  ``n / px`` shards along y, all-gather along x), each ring over two links per device.
* **all-to-all**: each device sends ``(p - 1) / p x n`` (pairwise exchange, Thakur et al.),
  bounded by the injection bandwidth and, on a ring or torus, by the bisection: ``n p / 4``
  bytes cross it each way over ``2 min(px, py)`` links (a ring: ``px = p, py = 1``).
* **send/receive**: one step and ``n`` over one link (a pipeline stage to the next).

Bandwidth: ``switch``: each device's ``bandwidth_gb_per_s`` each way (NVLink through
NVSwitch); ``ring``: a ring algorithm runs as two rings, one each way, so twice the link's;
``torus2d``: each dimension's ring the same, twice a link's. Protocols, after NCCL's
(``src/graph/tuning.cc``): a low-latency one (NCCL's LL: each 8-byte line carries 4 bytes of
data and a 4-byte flag, so half the bandwidth) at ``launch_us`` and ``step_us``, and a bulk one
at the full bandwidth, ``bulk_launch_us`` and ``bulk_step_us``; the tree runs the low-latency
protocol only (NCCL's tree step with its bulk protocol is a 256 kB chunk's, far slower).

What is not modelled: link energy, contention between collectives and with the devices'
memory traffic, NVLink SHARP (in-switch reduction), and the interconnect of devices beyond one
node.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from hw.spec import InterconnectSpec

__all__ = ["CollectiveTime", "collective_time", "grid_shape"]

#: The low-latency protocol's share of the link bandwidth (NCCL's LL: 4 data bytes per 8).
LL_BANDWIDTH_SHARE = 0.5


@dataclass(frozen=True, slots=True)
class CollectiveTime:
    """One collective's predicted time and the algorithm and protocol that give it."""

    seconds: float
    algorithm: str
    protocol: str


def grid_shape(p: int) -> tuple[int, int]:
    """The most nearly square ``(px, py)`` with ``px * py = p`` and ``px >= py``."""
    py = max(d for d in range(1, math.isqrt(p) + 1) if p % d == 0)
    return p // py, py


def _paths(ic: InterconnectSpec, kind: str, n: float, p: int
           ) -> list[tuple[str, int, float, float]]:
    """``(algorithm, steps, bytes on the busiest path, bandwidth it gets in B/s)`` for every
    algorithm that can run ``kind`` on ``ic``'s topology."""
    link = ic.bandwidth_gb_per_s * 1e9
    topo = ic.topology
    if kind == "send_recv":
        return [("p2p", 1, n, link)]
    px, py = (p, 1) if topo != "torus2d" else grid_shape(p)
    ring_bw = link if topo == "switch" else 2 * link
    out: list[tuple[str, int, float, float]] = []
    if kind == "all_reduce":
        if topo == "torus2d" and py > 1:
            vol = 2 * (px - 1) / px * n + 2 * (py - 1) / py * n / px
            out.append(("ring2d", 2 * (px - 1) + 2 * (py - 1), vol, ring_bw))
        else:
            out.append(("ring", 2 * (p - 1), 2 * (p - 1) / p * n, ring_bw))
        if topo == "switch":
            out.append(("tree", 2 * math.ceil(math.log2(p)), 2 * n, link))
    elif kind in ("all_gather", "reduce_scatter"):
        if topo == "torus2d" and py > 1:
            vol = (px - 1) / px * n / py + (py - 1) / py * n
            out.append(("ring2d", (px - 1) + (py - 1), vol, ring_bw))
        else:
            out.append(("ring", p - 1, (p - 1) / p * n, ring_bw))
    elif kind == "all_to_all":
        links = {"switch": 1, "ring": 2, "torus2d": 4}[topo]
        time_bytes = (p - 1) / p * n / links  # through the device's own links
        if topo != "switch":  # the bisection: n p / 4 bytes each way over 2 min(px, py) links
            time_bytes = max(time_bytes, n * p / 4 / (2 * min(px, py)))
        out.append(("pairwise", 1, time_bytes, link))
    else:
        raise ValueError(f"kind: unknown collective {kind!r}")
    return out


def collective_time(ic: InterconnectSpec, kind: str, nbytes: int, group: int) -> CollectiveTime:
    """Seconds of one ``kind`` collective of ``nbytes`` (module doc; the buffer as
    :class:`models.parallel.Collective` states it) among ``group`` devices on ``ic``. A group
    of one costs nothing."""
    if group < 1 or nbytes < 0:
        raise ValueError(f"group {group}, nbytes {nbytes}: need group >= 1 and nbytes >= 0")
    if group == 1 or nbytes == 0:
        return CollectiveTime(0.0, "none", "none")
    best: CollectiveTime | None = None
    for algorithm, steps, volume, bw in _paths(ic, kind, float(nbytes), group):
        protocols = [("ll", ic.launch_us, ic.step_us, bw * LL_BANDWIDTH_SHARE)]
        if algorithm != "tree":
            protocols.append(("bulk", ic.bulk_launch_us, ic.bulk_step_us, bw))
        for protocol, launch, step, rate in protocols:
            seconds = (launch + steps * step) * 1e-6 + volume / rate
            if best is None or seconds < best.seconds:
                best = CollectiveTime(seconds, algorithm, protocol)
    assert best is not None
    return best
