"""IOMMU_HWPT_SET_DIRTY_TRACKING and IOMMU_HWPT_GET_DIRTY_BITMAP on a context's HWPTs, and the
DMA writes that set the dirty bits.

Mirrors drivers/iommu/iommufd/hw_pagetable.c and io_pagetable.c:

* ``iommufd_hwpt_set_dirty_tracking``: a flag other than ``IOMMU_HWPT_DIRTY_TRACKING_ENABLE`` →
  EOPNOTSUPP (checked before the id is looked up); ``hwpt_id`` not a HWPT_PAGING → ENOENT
  (``iommufd_get_hwpt_paging``: a nested HWPT has no mappings of its own); then
  ``iopt_set_dirty_tracking``: a domain without ``dirty_ops`` (not allocated with
  DIRTY_TRACKING) → EOPNOTSUPP; enabling first clears every stale dirty bit
  (``iopt_clear_dirty_data``).
* ``iommufd_hwpt_get_dirty_bitmap``: a flag other than ``NO_CLEAR`` or a non-zero
  ``__reserved`` → EOPNOTSUPP; ``hwpt_id`` not a HWPT_PAGING → ENOENT; then
  ``iopt_read_and_clear_dirty_data`` → ``iommufd_check_iova_range`` (EOVERFLOW for a wrap, EINVAL
  for an iova or end not aligned to the IOAS's ``iova_alignment`` or to ``page_size``, EINVAL
  for ``page_size`` 0) and ``iommu_read_and_clear_dirty`` (EOPNOTSUPP without ``dirty_ops``).

Both arrived in 6.7; an older kernel has no such ioctl (ENOTTY, as ``iommufd_fops_ioctl`` answers
for a command number past its table). The bit work is :class:`~iommu_lab.pagetable.dirty.
DirtyTracker` over the HWPT's domain table: the format's real dirty bit in the leaves, a large
leaf dirtying every bitmap bit it covers.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from iommu_lab.core.errors import IommuError
from iommu_lab.core.ranges import U64_MAX
from iommu_lab.iommufd.objects import DeviceObj, HwptFlag, HwptNested, HwptPaging, Kernel
from iommu_lab.pagetable.dirty import (
    DIRTY_TRACKING_ENABLE,
    GET_DIRTY_BITMAP_NO_CLEAR,
    DirtyBitmap,
    DirtyTracker,
    check_iova_range,
)

__all__ = ["make_tracker", "set_dirty_tracking", "get_dirty_bitmap", "dma_write", "MAX_WRITES"]

#: The most IOVAs one ``dma_write`` call takes (the model builds arrays of that length).
MAX_WRITES = 1 << 24


def _needs_6_7(kernel: Kernel, ioctl: str) -> None:
    if not kernel.has(6, 7):
        raise IommuError("ENOTTY", f"{ioctl} arrived in 6.7; kernel {kernel.value} has no such ioctl "
                         "(iommufd_fops_ioctl finds no op for it)")


def _flags(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an int, got {type(value).__name__} {str(value)[:40]!r}")
    value = int(value)
    if not 0 <= value <= 0xFFFF_FFFF:
        raise ValueError(f"{name} {value:#x} does not fit the __u32 field")
    return value


def make_tracker(ctx: Any, hwpt: HwptPaging) -> DirtyTracker | None:
    """The tracker of a HWPT allocated with DIRTY_TRACKING (its ``dirty_ops``), over the domain
    table the IOAS filled; None when the IOAS keeps no page tables."""
    ioas = ctx.objects_by_id[hwpt.ioas_id].ioas
    try:
        table = ioas.domain(hwpt.pseudo)
    except KeyError:
        return None
    return DirtyTracker(table, iova_alignment=max(ioas.iova_alignment, 1))


def _paging(ctx: Any, hwpt_id: Any, what: str) -> HwptPaging:
    """``iommufd_get_hwpt_paging``: ENOENT unless the id names a HWPT_PAGING."""
    if isinstance(hwpt_id, bool) or not isinstance(hwpt_id, int):
        raise TypeError(f"hwpt_id must be an object id (int), got {type(hwpt_id).__name__} {str(hwpt_id)[:40]!r}")
    if not 0 <= hwpt_id <= 0xFFFF_FFFF:
        raise ValueError(f"hwpt_id {hwpt_id} does not fit the __u32 id field")
    obj = ctx.objects_by_id.get(hwpt_id)
    if not isinstance(obj, HwptPaging):
        kind = f"a {obj.type.value}" if obj is not None else "nothing"
        extra = "; a nested HWPT has no mappings of its own, track its parent" if isinstance(obj, HwptNested) else ""
        raise IommuError("ENOENT", f"{what}: hwpt_id {hwpt_id} is {kind}, not a HWPT_PAGING{extra} "
                         "(iommufd_get_hwpt_paging)")
    return obj


def _tracker(ctx: Any, hwpt: HwptPaging, what: str) -> DirtyTracker:
    """The domain's ``dirty_ops``: EOPNOTSUPP for a HWPT allocated without DIRTY_TRACKING."""
    if not hwpt.flags & HwptFlag.DIRTY_TRACKING:
        raise IommuError("EOPNOTSUPP", f"{what}: HWPT {hwpt.id} was allocated without DIRTY_TRACKING, so its domain "
                         "has no dirty_ops; allocate it with hwpt_alloc(..., 'DIRTY_TRACKING') "
                         "(iopt_set_dirty_tracking / iommu_read_and_clear_dirty)")
    if hwpt.tracker is None:
        raise ValueError(f"{what}: HWPT {hwpt.id}'s IOAS keeps no page tables (page_tables=False), and dirty bits "
                         "live in the domain's leaf entries; make the IOAS with page tables")
    ioas = ctx.objects_by_id[hwpt.ioas_id].ioas
    hwpt.tracker.iova_alignment = max(ioas.iova_alignment, 1)
    return hwpt.tracker


def set_dirty_tracking(ctx: Any, hwpt_id: Any, enable: bool = True, *, flags: Any = None) -> None:
    """IOMMU_HWPT_SET_DIRTY_TRACKING (rules in the module docstring)."""
    _needs_6_7(ctx.kernel, "IOMMU_HWPT_SET_DIRTY_TRACKING")
    if flags is None:
        if not isinstance(enable, bool):
            raise TypeError(f"enable must be True or False, got {type(enable).__name__} {str(enable)[:40]!r}")
        flags = DIRTY_TRACKING_ENABLE if enable else 0
    flags = _flags(flags, "flags")
    what = f"HWPT_SET_DIRTY_TRACKING (hwpt_id={hwpt_id}, flags={flags:#x})"
    if flags & ~DIRTY_TRACKING_ENABLE:
        raise IommuError("EOPNOTSUPP", f"{what}: only IOMMU_HWPT_DIRTY_TRACKING_ENABLE (0x1) is defined "
                         "(iommufd_hwpt_set_dirty_tracking)")
    hwpt = _paging(ctx, hwpt_id, what)
    _tracker(ctx, hwpt, what).set_dirty_tracking(bool(flags & DIRTY_TRACKING_ENABLE))


def get_dirty_bitmap(ctx: Any, hwpt_id: Any, iova: Any, length: Any, page_size: Any, flags: Any = 0, *,
                     reserved: Any = 0) -> DirtyBitmap:
    """IOMMU_HWPT_GET_DIRTY_BITMAP (rules in the module docstring): the bitmap, one bit per
    ``page_size`` over ``[iova, iova + length)``; the dirty bits are cleared unless ``flags``
    holds ``NO_CLEAR`` (1)."""
    _needs_6_7(ctx.kernel, "IOMMU_HWPT_GET_DIRTY_BITMAP")
    flags = _flags(flags, "flags")
    reserved = _flags(reserved, "__reserved")
    what = f"HWPT_GET_DIRTY_BITMAP (hwpt_id={hwpt_id}, flags={flags:#x})"
    if flags & ~GET_DIRTY_BITMAP_NO_CLEAR or reserved:
        raise IommuError("EOPNOTSUPP", f"{what}: flags may hold only IOMMU_HWPT_GET_DIRTY_BITMAP_NO_CLEAR (0x1) and "
                         f"__reserved must be 0 (got {reserved:#x}) (iommufd_hwpt_get_dirty_bitmap)")
    hwpt = _paging(ctx, hwpt_id, what)
    ioas = ctx.objects_by_id[hwpt.ioas_id].ioas
    if not hwpt.flags & HwptFlag.DIRTY_TRACKING:
        # iommufd_check_iova_range runs before iommu_read_and_clear_dirty finds no dirty_ops.
        _checked(what, check_iova_range, iova, length, page_size, max(ioas.iova_alignment, 1))
    tracker = _tracker(ctx, hwpt, what)
    return _checked(what, tracker.get_dirty_bitmap, iova, length, page_size, flags)


def _checked(what: str, call: Any, *args: Any) -> Any:
    """``call(*args)`` with the ioctl named in front of any refusal."""
    try:
        return call(*args)
    except IommuError as e:
        raise IommuError(e.errno, f"{what}: {e.message}") from None


def _iovas(iovas: Any) -> np.ndarray:
    if isinstance(iovas, bool):
        raise TypeError("iovas must be an int or a sequence of ints, got a bool")
    if isinstance(iovas, (int, np.integer)):
        iovas = [int(iovas)]
    if isinstance(iovas, np.ndarray):
        if iovas.dtype.kind not in "iu":
            raise TypeError(f"iovas must be integers, got an array of {iovas.dtype}")
        if iovas.size > MAX_WRITES:
            raise ValueError(f"{iovas.size} writes in one call; at most {MAX_WRITES}")
        if iovas.dtype.kind == "i" and iovas.size and int(iovas.min()) < 0:
            raise ValueError(f"iova {int(iovas.min())} is negative; IOVAs are 0..2^64-1")
        return iovas.astype(np.uint64).ravel()
    try:
        n = len(iovas)
    except TypeError:
        raise TypeError(f"iovas must be an int or a sequence of ints, got {type(iovas).__name__}") from None
    if n > MAX_WRITES:
        raise ValueError(f"{n} writes in one call; at most {MAX_WRITES}")
    out = np.empty(n, dtype=np.uint64)
    for i, v in enumerate(iovas):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)):
            raise TypeError(f"iovas[{i}] must be an int, got {type(v).__name__} {str(v)[:40]!r}")
        if not 0 <= int(v) <= U64_MAX:
            raise ValueError(f"iovas[{i}] = {int(v)} is outside 0..2^64-1")
        out[i] = int(v)
    return out


def dma_write(ctx: Any, target: Any, iovas: Any) -> np.ndarray:
    """DMA writes through a HWPT, or by a bound device through what its RID is attached to.

    A write through a writable leaf of a domain whose dirty tracking is on sets the format's
    dirty bit (VT-d D, AMD HD, ARM AP[2] cleared under DBM). A nested HWPT's writes reach the
    parent's stage-2 leaves, so ``iovas`` are then the stage-1 outputs (guest physical
    addresses), which is what the parent's dirty bits record. Returns one bool per write: True
    where it translated with write permission. A detached device's DMA is blocked (all False).
    """
    if isinstance(target, bool) or not isinstance(target, int):
        raise TypeError(f"dma_write takes a HWPT or device id (int), got {type(target).__name__} {str(target)[:40]!r}")
    writes = _iovas(iovas)
    obj = ctx.objects_by_id.get(target)
    if isinstance(obj, DeviceObj):
        hwpt_id = obj.attached.get(0)
        if hwpt_id is None:
            return np.zeros(writes.size, dtype=bool)
        obj = ctx.objects_by_id[hwpt_id]
    if isinstance(obj, HwptNested):
        obj = ctx.objects_by_id[obj.parent_id]
    if not isinstance(obj, HwptPaging):
        kind = f"a {obj.type.value}" if obj is not None else "nothing"
        raise IommuError("ENOENT", f"dma_write: id {target} is {kind}; give a HWPT or a bound device")
    if obj.tracker is not None:
        return obj.tracker.dma_write(writes)
    ioas = ctx.objects_by_id[obj.ioas_id].ioas
    try:
        table = ioas.domain(obj.pseudo)
    except KeyError:
        raise ValueError(f"dma_write: HWPT {obj.id}'s IOAS keeps no page tables (page_tables=False)") from None
    return ~table.translate(writes, access="w").fault
