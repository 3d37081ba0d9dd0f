"""DMA traces: the accesses a device makes and the mapping changes its driver makes, in time order.

A :class:`Trace` is one table (``Trace.frame``) with exactly the columns of :data:`COLUMNS`:

========  ===================  ===============================================================
column    dtype                meaning
========  ===================  ===============================================================
t         int64                nanoseconds since the trace started; non-decreasing (ties keep
                               row order)
op        category             ``read``/``write``: a DMA by the device, named by what the
                               *device* does (a disk write is a DMA read of host memory);
                               ``map``/``unmap``: the driver changing the IOMMU mapping
                               (DMA API, ``iommu_map``/``iommu_unmap``)
device    category of str      requester, e.g. ``"nic0"``
pasid     UInt32 (nullable)    <NA>: a request without a PASID; else 0 .. 2**20-1 (the PCIe
                               PASID is 20 bits wide)
iova      uint64               first byte (for stage-2 map/unmap rows: the GPA)
length    uint64               bytes, > 0, and ``iova + length - 1 <= 2**64 - 1``
pa        uint64               map rows: the output address (PA; the GPA for a stage-1 map of
                               a nested target; the HPA for a stage-2 map); 0 on other rows
stage     uint8                1, except map/unmap rows that change stage 2 (the nest parent)
========  ===================  ===============================================================

Generators model four real DMA patterns, all deterministic for a ``seed`` and vectorised:
:func:`nic_rx_ring` (a NIC receive ring, page_pool recycling or per-packet streaming DMA API),
:func:`storage_sg` (an NVMe-like queue with scatter-gather lists mapped by ``dma_map_sg``),
:func:`streaming` (one large buffer streamed through) and :func:`random_working_set`.

IOVA allocation for the streaming DMA API follows Linux (drivers/iommu/dma-iommu.c and iova.c),
modelled once in :mod:`iommu_lab.dma.iova` together with the deferred-flush queue.

The package's modules: :mod:`~iommu_lab.dma.trace.schema` (columns, validation),
:mod:`~iommu_lab.dma.trace.files` (Parquet/CSV), :mod:`~iommu_lab.dma.trace.table` (:class:`Trace`),
:mod:`~iommu_lab.dma.trace.checker` (:func:`check_mapped`) and
:mod:`~iommu_lab.dma.trace.generators`; every name is re-exported here.
"""

from __future__ import annotations

from iommu_lab.dma.iova import GRANULE, IOVA_FQ_SIZE, IOVA_RANGE_CACHE_MAX_SIZE, FlushPolicy
from iommu_lab.dma.trace.checker import check_mapped
from iommu_lab.dma.trace.files import read_frame, write_frame
from iommu_lab.dma.trace.generators import (
    ETHERNET_OVERHEAD,
    NAPI_POLL_WEIGHT,
    NVME_CQE_BYTES,
    NVME_SGL_DESC_BYTES,
    NVME_SQE_BYTES,
    RX_DESC_BYTES,
    nic_rx_ring,
    random_working_set,
    storage_sg,
    streaming,
)
from iommu_lab.dma.trace.schema import (
    COLUMNS,
    HEX_COLUMNS,
    OPS,
    PASID_BITS,
    PASID_MAX,
    Op,
    TraceError,
)
from iommu_lab.dma.trace.stream import TraceStream
from iommu_lab.dma.trace.table import Trace

__all__ = [
    "COLUMNS",
    "ETHERNET_OVERHEAD",
    "FlushPolicy",
    "GRANULE",
    "HEX_COLUMNS",
    "IOVA_FQ_SIZE",
    "IOVA_RANGE_CACHE_MAX_SIZE",
    "NAPI_POLL_WEIGHT",
    "NVME_CQE_BYTES",
    "NVME_SGL_DESC_BYTES",
    "NVME_SQE_BYTES",
    "OPS",
    "Op",
    "PASID_BITS",
    "PASID_MAX",
    "RX_DESC_BYTES",
    "Trace",
    "TraceStream",
    "TraceError",
    "check_mapped",
    "nic_rx_ring",
    "random_working_set",
    "read_frame",
    "storage_sg",
    "streaming",
    "write_frame",
]
