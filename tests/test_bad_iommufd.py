"""Bad input to iommufd's object graph and the IOAS constructor: each refused with our error,
the kernel's errno, the rule named, and the model unchanged."""

from __future__ import annotations

from badinput import Bad, parametrize

from iommu_lab.core.errors import IommuError
from iommu_lab.iommufd import IOAS, IommufdContext


def _graph():
    """One context holding one of everything: IOAS 1, VT-d device 2, SMMUv3 device 3, a VT-d nest
    parent 4, an SMMUv3 nest parent 5, vIOMMU 6, vDEVICE 7, nested HWPT 8 attached to device 3,
    a fault queue 9, an automatic HWPT 10 for device 2."""
    ctx = IommufdContext()
    ioas = ctx.ioas_alloc()
    vtd, arm = ctx.bind("intel-vtd-48"), ctx.bind("arm-smmuv3-48")
    ctx.hwpt_alloc(vtd, ioas, "NEST_PARENT")
    p_arm = ctx.hwpt_alloc(arm, ioas, "NEST_PARENT")
    viommu = ctx.viommu_alloc(arm, p_arm, "ARM_SMMUV3")
    ctx.vdevice_alloc(viommu, arm, 0x10)
    nested = ctx.hwpt_alloc(arm, viommu, data_type="ARM_SMMUV3")
    ctx.attach(arm, nested)
    ctx.fault_queue_alloc()
    ctx.attach(vtd, ioas)
    ctx.ioas(ioas).map(0x20_0000, 0x4000_0000)
    return ctx


G = _graph()


def snap():
    ioas = G.ioas(1)
    return G.objects(), G.attachments(), ioas.iova_ranges(), ioas.iova_alignment, len(ioas.history), ioas.areas


def row(id, call, errno=None, words=(), kind="refused", error=IommuError, snapshot=snap, **kw):
    return Bad(f"iommufd-{id}", "api", kind, call, error, errno=errno, words=words, snapshot=snapshot, **kw)


def _fresh(kernel="mainline"):
    ctx = IommufdContext(kernel=kernel)
    return ctx, ctx.ioas_alloc(), ctx.bind("intel-vtd-48")


CASES = [
    # -- HWPT_ALLOC ---------------------------------------------------------------------------
    row("hwpt-data-len-without-type", lambda: G.hwpt_alloc(2, 1, data_len=8), "EINVAL", ["data_len", "iommufd_hwpt_alloc"]),
    row("hwpt-type-without-data", lambda: G.hwpt_alloc(2, 4, data_type="VTD_S1", data_len=0), "EINVAL", ["data_len"]),
    row("hwpt-dev-id-is-ioas", lambda: G.hwpt_alloc(1, 1), "ENOENT", ["dev_id 1", "iommufd_hwpt_alloc"]),
    row("hwpt-unknown-pt", lambda: G.hwpt_alloc(2, 999), "EINVAL", ["999", "IOAS"]),
    row("hwpt-pt-is-device", lambda: G.hwpt_alloc(2, 3), "EINVAL", ["DEVICE"]),
    row("hwpt-unknown-flag", lambda: G.hwpt_alloc(2, 1, 0x100), "EOPNOTSUPP", ["0x100", "iommufd_hwpt_paging_alloc"]),
    row("hwpt-flag-name-typo", lambda: G.hwpt_alloc(2, 1, "NEST_PARNET"), None, ["NEST_PARNET", "NEST_PARENT"],
        error=ValueError, kind="message"),
    row("hwpt-flags-negative", lambda: G.hwpt_alloc(2, 1, -1), None, ["__u32"], error=ValueError, kind="silent"),
    row("hwpt-flags-bool", lambda: G.hwpt_alloc(2, 1, True), None, ["flags"], error=TypeError, kind="silent"),
    row("hwpt-nest-parent-fault", lambda: G.hwpt_alloc(2, 1, "NEST_PARENT|FAULT_ID_VALID", fault_id=9), "EOPNOTSUPP",
        ["nest parent", "fault"]),
    row("hwpt-fault-id-missing", lambda: G.hwpt_alloc(2, 1, "FAULT_ID_VALID", fault_id=1), "ENOENT",
        ["fault_id 1", "iommufd_get_fault"], kind="changed"),
    row("hwpt-smmu-dirty-parent", lambda: G.hwpt_alloc(3, 1, "NEST_PARENT|DIRTY_TRACKING"), "EOPNOTSUPP",
        ["arm_smmu_domain_alloc_paging_flags"]),
    row("hwpt-nested-on-auto", lambda: G.hwpt_alloc(2, 10, data_type="VTD_S1"), "EINVAL", ["automatically", "NEST_PARENT"]),
    row("hwpt-nested-no-data", lambda: G.hwpt_alloc(2, 4), "EOPNOTSUPP", ["driver data"]),
    row("hwpt-nested-wrong-data", lambda: G.hwpt_alloc(2, 4, data_type="ARM_SMMUV3"), "EOPNOTSUPP", ["VTD_S1"]),
    row("hwpt-nested-smmu-on-parent", lambda: G.hwpt_alloc(3, 5, data_type="ARM_SMMUV3"), "EOPNOTSUPP",
        ["vIOMMU", "domain_alloc_nested"]),
    row("hwpt-nested-other-iommu", lambda: G.hwpt_alloc(2, 6, data_type="ARM_SMMUV3"), "EINVAL", ["vIOMMU 6"]),
    row("hwpt-data-type-unknown", lambda: G.hwpt_alloc(2, 4, data_type="VTD_S2"), None, ["VTD_S2"], error=ValueError,
        kind="message"),
    row("hwpt-pt-id-text", lambda: G.hwpt_alloc(2, "1"), None, ["pt_id"], error=TypeError, kind="leak"),
    # -- vIOMMU and vDEVICE ---------------------------------------------------------------------
    row("viommu-default", lambda: G.viommu_alloc(3, 5, "DEFAULT"), "EOPNOTSUPP", ["DEFAULT"]),
    row("viommu-vtd", lambda: G.viommu_alloc(2, 4, "ARM_SMMUV3"), "EOPNOTSUPP", ["intel-iommu", "get_viommu_size"]),
    row("viommu-not-parent", lambda: G.viommu_alloc(3, 10, "ARM_SMMUV3"), "EINVAL", ["NEST_PARENT"]),
    row("viommu-on-ioas", lambda: G.viommu_alloc(3, 1, "ARM_SMMUV3"), "ENOENT", ["HWPT_PAGING"]),
    row("viommu-type-number", lambda: G.viommu_alloc(3, 5, 9), None, ["vIOMMU type", "ARM_SMMUV3=1"], error=ValueError,
        kind="message"),
    row("vdevice-virt-id-taken", lambda: G.vdevice_alloc(6, 3, 0x10), "EEXIST", ["already has vDEVICE"]),
    row("vdevice-other-iommu", lambda: G.vdevice_alloc(6, 2, 0x20), "EINVAL", ["sits behind"]),
    row("vdevice-virt-id-huge", lambda: G.vdevice_alloc(6, 3, 1 << 64), "EINVAL", ["64 bits"]),
    row("vdevice-no-viommu", lambda: G.vdevice_alloc(5, 3, 1), "ENOENT", ["no vIOMMU"]),
    # -- attach, replace, destroy ---------------------------------------------------------------
    row("attach-unknown", lambda: G.attach(2, 77), "ENOENT", ["77"]),
    row("attach-to-device", lambda: G.attach(2, 3), "EINVAL", ["DEVICE"]),
    row("attach-again", lambda: G.attach(3, 8), "EBUSY", ["already attached"]),
    row("attach-other", lambda: G.attach(3, 5), "EINVAL", ["replace"]),
    row("replace-not-attached", lambda: G.replace(2, 4, pasid=3), "EINVAL", ["not attached"]),
    row("attach-pasid-plain", lambda: G.attach(2, 4, pasid=3), "EINVAL", ["PASID flag"]),
    row("attach-pasid-text", lambda: G.attach(2, 4, pasid="3"), None, ["pasid"], error=TypeError, kind="leak"),
    row("attach-other-iommu", lambda: G.replace(2, 5), "EINVAL", ["domain owner"]),
    row("destroy-busy-ioas", lambda: G.destroy(1), "EBUSY", ["HWPT_PAGING 4"]),
    row("destroy-busy-viommu", lambda: G.destroy(6), "EBUSY", ["VDEVICE 7"]),
    row("destroy-device", lambda: G.destroy(2), "EBUSY", ["unbind"]),
    row("destroy-unknown", lambda: G.destroy(4242), "ENOENT", ["4242"]),
    row("destroy-negative", lambda: G.destroy(-1), None, ["__u32"], error=ValueError, kind="silent"),
    row("bind-twice", lambda: G.bind(G[2].device), None, ["already bound"], error=ValueError, kind="silent"),
    row("bind-unknown-platform", lambda: G.bind("intel-vtd-84"), "ENOENT", ["intel-vtd-84"]),
    row("kernel-unknown", lambda: IommufdContext(kernel="5.15"), None, ["5.15", "mainline"], error=ValueError,
        snapshot=None, kind="message"),
    # -- the IOAS constructor -------------------------------------------------------------------
    row("type1-limit-text", lambda: IOAS(semantics="type1", dma_entry_limit="many"), None, ["dma_entry_limit", "many"],
        error=TypeError, snapshot=None, kind="changed"),
    row("type1-limit-negative", lambda: IOAS(semantics="type1", dma_entry_limit=-1), None, ["-1", "0..0xffffffff"],
        error=ValueError, snapshot=None, kind="silent"),
    row("from-platform-name", lambda: IOAS.from_platform("intel-vtd-48"), kind="refused", error=None, snapshot=None,
        check=lambda ioas: ioas.platform.name == "intel-vtd-48"),
    row("from-platform-number", lambda: IOAS.from_platform(48), None, ["Platform"], error=TypeError, snapshot=None,
        kind="leak"),
    row("vfio-map-flag", lambda: IOAS(semantics="vfio-compat").map(0x1000, 0x1000, user_va=0x1000, prot=0x10), "EINVAL",
        ["iommufd_vfio_map_dma"], snapshot=None),
    row("ioas-kernel-float", lambda: IOAS(kernel=6.6), kind="refused", error=None, snapshot=None,
        check=lambda ioas: ioas.kernel == "6.6"),
]


def _dirty():
    """IOAS 1 with 2 MiB mapped at 2 MiB, VT-d device 2 attached to dirty-tracking HWPT 3 (tracking
    on, one write landed), a plain HWPT 4, a nest parent 5 and a nested HWPT 6 on it."""
    ctx = IommufdContext()
    ioas, dev = ctx.ioas_alloc(), ctx.bind("intel-vtd-48")
    hwpt = ctx.hwpt_alloc(dev, ioas, "DIRTY_TRACKING")
    ctx.attach(dev, hwpt)
    ctx.hwpt_alloc(dev, ioas)
    parent = ctx.hwpt_alloc(dev, ioas, "NEST_PARENT")
    ctx.hwpt_alloc(dev, parent, data_type="VTD_S1")
    ctx.ioas(ioas).map(0x20_0000, 0x20_0000)
    ctx.hwpt_set_dirty_tracking(hwpt)
    ctx.dma_write(dev, [0x20_0000])
    return ctx


D = _dirty()


def dsnap():
    ioas = D.ioas(1)
    dirty = [(o.id, o.tracker.enabled, tuple(o.tracker.dirty_leaves())) for o in D.objects_by_id.values()
             if getattr(o, "tracker", None) is not None]
    return D.objects(), D.attachments(), ioas.areas, len(ioas.history), dirty


def drow(id, call, errno=None, words=(), kind="refused", error=IommuError, snapshot=dsnap, **kw):
    return row(id, call, errno, words, kind=kind, error=error, snapshot=snapshot, **kw)


OLD = IommufdContext(kernel="6.12")
OLD_DEV = OLD.bind("arm-smmuv3-48")

CASES += [
    # -- IOMMU_HWPT_SET_DIRTY_TRACKING --------------------------------------------------------------
    drow("dirty-set-unknown-flag", lambda: D.hwpt_set_dirty_tracking(3, flags=2), "EOPNOTSUPP",
         ["IOMMU_HWPT_DIRTY_TRACKING_ENABLE", "iommufd_hwpt_set_dirty_tracking"]),
    drow("dirty-set-nested", lambda: D.hwpt_set_dirty_tracking(6), "ENOENT", ["HWPT_NESTED", "iommufd_get_hwpt_paging"]),
    drow("dirty-set-ioas", lambda: D.hwpt_set_dirty_tracking(1), "ENOENT", ["IOAS", "HWPT_PAGING"]),
    drow("dirty-set-no-dirty-ops", lambda: D.hwpt_set_dirty_tracking(4), "EOPNOTSUPP", ["DIRTY_TRACKING", "dirty_ops"]),
    drow("dirty-set-enable-text", lambda: D.hwpt_set_dirty_tracking(3, "no"), None, ["enable", "True or False"],
         error=TypeError, kind="silent"),
    drow("dirty-set-flags-huge", lambda: D.hwpt_set_dirty_tracking(3, flags=1 << 40), None, ["__u32"], error=ValueError,
         kind="silent"),
    # -- IOMMU_HWPT_GET_DIRTY_BITMAP ------------------------------------------------------------------
    drow("dirty-bitmap-unknown-flag", lambda: D.hwpt_get_dirty_bitmap(3, 0x20_0000, 0x20_0000, 0x1000, flags=2),
         "EOPNOTSUPP", ["NO_CLEAR", "iommufd_hwpt_get_dirty_bitmap"]),
    drow("dirty-bitmap-reserved", lambda: D.hwpt_get_dirty_bitmap(3, 0x20_0000, 0x20_0000, 0x1000, reserved=1),
         "EOPNOTSUPP", ["__reserved"]),
    drow("dirty-bitmap-wrap", lambda: D.hwpt_get_dirty_bitmap(3, 1 << 63, (1 << 63) | 0x1000, 0x1000), "EOVERFLOW",
         ["wraps", "iommufd_check_iova_range"]),
    drow("dirty-bitmap-misaligned", lambda: D.hwpt_get_dirty_bitmap(3, 0x20_0800, 0x1000, 0x1000), "EINVAL",
         ["0x20_0800", "aligned"]),
    drow("dirty-bitmap-page-size-zero", lambda: D.hwpt_get_dirty_bitmap(3, 0x20_0000, 0x20_0000, 0), "EINVAL",
         ["page_size 0"]),
    drow("dirty-bitmap-page-size-odd", lambda: D.hwpt_get_dirty_bitmap(3, 0x20_0000, 0x3000, 0x3000), "EINVAL",
         ["0x3000"]),
    drow("dirty-bitmap-huge", lambda: D.hwpt_get_dirty_bitmap(3, 0, 1 << 50, 0x1000), "ENOMEM", ["limit", "page_size"],
         kind="memory", isolate=True),
    drow("dirty-bitmap-negative-iova", lambda: D.hwpt_get_dirty_bitmap(3, -0x1000, 0x1000, 0x1000), "EINVAL",
         ["negative"], kind="silent"),
    drow("dirty-bitmap-iova-text", lambda: D.hwpt_get_dirty_bitmap(3, "0x20_0000", 0x1000, 0x1000), None, ["iova"],
         error=TypeError, kind="leak"),
    drow("dirty-bitmap-range-before-dirty-ops", lambda: D.hwpt_get_dirty_bitmap(4, 0x20_0000, 0x20_0000, 0), "EINVAL",
         ["page_size 0"]),
    drow("dirty-bitmap-no-dirty-ops", lambda: D.hwpt_get_dirty_bitmap(4, 0x20_0000, 0x20_0000, 0x1000), "EOPNOTSUPP",
         ["dirty_ops"]),
    # -- DMA writes -----------------------------------------------------------------------------------
    drow("dma-write-float", lambda: D.dma_write(2, [1.5]), None, ["iovas[0]", "float"], error=TypeError, kind="leak"),
    drow("dma-write-too-many", lambda: D.dma_write(2, range(1 << 30)), None, ["at most"], kind="memory",
         error=ValueError),
    drow("dma-write-negative", lambda: D.dma_write(2, [-1]), None, ["-1", "0..2^64-1"], error=ValueError, kind="silent"),
    drow("dma-write-unknown", lambda: D.dma_write(99, [0x20_0000]), "ENOENT", ["99"]),
    # -- IOMMU_GET_HW_INFO ----------------------------------------------------------------------------
    drow("hw-info-flags", lambda: D.get_hw_info(2, flags=2), "EOPNOTSUPP", ["iommufd_get_hw_info"]),
    drow("hw-info-other-type", lambda: D.get_hw_info(2, data_type="ARM_SMMUV3"), "EOPNOTSUPP", ["INTEL_VTD"]),
    drow("hw-info-type-typo", lambda: D.get_hw_info(2, data_type="VTD"), None, ["VTD", "INTEL_VTD"], error=ValueError,
         kind="message"),
    drow("hw-info-not-device", lambda: D.get_hw_info(1), "ENOENT", ["dev_id 1"]),
    drow("hw-info-input-type-6.12", lambda: OLD.get_hw_info(OLD_DEV, data_type="ARM_SMMUV3"), "EOPNOTSUPP", ["6.16"],
         snapshot=None),
    # -- releases and errata --------------------------------------------------------------------------
    drow("enotty-vdevice-6.12", lambda: OLD.vdevice_alloc(9, OLD_DEV, 1), "ENOTTY", ["6.13"], snapshot=None),
    drow("enotty-dirty-6.6", lambda: IommufdContext(kernel="6.6").hwpt_get_dirty_bitmap(1, 0, 0x1000, 0x1000), "ENOTTY",
         ["6.7"], snapshot=None),
    drow("ro-map-on-vtd-nest-parent", lambda: D.ioas(1).map(0x20_0000, 0x80_0000, prot="r"), "EINVAL",
         ["ERRATA_772415_SPR17", "nest parent"]),
]

test_bad_input = parametrize(CASES)
