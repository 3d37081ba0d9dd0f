"""DMA traffic: traces (schema, files, generators), IOTLB and paging-structure caches, replay
of a trace through them, and what-ifs across platforms, page sizes and flush policies.
"""

from iommu_lab.dma.caches import CacheConfig, Caches, CacheStats, Iotlb
from iommu_lab.dma.iova import FlushPolicy, FlushQueue
from iommu_lab.dma.nested_iotlb import NestedIotlb
from iommu_lab.dma.replay import Replay, replay
from iommu_lab.dma.trace import (
           Trace,
           TraceError,
           nic_rx_ring,
           random_working_set,
           storage_sg,
           streaming,
)
from iommu_lab.dma.whatif import WhatIf, nesting_modes, place, what_if

__all__ = ["CacheConfig", "CacheStats", "Caches", "FlushPolicy", "FlushQueue", "Iotlb", "NestedIotlb", "Replay", "Trace", "TraceError",
           "WhatIf", "nesting_modes", "nic_rx_ring", "place", "random_working_set", "replay", "storage_sg",
           "streaming", "what_if"]
