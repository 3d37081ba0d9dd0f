"""Bad input to GET_HW_INFO decoding, dirty tracking and the migration model."""

from __future__ import annotations

from functools import cached_property

from badinput import Bad, parametrize

from iommu_lab.core.errors import IommuError
from iommu_lab.hardware import registers as R
from iommu_lab.pagetable.dirty import GET_DIRTY_BITMAP_NO_CLEAR, DirtyTracker
from iommu_lab.pagetable.table import PageTable
from iommu_lab.review.migration import DirtyRate, Writes, migrate

K4, M2, GiB = 4096, 2 << 20, 1 << 30


class _Tracked:
    """A VT-d table with one dirty 4 KiB page, built on first use (one per row)."""

    @cached_property
    def d(self) -> DirtyTracker:
        t = PageTable("vtd-ss-4level")
        t.map(0, 0x4000_0000, 2 * M2)
        d = DirtyTracker(t)
        d.set_dirty_tracking(True)
        d.dma_write([K4])
        return d

    def state(self):
        return self.d.enabled, self.d.get_dirty_bitmap(0, 2 * M2, K4, GET_DIRTY_BITMAP_NO_CLEAR).words.tolist()


def _bitmap(id_, args, errno, words, kind="silent", **kw):
    h = _Tracked()
    return Bad(id_, "api", kind, lambda: h.d.get_dirty_bitmap(*args, **kw), IommuError, errno, words,
               snapshot=h.state)


def _set(id_, kw, errno, words):
    h = _Tracked()
    return Bad(id_, "api", "changed", lambda: h.d.set_dirty_tracking(**kw), IommuError, errno, words,
               snapshot=h.state)


_small = _Tracked()

CASES = [
    # ---- decoding registers (struct iommu_hw_info_* fields) ----
    Bad("hwinfo-decode-cap-over-u64", "api", "silent", lambda: R.decode("INTEL_VTD", cap_reg=1 << 64),
        IommuError, "EINVAL", ["cap_reg", "64 bits"]),
    Bad("hwinfo-decode-negative-ecap", "api", "silent", lambda: R.decode("INTEL_VTD", ecap_reg=-1),
        IommuError, "EINVAL", ["ecap_reg"]),
    Bad("hwinfo-decode-idr-over-u32", "api", "silent", lambda: R.decode("ARM_SMMUV3", idr=(1 << 32, 0, 0, 0, 0, 0)),
        IommuError, "EINVAL", ["idr[0]", "32 bits"]),
    Bad("hwinfo-decode-idr-five-words", "api", "leak", lambda: R.decode("ARM_SMMUV3", idr=(0,) * 5),
        IommuError, "EINVAL", ["6 values"]),
    Bad("hwinfo-decode-unknown-register", "api", "silent", lambda: R.decode("AMD", cap_reg=0),
        IommuError, "EINVAL", ["no register", "efr"]),
    Bad("hwinfo-decode-unknown-type", "api", "leak", lambda: R.decode("PPC_TCE", cap_reg=0),
        IommuError, "EINVAL", ["unknown hw_info type", "INTEL_VTD"]),
    Bad("hwinfo-decode-float-register", "api", "silent", lambda: R.decode("AMD", efr=1.5),
        TypeError, None, ["efr", "float"]),
    Bad("hwinfo-decode-bool-register", "api", "silent", lambda: R.decode("INTEL_VTD", cap_reg=True),
        TypeError, None, ["cap_reg"]),
    Bad("hwinfo-device-pasid-21-bits", "api", "silent", lambda: R.hw_info("intel-vtd-48", device_pasid_bits=21),
        IommuError, "EINVAL", ["0..20"]),
    Bad("hwinfo-unknown-platform", "api", "message", lambda: R.hw_info("no-such-host"),
        IommuError, "ENOENT", ["known platforms"]),
    Bad("hwinfo-copy-out-negative", "api", "leak", lambda: R.hw_info("intel-vtd-48").copy_out(-1),
        IommuError, "EINVAL", ["data_len", "u32"]),
    Bad("hwinfo-copy-out-over-u32", "api", "memory", lambda: R.hw_info("intel-vtd-48").copy_out(1 << 40),
        IommuError, "EINVAL", ["data_len"], isolate=True),
    Bad("hwinfo-regset-no-cap-line", "text", "silent", lambda: R.parse_regset("VER 0x00 0x10\n"),
        IommuError, "EINVAL", ["CAP", "iommu_regset_show"]),
    Bad("hwinfo-regset-huge-text", "text", "memory", lambda: R.parse_regset("CAP 0x08 0x1\n" * 200_000),
        ValueError, None, ["characters"]),
    Bad("hwinfo-regset-bytes", "text", "leak", lambda: R.parse_regset(b"CAP 0x08 0x1"),
        TypeError, None, ["str"]),
    Bad("hwinfo-check-host-dict-request", "api", "leak", lambda: R.check_host("intel-vtd-48", {"aw_bits": 48}),
        TypeError, None, ["VIommuRequest"]),
    # ---- GET_DIRTY_BITMAP arguments (iommufd_check_iova_range order) ----
    _bitmap("hwinfo-bitmap-iova-unaligned", (0x800, M2, K4), "EINVAL", ["IOAS alignment"]),
    _bitmap("hwinfo-bitmap-end-unaligned", (0, M2 + 0x800, K4), "EINVAL", ["IOAS alignment"]),
    _bitmap("hwinfo-bitmap-page-size-zero", (0, M2, 0), "EINVAL", ["page_size 0"]),
    _bitmap("hwinfo-bitmap-iova-not-page-multiple", (K4, M2, M2), "EINVAL", ["whole number", "0x200000"]),
    _bitmap("hwinfo-bitmap-page-size-not-power-of-two", (0, 0x4000, 0x3000), "EINVAL", ["power of two", "__ffs"]),
    _bitmap("hwinfo-bitmap-length-zero-wraps", (K4, 0, K4), "EOVERFLOW", ["wraps", "check_add_overflow"]),
    _bitmap("hwinfo-bitmap-range-wraps", ((1 << 64) - K4, 2 * K4, K4), "EOVERFLOW", ["wraps"]),
    _bitmap("hwinfo-bitmap-negative-iova", (-K4, K4, K4), "EINVAL", ["negative", "__u64"]),
    _bitmap("hwinfo-bitmap-iova-over-u64", (1 << 64, K4, K4), "EOVERFLOW", ["__u64"]),
    _bitmap("hwinfo-bitmap-unknown-flag", (0, M2, K4, 2), "EOPNOTSUPP", ["NO_CLEAR"]),
    _bitmap("hwinfo-bitmap-reserved-set", (0, M2, K4), "EOPNOTSUPP", ["__reserved"], reserved=1),
    _bitmap("hwinfo-bitmap-too-large", (0, 1 << 48, K4), "ENOMEM", ["bits", "page_size"], kind="memory"),
    Bad("hwinfo-bitmap-below-iommu-page-accepted", "api", "refused",
        lambda: _small.d.get_dirty_bitmap(0, 4 * K4, 0x200, GET_DIRTY_BITMAP_NO_CLEAR), None,
        check=lambda bm: bm.count == 8),
    # ---- SET_DIRTY_TRACKING and HWPT_ALLOC(DIRTY_TRACKING) ----
    _set("hwinfo-set-dirty-unknown-flag", {"flags": 2}, "EOPNOTSUPP", ["DIRTY_TRACKING_ENABLE"]),
    _set("hwinfo-set-dirty-reserved", {"reserved": 4}, "EOPNOTSUPP", ["__reserved"]),
    Bad("hwinfo-dirty-on-first-stage", "api", "silent", lambda: DirtyTracker(PageTable("x86-64-4level")),
        IommuError, "EOPNOTSUPP", ["first_stage", "DIRTY_TRACKING"]),
    Bad("hwinfo-dirty-on-arm-stage2", "api", "silent", lambda: DirtyTracker(PageTable("arm-lpae-s2-4k-48bit")),
        IommuError, "EOPNOTSUPP", ["stage 1 only"]),
    Bad("hwinfo-dirty-alignment-not-power-of-two", "api", "silent",
        lambda: DirtyTracker(PageTable("vtd-ss-4level"), iova_alignment=3000), ValueError, None, ["power of two"]),
    # ---- the migration model ----
    Bad("hwinfo-migrate-leaf-not-power-of-two", "api", "silent",
        lambda: migrate(DirtyRate(1, GiB), memory=GiB, bandwidth=1e9, leaf=3000), ValueError, None, ["power of two"]),
    Bad("hwinfo-migrate-zero-bandwidth", "api", "leak",
        lambda: migrate(DirtyRate(1, GiB), memory=GiB, bandwidth=0), ValueError, None, ["bandwidth", "> 0"]),
    Bad("hwinfo-migrate-nan-memory", "api", "leak",
        lambda: migrate(DirtyRate(1, GiB), memory=float("nan"), bandwidth=1e9), ValueError, None, ["memory"]),
    Bad("hwinfo-migrate-million-rounds", "api", "time",
        lambda: migrate(DirtyRate(1, GiB), memory=GiB, bandwidth=1e9, max_rounds=10**6), ValueError, None,
        ["max_rounds"]),
    Bad("hwinfo-writes-rate-too-high", "api", "memory", lambda: Writes.synthetic(1e9, GiB, 1.0),
        ValueError, None, ["DirtyRate"], isolate=True),
    Bad("hwinfo-dirty-rate-negative", "api", "silent", lambda: DirtyRate(-5, GiB), ValueError, None, ["rate"]),
]

test_bad_input = parametrize(CASES)
