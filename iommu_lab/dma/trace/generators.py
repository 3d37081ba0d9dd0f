"""DMA trace generators: four real DMA patterns, deterministic for a ``seed`` and vectorised.

:func:`nic_rx_ring` (a NIC receive ring, page_pool recycling or per-packet streaming DMA API),
:func:`storage_sg` (an NVMe-like queue with scatter-gather lists mapped by ``dma_map_sg``),
:func:`streaming` (one large buffer streamed through) and :func:`random_working_set`. The IOVAs
that the streaming DMA API hands out, and when a freed one may come back, follow
:class:`iommu_lab.dma.iova.IovaAllocator` under the generator's ``policy``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from iommu_lab.core.ranges import U64_MAX, exact_int, fmt_size
from iommu_lab.dma.iova import GRANULE, IOVA_FQ_SIZE, FlushPolicy, IovaAllocator
from iommu_lab.dma.trace.schema import (
    OP_ALIASES,
    OP_MAP,
    OP_READ,
    OP_UNMAP,
    OP_WRITE,
    OPS,
    PASID_MAX,
    Columns,
    range_rule,
)
from iommu_lab.dma.trace.table import Trace

__all__ = ["ETHERNET_OVERHEAD", "IOVA_FQ_SIZE", "NAPI_POLL_WEIGHT", "NVME_CQE_BYTES", "NVME_SGL_DESC_BYTES",
           "NVME_SQE_BYTES", "RX_DESC_BYTES", "nic_rx_ring", "random_working_set", "storage_sg", "streaming"]


def _param_error(name: str, value: object, rule: str, allowed: str) -> ValueError:
    return ValueError(f"{name} = {value!r}: {rule}; allowed: {allowed}")


def _check_int(name: str, value: object, lo: int, hi: int = U64_MAX, *, multiple: int = 1) -> int:
    """An int parameter in ``[lo, hi]`` (a multiple of ``multiple``); TypeError for a non-int."""
    value = exact_int(value, name)
    if not lo <= value <= hi:
        raise _param_error(name, value, range_rule(value, lo, hi), f"an int in [{lo}, {hi:#x}]")
    if value % multiple:
        raise _param_error(
            name, value, f"is not a multiple of {multiple:#x}", f"multiples of {multiple:#x}"
        )
    return value


def _check_rate(name: str, value: object) -> float:
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float, np.integer, np.floating))
        or not (math.isfinite(value) and value > 0)
    ):
        raise _param_error(name, value, "is not a positive finite number", "a number > 0")
    return float(value)


def _check_fraction(name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value <= 1.0:
        raise _param_error(name, value, "is not a fraction", "a number in [0, 1]")
    return float(value)


def _check_span(name: str, value: object, lo: int, hi: int) -> tuple[int, int]:
    """An int or an inclusive (min, max) tuple, both within [lo, hi]."""
    if isinstance(value, tuple):
        if len(value) != 2:
            raise _param_error(
                name, value, "is not an int or a (min, max) pair", f"ints in [{lo}, {hi}]"
            )
        a = _check_int(f"{name}[0]", value[0], lo, hi)
        b = _check_int(f"{name}[1]", value[1], lo, hi)
        if a > b:
            raise _param_error(name, value, "has min > max", "(min, max) with min <= max")
        return a, b
    v = _check_int(name, value, lo, hi)
    return v, v


def _check_target(device: object, pasid: object) -> tuple[str, int | None]:
    if not isinstance(device, str) or not device:
        raise _param_error(
            "device", device, "is not a device name", "a non-empty str such as 'nic0'"
        )
    if pasid is not None:
        pasid = _check_int("pasid", pasid, 0, PASID_MAX)
    return device, pasid


def _round_up(value: int, align: int) -> int:
    return -(-value // align) * align


def _columns(
    t: np.ndarray,
    op: np.ndarray,
    iova: np.ndarray,
    length: np.ndarray,
    pa: np.ndarray,
    device: str,
    pasid: int | None,
) -> Columns:
    n = len(t)
    pas = pd.arrays.IntegerArray(
        np.full(n, 0 if pasid is None else pasid, dtype=np.uint32),
        np.full(n, pasid is None, dtype=bool),
    )
    dev = pd.Categorical.from_codes(
        np.zeros(n, dtype=np.int8), categories=pd.Index([device], dtype=str)
    )
    return Columns(
        np.asarray(t, dtype=np.int64),
        np.asarray(op, dtype=np.int8),
        dev,
        pas,
        np.asarray(iova, dtype=np.uint64),
        np.asarray(length, dtype=np.uint64),
        np.asarray(pa, dtype=np.uint64),
        np.ones(n, dtype=np.uint8),
    )


def _static_maps(regions: Sequence[tuple[int, int, int]]) -> dict[str, np.ndarray]:
    """Map rows at t=0 for (iova, pa, length) regions set up once (coherent / page_pool memory)."""
    iova, pa, length = (np.array([r[i] for r in regions], dtype=np.uint64) for i in range(3))
    k = len(regions)
    return {
        "t": np.zeros(k, np.int64),
        "op": np.full(k, OP_MAP, np.int8),
        "iova": iova,
        "length": length,
        "pa": pa,
    }


def _concat(*parts: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    out = {}
    for key in ("t", "op", "iova", "length", "pa"):
        out[key] = np.concatenate(
            [p[key] if key in p else np.zeros(len(p["t"]), np.uint64) for p in parts]
        )
    return out


def _build(
    parts: Sequence[Mapping[str, np.ndarray]], device: str, pasid: int | None, name: str
) -> Trace:
    c = _concat(*parts)
    return Trace.from_columns(
        _columns(c["t"], c["op"], c["iova"], c["length"], c["pa"], device, pasid), name
    )


def _page_pool(rng: np.random.Generator, pool: int) -> np.ndarray:
    """A seeded random order over ``pool`` physical chunks, handed out cyclically.

    The caller sizes the pool so that the chunks live at one time always lie within fewer than
    ``pool`` consecutive allocations: a live buffer never shares memory with another, while PAs
    look scattered as the buddy allocator's free lists make them.
    """
    return rng.permutation(pool).astype(np.uint64)


#: Ethernet per-frame overhead on the wire that the host never sees: 7 B preamble + 1 B start
#: delimiter + 12 B inter-frame gap + 4 B FCS (IEEE 802.3), with ``packet`` the frame without FCS.
ETHERNET_OVERHEAD = 24
#: An RX descriptor is 16 bytes (e.g. Intel's advanced RX descriptor, ixgbe ``union
#: ixgbe_adv_rx_desc``: two 64-bit words, read by the NIC and written back in place).
RX_DESC_BYTES = 16
#: NAPI's default poll budget (``NAPI_POLL_WEIGHT``, include/linux/netdevice.h): a driver
#: refills its ring after at most this many packets per poll.
NAPI_POLL_WEIGHT = 64


def nic_rx_ring(
    packets: int,
    *,
    ring: int = 512,
    buffer: int = 2048,
    packet: int | tuple[int, int] = 1500,
    gbps: float = 10.0,
    base: int = 0x1_0000_0000,
    pa: int = 0x4000_0000,
    recycle: bool = True,
    budget: int = NAPI_POLL_WEIGHT,
    policy: FlushPolicy | str = FlushPolicy.STRICT,
    device: str = "nic0",
    pasid: int | None = None,
    seed: int = 0,
) -> Trace:
    """A NIC receive ring: per packet, read the RX descriptor, write the data, write it back.

    Packets arrive back to back at line rate: packet ``k`` starts ``(size + 24) * 8 / gbps`` ns
    after packet ``k - 1`` (24 bytes of Ethernet preamble, inter-frame gap and FCS). The device
    reads the slot's 16-byte descriptor when the packet starts, and writes the packet into the
    slot's buffer and the descriptor back when the packet has been received. Slots are used
    round robin, ``slot = k % ring``. The descriptor ring sits at ``base`` (coherent memory,
    mapped once at t=0, ``dma_alloc_coherent``).

    ``recycle=True`` models page_pool: the buffer area is mapped once at t=0 (PA contiguous
    after the ring's) and every slot keeps its buffer at ``base + ring area + slot * buffer``.

    ``recycle=False`` models the streaming DMA API (``dma_map_single``/``dma_unmap_single``):
    each slot's buffer gets its own granule-aligned IOVA range (``iommu_dma_map_page`` maps whole
    4 KiB granules), initially mapped at t=0. After each NAPI poll of ``min(budget, ring)``
    packets the driver unmaps those buffers (one unmap row each) and maps fresh pages for the same
    slots (one map row each, a PA from a seeded page pool); the IOVAs come back from the LIFO
    rcache, so each refill reuses the just-freed IOVAs in reverse order.

    Parameters
    ----------
    packets : number of packets received.
    ring : RX descriptors in the ring (slots).
    buffer : bytes per receive buffer.
    packet : packet size in bytes, or an inclusive (min, max) drawn uniformly per packet.
    gbps : line rate in Gbit/s.
    base, pa : IOVA and PA of the descriptor ring (4 KiB aligned).
    budget : packets per NAPI poll between refills (recycle=False).
    policy : FlushPolicy or "strict" / "lazy" (recycle=False): with lazy a freed IOVA is handed out again
        only after the flush queue (256 entries, ``IOVA_DEFAULT_FQ_SIZE``) has been flushed, as
        under ``iommu.strict=0``; replay such a trace with ``policy="lazy"``.
    """
    packets = _check_int("packets", packets, 0, 1 << 40)
    policy = FlushPolicy.parse(policy)
    ring = _check_int("ring", ring, 1, 1 << 24)
    buffer = _check_int("buffer", buffer, 1, 1 << 32)
    lo, hi = _check_span("packet", packet, 1, 1 << 32)
    if hi > buffer:
        raise _param_error(
            "packet",
            packet,
            f"is larger than the receive buffer ({buffer} bytes)",
            f"sizes <= buffer = {buffer}",
        )
    rate = _check_rate("gbps", gbps)
    base = _check_int("base", base, 0, U64_MAX, multiple=GRANULE)
    pa = _check_int("pa", pa, 0, U64_MAX, multiple=GRANULE)
    budget = _check_int("budget", budget, 1, 1 << 24)
    device, pasid = _check_target(device, pasid)
    if not isinstance(recycle, bool):
        raise _param_error(
            "recycle", recycle, "is not a bool", "True (page_pool) or False (map per packet)"
        )
    rng = np.random.default_rng(seed)

    desc_area = _round_up(ring * RX_DESC_BYTES, GRANULE)
    buf_base, buf_pa = base + desc_area, pa + desc_area
    size = np.full(packets, lo, np.int64) if lo == hi else rng.integers(lo, hi + 1, packets)
    gap = (size + ETHERNET_OVERHEAD) * 8.0 / rate
    start = np.concatenate([[0.0], np.cumsum(gap)[:-1]]) if packets else np.zeros(0)
    t_start = np.floor(start).astype(np.int64)
    t_done = np.floor(start + size * 8.0 / rate).astype(np.int64)
    slot = (np.arange(packets) % ring).astype(np.uint64)
    desc = np.uint64(base) + slot * np.uint64(RX_DESC_BYTES)

    if recycle:
        maps = _static_maps(
            [(base, pa, desc_area), (buf_base, buf_pa, _round_up(ring * buffer, GRANULE))]
        )
        data_iova = np.uint64(buf_base) + slot * np.uint64(buffer)
        dma = _rx_rows(t_start, t_done, desc, data_iova, size)
        name = f"nic_rx_ring: {packets} packets, {ring}-slot ring, page_pool"
        return _build([maps, dma], device, pasid, name)
    return _rx_streaming(
        t_start,
        t_done,
        desc,
        size,
        ring=ring,
        buffer=buffer,
        base=base,
        pa=pa,
        desc_area=desc_area,
        batch=min(budget, ring),
        rng=rng,
        device=device,
        pasid=pasid,
        policy=policy,
    )


def _rx_rows(t_start, t_done, desc, data_iova, size) -> dict[str, np.ndarray]:
    """Three rows per packet: descriptor read, data write, descriptor write-back."""
    n = len(t_start)
    t = np.stack([t_start, t_done, t_done], axis=1).ravel()
    op = np.tile(np.array([OP_READ, OP_WRITE, OP_WRITE], np.int8), n)
    iova = np.stack([desc, data_iova, desc], axis=1).ravel()
    desc_len = np.full(n, RX_DESC_BYTES, np.uint64)
    length = np.stack([desc_len, size.astype(np.uint64), desc_len], axis=1).ravel()
    return {"t": t, "op": op, "iova": iova, "length": length}


def _rx_streaming(
    t_start, t_done, desc, size, *, ring, buffer, base, pa, desc_area, batch, rng, device, pasid,
    policy=FlushPolicy.STRICT,
) -> Trace:
    """nic_rx_ring(recycle=False): per-poll unmap + remap of the used buffers (see its doc)."""
    n = len(t_start)
    buf_len = _round_up(buffer, GRANULE)
    alloc = IovaAllocator(next_free=base + desc_area, policy=policy)
    slot_iova = np.array([alloc.alloc(buf_len) for _ in range(ring)], dtype=np.uint64)
    pool = 4 * ring  # live buffers span < ring + batch <= 2 * ring consecutive allocations
    pages = _page_pool(rng, pool)
    pa_base = np.uint64(pa + desc_area)

    def chunk_pa(j: np.ndarray) -> np.ndarray:
        return pa_base + pages[j % pool] * np.uint64(buf_len)

    setup = _static_maps([(base, pa, desc_area)])
    first = {
        "t": np.zeros(ring, np.int64),
        "op": np.full(ring, OP_MAP, np.int8),
        "iova": slot_iova.copy(),
        "length": np.full(ring, buf_len, np.uint64),
        "pa": chunk_pa(np.arange(ring)),
    }
    data_iova = np.empty(n, np.uint64)
    new_iova = np.empty(n, np.uint64)
    for p0 in range(0, n, batch):
        slots = np.arange(p0, min(p0 + batch, n)) % ring
        data_iova[p0 : p0 + len(slots)] = slot_iova[slots]
        for iova in slot_iova[slots].tolist():
            alloc.free(iova, buf_len)
        fresh = [alloc.alloc(buf_len) for _ in slots]
        slot_iova[slots] = fresh
        new_iova[p0 : p0 + len(slots)] = fresh
    dma = _rx_rows(t_start, t_done, desc, data_iova, size)
    # Row positions: per poll of b packets, 3b DMA rows, then b unmaps, then b maps.
    p = np.arange(n)
    p0 = (p // batch) * batch
    b = np.minimum(batch, n - p0)
    block = 5 * p0
    dma_pos = (block + 3 * (p - p0))[:, None] + np.arange(3)
    unmap_pos = block + 3 * b + (p - p0)
    map_pos = block + 4 * b + (p - p0)
    t_poll = t_done[np.minimum(p0 + b, n) - 1]
    total = 5 * n
    rows = {
        "t": np.empty(total, np.int64),
        "op": np.empty(total, np.int8),
        "iova": np.empty(total, np.uint64),
        "length": np.empty(total, np.uint64),
        "pa": np.zeros(total, np.uint64),
    }
    for key in ("t", "op", "iova", "length"):
        rows[key][dma_pos.ravel()] = dma[key]
    rows["t"][unmap_pos], rows["op"][unmap_pos] = t_poll, OP_UNMAP
    rows["iova"][unmap_pos], rows["length"][unmap_pos] = data_iova, buf_len
    rows["t"][map_pos], rows["op"][map_pos] = t_poll, OP_MAP
    rows["iova"][map_pos], rows["length"][map_pos] = new_iova, buf_len
    rows["pa"][map_pos] = chunk_pa(ring + p)
    name = f"nic_rx_ring: {n} packets, {ring}-slot ring, map per packet"
    return _build([setup, first, rows], device, pasid, name)


#: NVMe queue entry and descriptor sizes (NVMe base spec; Linux ``struct nvme_command`` is 64
#: bytes, ``struct nvme_completion`` 16, ``struct nvme_sgl_desc`` 16).
NVME_SQE_BYTES = 64
NVME_CQE_BYTES = 16
NVME_SGL_DESC_BYTES = 16


def storage_sg(
    requests: int,
    *,
    queue_depth: int = 32,
    segments: int | tuple[int, int] = (1, 32),
    segment: int = 4096,
    read_fraction: float = 0.7,
    iops: float = 500_000,
    base: int = 0x2_0000_0000,
    pa: int = 0x8000_0000,
    policy: FlushPolicy | str = FlushPolicy.STRICT,
    device: str = "nvme0",
    pasid: int | None = None,
    seed: int = 0,
) -> Trace:
    """An NVMe-like I/O queue whose data buffers are scatter-gather lists mapped per request.

    Static, mapped at t=0 with PAs contiguous from ``pa``: the submission queue
    (``queue_depth`` 64-byte commands), the completion queue (16-byte entries) and one SGL page
    per queue slot. Per request, when it is submitted: the driver maps the data with
    ``dma_map_sg`` -- ``iommu_dma_map_sg`` allocates ONE IOVA range for the whole list and
    maps each segment at consecutive IOVAs, so there is one map row per segment (contiguous
    IOVAs, scattered PAs from a seeded page pool); the device reads the 64-byte command, reads
    the SGL (16 bytes per descriptor) when there is more than one segment (nvme_pci_setup_sgls
    puts a single segment inline in the command), then DMAs each segment. When it completes:
    the device writes the 16-byte completion entry and the driver unmaps the whole range with
    ONE unmap row (``iommu_dma_unmap_sg`` unmaps the single contiguous IOVA allocation).

    dma-iommu may merge IOVA-contiguous segments into one DMA segment (``__finalise_sg``); this
    generator keeps the unmerged list the block layer built, the worst case for the SGL read.

    Queueing: request ``k`` is submitted at ``k / iops`` seconds into SQ slot ``k % queue_depth``
    and completes in order ``queue_depth`` submissions later (Little's law: latency =
    ``queue_depth / iops``), just before request ``k + queue_depth`` is submitted, whose
    allocation therefore gets the range just freed when the sizes match (LIFO rcache).

    Directions are named by what the device does: a block READ (fraction ``read_fraction`` of
    the requests, the usual read/write mix of a storage benchmark) makes the device WRITE host
    memory; a block WRITE makes it READ.

    Parameters
    ----------
    requests : number of I/O requests.
    queue_depth : requests outstanding (and queue entries).
    segments : segments per request, or an inclusive (min, max) drawn uniformly; at most 256
        (one 4 KiB SGL page of 16-byte descriptors).
    segment : bytes per segment, a positive multiple of the 4 KiB granule.
    iops : request rate per second.
    base, pa : IOVA and PA of the queues (4 KiB aligned); data IOVAs follow the static area.
    policy : FlushPolicy or "strict" / "lazy": with lazy a freed IOVA range is reused only after the flush
        queue has been flushed (see :func:`nic_rx_ring`).
    """
    requests = _check_int("requests", requests, 0, 1 << 40)
    policy = FlushPolicy.parse(policy)
    queue_depth = _check_int("queue_depth", queue_depth, 1, 1 << 16)
    seg_lo, seg_hi = _check_span("segments", segments, 1, GRANULE // NVME_SGL_DESC_BYTES)
    segment = _check_int("segment", segment, GRANULE, 1 << 32, multiple=GRANULE)
    read_fraction = _check_fraction("read_fraction", read_fraction)
    rate = _check_rate("iops", iops)
    base = _check_int("base", base, 0, U64_MAX, multiple=GRANULE)
    pa = _check_int("pa", pa, 0, U64_MAX, multiple=GRANULE)
    device, pasid = _check_target(device, pasid)
    rng = np.random.default_rng(seed)

    sq_len = _round_up(queue_depth * NVME_SQE_BYTES, GRANULE)
    cq_len = _round_up(queue_depth * NVME_CQE_BYTES, GRANULE)
    sgl_len = queue_depth * GRANULE
    sq, cq, sgl = base, base + sq_len, base + sq_len + cq_len
    static = sq_len + cq_len + sgl_len
    maps = _static_maps(
        [(sq, pa, sq_len), (cq, pa + sq_len, cq_len), (sgl, pa + sq_len + cq_len, sgl_len)]
    )

    n = requests
    nseg = np.full(n, seg_lo, np.int64) if seg_lo == seg_hi else rng.integers(seg_lo, seg_hi + 1, n)
    disk_read = rng.random(n) < read_fraction
    data_len = nseg * segment

    alloc = IovaAllocator(next_free=base + static, policy=policy)
    lens = data_len.tolist()
    start = np.empty(n, np.uint64)
    starts: list[int] = []
    for k in range(n):
        if k >= queue_depth:
            alloc.free(starts[k - queue_depth], lens[k - queue_depth])
        starts.append(alloc.alloc(lens[k]))
    start[:] = starts

    # Event order: the first queue_depth submissions, then (completion k - qd, submission k)
    # pairs, then the remaining completions.
    k = np.arange(n)
    m = max(n - queue_depth, 0)
    first = min(n, queue_depth)
    e_sub = np.where(k < first, k, queue_depth + 2 * (k - queue_depth) + 1)
    e_comp = np.where(k < m, queue_depth + 2 * k, first + 2 * m + (k - m))
    t_sub = np.floor(k * 1e9 / rate).astype(np.int64)
    t_comp = np.floor((k + queue_depth) * 1e9 / rate).astype(np.int64)
    slot = (k % queue_depth).astype(np.uint64)

    # One row per (request, segment) for the maps and the data.
    req = np.repeat(k, nseg)
    seg = np.arange(req.size) - np.repeat(np.cumsum(nseg) - nseg, nseg)
    seg_iova = start[req] + seg.astype(np.uint64) * np.uint64(segment)
    pool = 4 * queue_depth * seg_hi  # live segments span < queue_depth * max segments allocations
    pages = _page_pool(rng, pool)
    seg_pa = np.uint64(_round_up(pa + static, GRANULE)) + pages[
        np.arange(req.size) % pool
    ] * np.uint64(segment)
    listed = nseg > 1
    data_op = np.where(disk_read, OP_WRITE, OP_READ).astype(np.int8)

    width = seg_hi + 1
    parts = [
        # (event, rank within the event, index) keys, then the row's columns
        (e_sub[req], 0, seg, t_sub[req], OP_MAP, seg_iova, segment, seg_pa),
        (
            e_sub,
            1,
            0,
            t_sub,
            OP_READ,
            np.uint64(sq) + slot * np.uint64(NVME_SQE_BYTES),
            NVME_SQE_BYTES,
            0,
        ),
        (
            e_sub[listed],
            2,
            0,
            t_sub[listed],
            OP_READ,
            np.uint64(sgl) + slot[listed] * np.uint64(GRANULE),
            nseg[listed] * NVME_SGL_DESC_BYTES,
            0,
        ),
        (e_sub[req], 3, seg, t_sub[req], data_op[req], seg_iova, segment, 0),
        (
            e_comp,
            0,
            0,
            t_comp,
            OP_WRITE,
            np.uint64(cq) + slot * np.uint64(NVME_CQE_BYTES),
            NVME_CQE_BYTES,
            0,
        ),
        (e_comp, 1, 0, t_comp, OP_UNMAP, start, data_len, 0),
    ]
    keys, cols = [], {c: [] for c in ("t", "op", "iova", "length", "pa")}
    for event, rank, index, t, op, iova, length, out_pa in parts:
        size = len(event)
        keys.append((event.astype(np.int64) * 4 + rank) * width + np.broadcast_to(index, size))
        for c, v, dt in (
            ("t", t, np.int64),
            ("op", op, np.int8),
            ("iova", iova, np.uint64),
            ("length", length, np.uint64),
            ("pa", out_pa, np.uint64),
        ):
            cols[c].append(np.broadcast_to(np.asarray(v).astype(dt), size))
    order = np.argsort(np.concatenate(keys), kind="stable")
    rows = {c: np.concatenate(v)[order] for c, v in cols.items()}
    segs = f"{seg_lo}-{seg_hi} x {fmt_size(segment)} segments"
    name = f"storage_sg: {n} requests, QD {queue_depth}, {segs}"
    return _build([maps, rows], device, pasid, name)


def streaming(
    nbytes: int,
    *,
    chunk: int = 256,
    op: str = "read",
    gbps: float = 16.0,
    base: int = 0x3_0000_0000,
    pa: int = 0x1_0000_0000,
    device: str = "dma0",
    pasid: int | None = None,
) -> Trace:
    """One buffer mapped once, then streamed through sequentially in ``chunk``-byte DMAs.

    The single map row covers ``nbytes`` rounded up to the 4 KiB granule. The defaults place
    ``base`` and ``pa`` 1 GiB aligned, so a page-size policy that uses 2 MiB or 1 GiB pages can
    (``iommu_pgsize`` picks the largest page that IOVA, PA and size all allow). Chunk ``i``
    starts at ``i * chunk * 8 / gbps`` ns; the last chunk may be short.
    """
    nbytes = _check_int("nbytes", nbytes, 1, 1 << 48)
    chunk = _check_int("chunk", chunk, 1, 1 << 32)
    if not isinstance(op, str) or OP_ALIASES.get(op.lower(), op.lower()) not in ("read", "write"):
        raise _param_error("op", op, "is not a DMA direction", "'read' or 'write'")
    code = OPS.index(OP_ALIASES.get(op.lower(), op.lower()))
    rate = _check_rate("gbps", gbps)
    base = _check_int("base", base, 0, U64_MAX, multiple=GRANULE)
    pa = _check_int("pa", pa, 0, U64_MAX, multiple=GRANULE)
    device, pasid = _check_target(device, pasid)
    map_len = _round_up(nbytes, GRANULE)
    if base + map_len - 1 > U64_MAX or pa + map_len - 1 > U64_MAX:
        raise _param_error(
            "nbytes",
            nbytes,
            "runs past the end of the 64-bit space from base/pa",
            "a smaller buffer",
        )
    maps = _static_maps([(base, pa, map_len)])
    count = -(-nbytes // chunk)
    i = np.arange(count, dtype=np.uint64)
    length = np.full(count, chunk, np.uint64)
    length[-1] = nbytes - (count - 1) * chunk
    dma = {
        "t": np.floor(np.arange(count) * (chunk * 8.0 / rate)).astype(np.int64),
        "op": np.full(count, code, np.int8),
        "iova": np.uint64(base) + i * np.uint64(chunk),
        "length": length,
    }
    return _build(
        [maps, dma], device, pasid, f"streaming: {fmt_size(nbytes)} in {chunk}-byte {OPS[code]}s"
    )


def random_working_set(
    accesses: int,
    *,
    working_set: int = 64 << 20,
    size: int = 64,
    read_fraction: float = 0.5,
    skew: float = 0.0,
    gbps: float = 16.0,
    base: int = 0x4_0000_0000,
    pa: int = 0x2_0000_0000,
    device: str = "acc0",
    pasid: int | None = None,
    seed: int = 0,
) -> Trace:
    """Accesses of ``size`` bytes at random size-aligned offsets in one mapped working set.

    What is drawn, per access: a *block* -- the working set cut into 4 KiB pages when ``size``
    divides 4096, else into ``size``-byte slots -- then a uniform size-aligned slot inside the
    block, and read with probability ``read_fraction``. ``skew = 0`` draws blocks
    uniformly; ``skew = s > 0`` draws block of popularity rank ``r`` (1-based) with probability
    proportional to ``r ** -s`` (a Zipf law truncated to the working set), the ranks being a
    seeded random permutation of the blocks so that hot pages are scattered in the IOVA space.
    Access ``i`` is issued at ``i * size * 8 / gbps`` ns.
    """
    accesses = _check_int("accesses", accesses, 0, 1 << 40)
    size = _check_int("size", size, 1, 1 << 32)
    working_set = _check_int("working_set", working_set, GRANULE, 1 << 48, multiple=GRANULE)
    if working_set % size:
        raise _param_error(
            "working_set",
            working_set,
            f"is not a multiple of size = {size}",
            f"a multiple of {size} (and of 4096)",
        )
    read_fraction = _check_fraction("read_fraction", read_fraction)
    if (
        isinstance(skew, bool)
        or not isinstance(skew, (int, float))
        or not (math.isfinite(skew) and skew >= 0)
    ):
        raise _param_error(
            "skew", skew, "is not a non-negative number", "0 (uniform) or a Zipf exponent > 0"
        )
    rate = _check_rate("gbps", gbps)
    base = _check_int("base", base, 0, U64_MAX - working_set + 1, multiple=GRANULE)
    pa = _check_int("pa", pa, 0, U64_MAX - working_set + 1, multiple=GRANULE)
    device, pasid = _check_target(device, pasid)
    rng = np.random.default_rng(seed)

    block = GRANULE if GRANULE % size == 0 else size
    blocks = working_set // block
    slots_per_block = block // size
    if skew == 0:
        chosen = rng.integers(0, blocks, accesses)
    else:
        weights = np.arange(1, blocks + 1, dtype=np.float64) ** -float(skew)
        rank = rng.choice(blocks, size=accesses, p=weights / weights.sum())
        chosen = rng.permutation(blocks)[rank]
    within = rng.integers(0, slots_per_block, accesses)
    offset = chosen.astype(np.uint64) * np.uint64(block) + within.astype(np.uint64) * np.uint64(
        size
    )
    op = np.where(rng.random(accesses) < read_fraction, OP_READ, OP_WRITE).astype(np.int8)
    maps = _static_maps([(base, pa, working_set)])
    dma = {
        "t": np.floor(np.arange(accesses) * (size * 8.0 / rate)).astype(np.int64),
        "op": op,
        "iova": np.uint64(base) + offset,
        "length": np.full(accesses, size, np.uint64),
    }
    name = f"random_working_set: {accesses} x {size} B over {fmt_size(working_set)}, skew {skew:g}"
    return _build([maps, dma], device, pasid, name)
