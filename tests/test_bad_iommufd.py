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

test_bad_input = parametrize(CASES)
