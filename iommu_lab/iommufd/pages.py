"""The pinned user memory behind areas: iommufd's ``struct iopt_pages``.

Mirrors drivers/iommu/iommufd/pages.c: ``iopt_alloc_pages`` makes one pages object per MAP
from a user VA range (its start rounded down to a page, its length grown by the VA's page
offset) and records whether the memory was pinned writable; a COPY shares the source's pages
object rather than pinning again (``iopt_get_pages`` → ``iopt_area_contig_*``), so identity, not
value, says which areas share memory.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

from iommu_lab.core.ranges import fmt_addr, fmt_size

__all__ = ["PAGE_SIZE", "HPAGE_SIZE", "Pages", "alloc_pages"]

#: CPU page size the model assumes (x86-64 / arm64 4K kernels), ``PAGE_SIZE`` in the kernel.
PAGE_SIZE = 0x1000
#: Transparent huge page size on x86-64 with THP (``HPAGE_SIZE``), the auto-allocation cap.
HPAGE_SIZE = 0x20_0000

_pages_ids = itertools.count(1)


@dataclass(frozen=True, eq=False)
class Pages:
    """The pinned user memory behind one or more areas, as ``struct iopt_pages``.

    Identity matters, not value: a COPY shares the source's pages object, and whether a
    writable mapping may be made of them is decided by ``writable`` — set when the original
    MAP asked for write access (pages.c ``iopt_alloc_pages``: ``writable = iommu_prot &
    IOMMU_WRITE``), so a WRITEABLE copy from a read-only map fails EPERM (``iopt_insert_area``).
    """

    user_va: int
    length: int
    writable: bool
    id: int = field(default_factory=lambda: next(_pages_ids))

    def __repr__(self) -> str:
        return f"Pages(#{self.id}, va={fmt_addr(self.user_va)}, {fmt_size(self.length)}, {'rw' if self.writable else 'ro'})"


def alloc_pages(user_va: int, length: int, writable: bool) -> Pages:
    """Mirrors pages.c ``iopt_alloc_pages``: the pages object covering ``[user_va, +length)``,
    starting at the CPU page that holds ``user_va`` (the caller has checked the lengths)."""
    offset = user_va % PAGE_SIZE
    return Pages(user_va - offset, length + offset, writable)
