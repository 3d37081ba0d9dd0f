"""One open ``/dev/iommu``: iommufd's object table and the ioctls that build and tear it down.

Mirrors drivers/iommu/iommufd/main.c (``struct iommufd_ctx`` with its ``objects`` xarray: ids
are the lowest free number from 1, reused after IOMMU_DESTROY; ``iommufd_destroy`` refuses an
object another one still holds with EBUSY), and the allocation ioctls of hw_pagetable.c
(``hwpt.py``), viommu.c (``viommu.py``) and device.c (``device_obj.py``). Every operation checks
everything first and changes nothing when it fails: where the kernel itself unwinds (an
automatic domain whose reservations conflict, a fault id looked up after the domain exists) the
model unwinds the same steps, so the IOAS, its history and the table are as they were.

The IOAS model (``IOAS``) is the IOAS object of a context: ``ctx.ioas_alloc()`` makes one, and an
``IOAS`` made alone gets a private context on first use of ``ioas.context``.
"""

from __future__ import annotations

from typing import Any, Union

from iommu_lab.core import display
from iommu_lab.core.errors import IommuError
from iommu_lab.core.ranges import check_u64
from iommu_lab.hardware.device import Device
from iommu_lab.hardware.platform import Platform, platforms
from iommu_lab.hardware.registers import HwInfo
from iommu_lab.iommufd.device_obj import (
    check_driver_attach,
    check_pasid_compat,
    domain_device,
    regions_device,
    users_of,
)
from iommu_lab.iommufd.dirty import dma_write, get_dirty_bitmap, make_tracker, set_dirty_tracking
from iommu_lab.iommufd.drivers import driver_for
from iommu_lab.iommufd.hw_info import get_hw_info
from iommu_lab.iommufd.hwpt import check_alloc, check_fault, iommu_of, make_nested
from iommu_lab.iommufd.ioas import IOAS
from iommu_lab.iommufd.objects import (
    NO_PASID,
    AccessObj,
    Attachment,
    DeviceObj,
    FaultObj,
    HwptData,
    HwptFlag,
    HwptNested,
    HwptPaging,
    IoasObj,
    Kernel,
    Obj,
    ObjectInfo,
    VdeviceObj,
    ViommuObj,
    ViommuType,
    set_private_context_factory,
)
from iommu_lab.iommufd.viommu import check_vdevice_alloc, check_viommu_alloc
from iommu_lab.pagetable.dirty import DirtyBitmap

__all__ = ["IommufdContext"]

#: ``xa_limit_31b``: object ids are positive 31-bit numbers.
_MAX_ID = 0x7FFF_FFFF


def _obj_id(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an object id (int), got {type(value).__name__} {value!r}")
    if not 0 <= value <= 0xFFFF_FFFF:
        raise ValueError(f"{name} {value} does not fit the __u32 id field")
    return value


def _pasid(value: Any) -> int:
    if value is None:
        return NO_PASID
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"pasid must be an int or None (the RID), got {type(value).__name__} {value!r}")
    if not 0 <= value <= 0xFFFF_FFFF:
        raise ValueError(f"pasid {value} does not fit the __u32 pasid field")
    return value


class IommufdContext:
    """One open ``/dev/iommu`` (``struct iommufd_ctx``): objects by id and the rules between them.

    Parameters
    ----------
    kernel : str or Kernel
        Whose rules to follow: ``"mainline"`` (default), ``"6.12"`` or ``"6.6"`` (see ``Kernel``).

    Examples
    --------
    >>> ctx = IommufdContext()
    >>> ioas = ctx.ioas_alloc()
    >>> dev = ctx.bind("intel-vtd-48")
    >>> parent = ctx.hwpt_alloc(dev, ioas, "NEST_PARENT")
    >>> nested = ctx.hwpt_alloc(dev, parent, data_type="VTD_S1")
    >>> ctx.attach(dev, nested)
    4
    """

    _repr_html_ = display.html
    plot = display.plot

    def __init__(self, *, kernel: Union[str, Kernel] = Kernel.MAINLINE) -> None:
        self.kernel = Kernel.parse(kernel)
        self.objects_by_id: dict[int, Obj] = {}

    # -- the table -----------------------------------------------------------------------
    def _new_id(self) -> int:
        """``xa_alloc`` with ``XA_FLAGS_ALLOC1``: the lowest free id from 1."""
        i = 1
        while i in self.objects_by_id:
            i += 1
        if i > _MAX_ID:
            raise IommuError("ENOSPC", "every object id is taken (xa_limit_31b)")
        return i

    def __getitem__(self, obj_id: int) -> Obj:
        obj = self.objects_by_id.get(_obj_id(obj_id, "id"))
        if obj is None:
            raise IommuError("ENOENT", f"no object has id {obj_id}; ids: {sorted(self.objects_by_id) or 'none'}")
        return obj

    def __contains__(self, obj_id: object) -> bool:
        return obj_id in self.objects_by_id

    def __len__(self) -> int:
        return len(self.objects_by_id)

    def objects(self) -> tuple[ObjectInfo, ...]:
        """Every object, by id, as frozen rows."""
        return tuple(self.objects_by_id[i].info() for i in sorted(self.objects_by_id))

    def attachments(self) -> tuple[Attachment, ...]:
        """Every (device, PASID) → HWPT edge, by device then PASID."""
        return tuple(Attachment(o.id, p, h) for o in self._of(DeviceObj) for p, h in sorted(o.attached.items()))

    def holders(self, obj_id: int) -> tuple[int, ...]:
        """The ids that keep ``obj_id`` alive: objects referring to it, devices attached to it."""
        held = {o.id for o in self.objects_by_id.values() if obj_id in o.refs}
        held |= {d for d, _ in users_of(self, obj_id)}
        return tuple(sorted(held))

    def ioas(self, ioas_id: int) -> IOAS:
        """The IOAS model behind an IOAS id."""
        obj = self[ioas_id]
        if not isinstance(obj, IoasObj):
            raise IommuError("EINVAL", f"id {ioas_id} is a {obj.type.value}, not an IOAS")
        return obj.ioas

    def _of(self, cls: type) -> list[Any]:
        return [self.objects_by_id[i] for i in sorted(self.objects_by_id) if isinstance(self.objects_by_id[i], cls)]

    def device_obj(self, dev_id: int, what: str, source: str) -> DeviceObj:
        """``iommufd_get_device``: the bound device with that id, else ENOENT."""
        obj = self.objects_by_id.get(dev_id)
        if not isinstance(obj, DeviceObj):
            kind = f"a {obj.type.value}" if obj is not None else "nothing"
            raise IommuError("ENOENT", f"{what}: dev_id {dev_id} is {kind}, not a bound device ({source})")
        return obj

    # -- allocation ------------------------------------------------------------------------
    def ioas_alloc(self, **ioas_kwargs: Any) -> int:
        """IOMMU_IOAS_ALLOC: a fresh IOAS (keywords go to ``IOAS``, e.g. ``hpage_size=``)."""
        ioas_kwargs.setdefault("kernel", self.kernel.value)
        return self.adopt(IOAS(**ioas_kwargs))

    def adopt(self, ioas: IOAS) -> int:
        """Make an existing ``IOAS`` an object of this context; its id."""
        if not isinstance(ioas, IOAS):
            raise TypeError(f"adopt takes an IOAS, got {type(ioas).__name__}")
        owner = ioas.__dict__.get("_context")
        if owner is not None and owner is not self:
            raise ValueError("this IOAS already belongs to another context")
        for o in self._of(IoasObj):
            if o.ioas is ioas:
                return o.id
        new = self._new_id()
        self.objects_by_id[new] = IoasObj(new, ioas)
        ioas._context = self
        return new

    def bind(self, device: Union[str, Platform, Device], *, name: str | None = None) -> int:
        """Bind a device (``iommufd_device_bind``, what VFIO_DEVICE_BIND_IOMMUFD does): a platform
        name, a ``Platform`` (its ``device(name)``) or a ``Device`` (its ``platform`` name, if any,
        says which IOMMU it sits behind). Device names are unique within a context."""
        if isinstance(device, str):
            device = platforms.get(device)
        if isinstance(device, Platform):
            platform = device
            if name is None:
                # Skip the names already in use, bound or attached to an adopted IOAS (an
                # ``IOAS.from_platform`` carries its own ``dev0``), so the default never collides.
                taken = self._device_names()
                n = 0
                while f"dev{n}" in taken:
                    n += 1
                name = f"dev{n}"
            dev = platform.device(name)
        elif isinstance(device, Device):
            dev = device
            platform = platforms.get(dev.platform) if dev.platform else None
        else:
            raise TypeError(f"bind takes a platform name, a Platform or a Device, got {type(device).__name__} {device!r}")
        if dev.name in self._device_names():
            raise ValueError(f"a device called {dev.name!r} is already bound or attached to an IOAS of this context; "
                             "give another name=")
        new = self._new_id()
        self.objects_by_id[new] = DeviceObj(new, dev, platform, driver_for(platform))
        return new

    def _device_names(self) -> set[str]:
        names = {d.device.name for d in self._of(DeviceObj)}
        for o in self._of(IoasObj):
            names |= {getattr(d, "name", "") for d in o.ioas.devices}
        return names

    def fault_queue_alloc(self) -> int:
        """IOMMU_FAULT_QUEUE_ALLOC (since 6.11): a FAULT object a HWPT can report page requests to."""
        if not self.kernel.has(6, 11):
            raise IommuError("ENOTTY", f"IOMMU_FAULT_QUEUE_ALLOC arrived in 6.11; kernel {self.kernel.value} has no such "
                             "ioctl (iommufd_fops_ioctl finds no op for it)")
        new = self._new_id()
        self.objects_by_id[new] = FaultObj(new)
        return new

    def access_create(self, ioas_id: int, iova_alignment: int = 1) -> int:
        """An in-kernel access on an IOAS (``iommufd_access_create``; the selftest's access)."""
        ioas_id = _obj_id(ioas_id, "ioas_id")
        obj = self.objects_by_id.get(ioas_id)
        if not isinstance(obj, IoasObj):
            raise IommuError("ENOENT", f"access_create: ioas_id {ioas_id} names no IOAS (iommufd_access_create)")
        access = obj.ioas.add_access(iova_alignment)
        new = self._new_id()
        self.objects_by_id[new] = AccessObj(new, ioas_id, access)
        return new

    def hwpt_alloc(self, dev_id: int, pt_id: int, flags: Any = 0, *, data_type: Any = HwptData.NONE,
                   data_len: int | None = None, fault_id: int | None = None) -> int:
        """IOMMU_HWPT_ALLOC: a HWPT_PAGING on an IOAS, or a HWPT_NESTED on a nest parent (VT-d) or
        a vIOMMU (SMMUv3, AMD). Returns the new id. The rules, in the kernel's order, are in
        ``iommu_lab.iommufd.hwpt``. ``data_len`` defaults to 0 for ``data_type`` NONE and to the
        driver structure's size otherwise (pass 0 to send an empty one)."""
        dev_id, pt_id = _obj_id(dev_id, "dev_id"), _obj_id(pt_id, "pt_id")
        flags = HwptFlag.parse(flags)
        data = HwptData.parse(data_type)
        if data_len is None:
            data_len = 0 if data is HwptData.NONE else 8
        data_len = check_u64(data_len, "data_len")
        if fault_id is not None:
            fault_id = _obj_id(fault_id, "fault_id")
        plan = check_alloc(self, dev_id, pt_id, flags, data, data_len)
        what = f"HWPT_ALLOC (dev_id={dev_id}, pt_id={pt_id}, flags={flags.text})"
        new = self._new_id()
        if plan.kind == "paging":
            assert plan.ioas is not None
            mark = len(plan.ioas.ioas.history)
            hwpt: Obj = self._add_domain(new, plan.ioas, plan.idev, flags, auto=False)
            try:
                fault = check_fault(self, flags, fault_id, what)
            except IommuError:
                # iommufd_object_abort_and_destroy: the domain leaves the IOAS as if never added.
                self._remove_domain(hwpt)  # type: ignore[arg-type]
                del plan.ioas.ioas.history[mark:]
                raise
        else:
            fault = check_fault(self, flags, fault_id, what)
            hwpt = make_nested(new, plan)
        hwpt.fault_id = fault.id if fault is not None else None  # type: ignore[attr-defined]
        self.objects_by_id[new] = hwpt
        return new

    def viommu_alloc(self, dev_id: int, hwpt_id: int, type: Any, *, flags: int = 0) -> int:
        """IOMMU_VIOMMU_ALLOC (since 6.13): a vIOMMU on a nest parent; rules in ``viommu.py``."""
        dev_id, hwpt_id = _obj_id(dev_id, "dev_id"), _obj_id(hwpt_id, "hwpt_id")
        vtype = ViommuType.parse(type)
        flags = _obj_id(flags, "flags")
        idev, hwpt = check_viommu_alloc(self, dev_id, hwpt_id, vtype, flags)
        new = self._new_id()
        self.objects_by_id[new] = ViommuObj(new, vtype, hwpt.id, iommu_of(idev), idev.driver)
        return new

    def vdevice_alloc(self, viommu_id: int, dev_id: int, virt_id: int) -> int:
        """IOMMU_VDEVICE_ALLOC (since 6.13): the device's virtual id in a vIOMMU (vSID, vDeviceID)."""
        viommu_id, dev_id = _obj_id(viommu_id, "viommu_id"), _obj_id(dev_id, "dev_id")
        if isinstance(virt_id, bool) or not isinstance(virt_id, int):
            raise TypeError(f"virt_id must be an int, got {type(virt_id).__name__} {virt_id!r}")
        viommu, idev = check_vdevice_alloc(self, viommu_id, dev_id, virt_id)
        new = self._new_id()
        self.objects_by_id[new] = VdeviceObj(new, viommu.id, idev.id, virt_id)
        viommu.vdevs[virt_id] = new
        return new

    # -- GET_HW_INFO and dirty tracking -------------------------------------------------------
    def get_hw_info(self, dev_id: int, *, data_type: Any = None, flags: int = 0) -> HwInfo:
        """IOMMU_GET_HW_INFO for a bound device (``iommufd_get_hw_info``); rules in ``hw_info.py``.
        ``data_type`` (``IOMMU_HW_INFO_FLAG_INPUT_TYPE``, since 6.16) asks for one type; the
        answer's ``copy_out(data_len)`` is what a user buffer of ``data_len`` bytes receives."""
        return get_hw_info(self, dev_id, data_type=data_type, flags=flags)

    def hwpt_set_dirty_tracking(self, hwpt_id: int, enable: bool = True, *, flags: Any = None) -> None:
        """IOMMU_HWPT_SET_DIRTY_TRACKING (since 6.7): switch the domain's hardware dirty-bit updates
        on (clearing stale bits first) or off; ``flags`` overrides ``enable`` with raw uAPI bits.
        Rules in ``iommu_lab.iommufd.dirty``."""
        set_dirty_tracking(self, hwpt_id, enable, flags=flags)

    def hwpt_get_dirty_bitmap(self, hwpt_id: int, iova: int, length: int, page_size: int, flags: int = 0, *,
                              reserved: int = 0) -> DirtyBitmap:
        """IOMMU_HWPT_GET_DIRTY_BITMAP (since 6.7): one bit per ``page_size`` over
        ``[iova, iova + length)``, read and cleared unless ``flags`` is NO_CLEAR (1)."""
        return get_dirty_bitmap(self, hwpt_id, iova, length, page_size, flags, reserved=reserved)

    def dma_write(self, target: int, iovas: Any) -> Any:
        """DMA writes through a HWPT or by a bound device (its RID's HWPT): one bool per write,
        True where it translated with write permission; dirty bits set where tracking is on."""
        return dma_write(self, target, iovas)

    # -- domains in an IOAS ---------------------------------------------------------------
    def _add_domain(self, new: int, ioas_obj: IoasObj, idev: DeviceObj, flags: HwptFlag, *, auto: bool) -> HwptPaging:
        """``iopt_table_add_domain`` for a new HWPT_PAGING (aperture reserved, alignment raised,
        the domain filled); raises without leaving anything behind."""
        pseudo = f"hwpt{new}"
        ro_refused = idev.driver.ro_nest_parent_erratum and bool(flags & HwptFlag.NEST_PARENT)
        ioas_obj.ioas.attach(domain_device(pseudo, idev, flags), force_writeable=ro_refused)
        hwpt = HwptPaging(new, ioas_obj.id, flags, auto=auto, driver=idev.driver, fault_id=None, pseudo=pseudo,
                          iommu=iommu_of(idev), platform=idev.platform)
        if flags & HwptFlag.DIRTY_TRACKING:
            hwpt.tracker = make_tracker(self, hwpt)
        return hwpt

    def _remove_domain(self, hwpt: HwptPaging) -> None:
        """``iopt_table_remove_domain``: the domain's reservations go, the alignment is recomputed."""
        ioas = self.objects_by_id[hwpt.ioas_id].ioas  # type: ignore[attr-defined]
        ioas.detach(hwpt.pseudo)

    def _paging_of(self, hwpt: Obj) -> HwptPaging:
        return hwpt if isinstance(hwpt, HwptPaging) else self.objects_by_id[hwpt.parent_id]  # type: ignore[attr-defined,return-value]

    # -- attach, replace, detach ------------------------------------------------------------
    def attach(self, dev_id: int, pt_id: int, *, pasid: int | None = None) -> int:
        """Attach a device (or one PASID of it) to a HWPT, or to an IOAS through an automatic
        HWPT (``iommufd_device_attach``). Returns the HWPT id. Rules in ``device_obj.py``."""
        return self._change(dev_id, pt_id, pasid, replace=False)

    def replace(self, dev_id: int, pt_id: int, *, pasid: int | None = None) -> int:
        """Replace an attached device's HWPT without a blocking gap (``iommufd_device_replace``).
        Returns the new HWPT id."""
        return self._change(dev_id, pt_id, pasid, replace=True)

    def _change(self, dev_id: int, pt_id: int, pasid: Any, *, replace: bool) -> int:
        dev_id, pt_id, pasid = _obj_id(dev_id, "dev_id"), _obj_id(pt_id, "pt_id"), _pasid(pasid)
        verb = "replace" if replace else "attach"
        what = f"{verb} (dev_id={dev_id}, pt_id={pt_id}, pasid={pasid})"
        idev = self.device_obj(dev_id, what, f"iommufd_device_{verb}")
        target = self.objects_by_id.get(pt_id)
        if target is None:
            raise IommuError("ENOENT", f"{what}: no object has id {pt_id} (iommufd_device_change_pt)")
        if not isinstance(target, (IoasObj, HwptPaging, HwptNested)):
            raise IommuError("EINVAL", f"{what}: pt_id {pt_id} is a {target.type.value}; attach takes an IOAS or a HWPT "
                             "(iommufd_device_change_pt)")
        if pasid != NO_PASID and not self.kernel.has(6, 15):
            raise IommuError("EINVAL", f"{what}: PASID attach arrived in 6.15; kernel {self.kernel.value}'s "
                             "VFIO_DEVICE_ATTACH_IOMMUFD_PT takes no PASID flag (vfio_df_ioctl_attach_pt)")
        current = idev.attached.get(pasid)
        if replace and current is None:
            raise IommuError("EINVAL", f"{what}: the device is not attached at pasid {pasid}; attach it first "
                             "(iommufd_device_do_replace)")
        if isinstance(target, IoasObj):
            return self._auto(idev, pasid, target, current, what)
        return self._to_hwpt(idev, pasid, target, current, what)

    def _to_hwpt(self, idev: DeviceObj, pasid: int, hwpt: Any, current: int | None, what: str) -> int:
        """``iommufd_hw_pagetable_attach`` / ``iommufd_device_do_replace`` for one existing HWPT."""
        replace = what.startswith("replace")
        if not replace and current is not None:
            if current == hwpt.id:
                raise IommuError("EBUSY", f"{what}: the device is already attached to HWPT {hwpt.id} "
                                 "(iommufd_hw_pagetable_attach)")
            raise IommuError("EINVAL", f"{what}: the device is attached to HWPT {current}; use replace to change "
                             "its translation without a gap (iommufd_hw_pagetable_attach)")
        if replace and current == hwpt.id:
            return hwpt.id
        check_pasid_compat(self, idev, pasid, hwpt, what)
        new_paging = self._paging_of(hwpt)
        old_paging = self._paging_of(self.objects_by_id[current]) if current is not None else None
        move_regions = pasid == NO_PASID and (old_paging is None or old_paging.ioas_id != new_paging.ioas_id)
        new_ioas = self.objects_by_id[new_paging.ioas_id].ioas  # type: ignore[attr-defined]
        mark = len(new_ioas.history)
        if move_regions:
            new_ioas.attach(regions_device(idev))
        try:
            check_driver_attach(idev, pasid, hwpt, self, what)
        except IommuError:
            if move_regions:
                new_ioas.detach(idev.device.name)
                del new_ioas.history[mark:]
            raise
        if move_regions and old_paging is not None:
            self.objects_by_id[old_paging.ioas_id].ioas.detach(idev.device.name)  # type: ignore[attr-defined]
        idev.attached[pasid] = hwpt.id
        if current is not None:
            self._drop_if_unused_auto(current)
        return hwpt.id

    def _auto(self, idev: DeviceObj, pasid: int, ioas_obj: IoasObj, current: int | None, what: str) -> int:
        """``iommufd_device_auto_get_domain``: reuse the first automatic HWPT of the IOAS that
        takes the device (EINVAL means incompatible: try the next), else allocate one."""
        for hwpt in self._of(HwptPaging):
            if not hwpt.auto_domain or hwpt.ioas_id != ioas_obj.id:
                continue
            try:
                return self._to_hwpt(idev, pasid, hwpt, current, what)
            except IommuError as e:
                if e.errno != "EINVAL":
                    raise
        if not what.startswith("replace") and current is not None:
            raise IommuError("EINVAL", f"{what}: the device is attached to HWPT {current}; use replace "
                             "(iommufd_hw_pagetable_attach)")
        flags = HwptFlag.PASID if pasid != NO_PASID else HwptFlag.NONE
        new = self._new_id()
        ioas = ioas_obj.ioas
        mark = len(ioas.history)
        # immediate attach: the device's reserved regions first, then the domain's aperture
        # (iommufd_hwpt_paging_alloc with immediate_attach).
        regions = pasid == NO_PASID
        old_paging = self._paging_of(self.objects_by_id[current]) if current is not None else None
        move = regions and (old_paging is None or old_paging.ioas_id != ioas_obj.id)
        if move:
            ioas.attach(regions_device(idev))
        try:
            hwpt = self._add_domain(new, ioas_obj, idev, flags, auto=True)
        except IommuError:
            if move:
                ioas.detach(idev.device.name)
                del ioas.history[mark:]
            raise
        self.objects_by_id[new] = hwpt
        if move and old_paging is not None:
            self.objects_by_id[old_paging.ioas_id].ioas.detach(idev.device.name)  # type: ignore[attr-defined]
        idev.attached[pasid] = new
        if current is not None:
            self._drop_if_unused_auto(current)
        return new

    def _drop_if_unused_auto(self, hwpt_id: int) -> None:
        """An automatic HWPT goes away with its last device (``iommufd_hw_pagetable_put``)."""
        hwpt = self.objects_by_id.get(hwpt_id)
        if isinstance(hwpt, HwptPaging) and hwpt.auto_domain and not users_of(self, hwpt_id):
            self._remove_domain(hwpt)
            del self.objects_by_id[hwpt_id]

    def detach(self, dev_id: int, *, pasid: int | None = None) -> None:
        """Detach a device or one PASID (``iommufd_device_detach``); nothing attached → nothing
        happens. The RID's reserved regions leave the IOAS; an automatic HWPT left without a
        device is destroyed."""
        dev_id, pasid = _obj_id(dev_id, "dev_id"), _pasid(pasid)
        idev = self.device_obj(dev_id, f"detach (dev_id={dev_id})", "iommufd_device_detach")
        hwpt_id = idev.attached.pop(pasid, None)
        if hwpt_id is None:
            return
        if pasid == NO_PASID:
            paging = self._paging_of(self.objects_by_id[hwpt_id])
            self.objects_by_id[paging.ioas_id].ioas.detach(idev.device.name)  # type: ignore[attr-defined]
        self._drop_if_unused_auto(hwpt_id)

    # -- destroy ---------------------------------------------------------------------------
    def destroy(self, obj_id: int) -> None:
        """IOMMU_DESTROY (``iommufd_destroy``): unknown id → ENOENT; a DEVICE → EBUSY (its VFIO
        driver holds it until ``unbind``); an object something else holds → EBUSY, naming the
        holders. Destroying a HWPT_PAGING removes its domain from the IOAS; a vDEVICE leaves its
        vIOMMU's table; an ACCESS leaves its IOAS."""
        obj_id = _obj_id(obj_id, "id")
        obj = self.objects_by_id.get(obj_id)
        if obj is None:
            raise IommuError("ENOENT", f"DESTROY: no object has id {obj_id} (iommufd_object_remove)")
        if isinstance(obj, DeviceObj):
            raise IommuError("EBUSY", f"DESTROY: DEVICE {obj_id} is held by its VFIO driver until it is unbound; "
                             "use unbind (iommufd_device_bind keeps a user reference)")
        holders = self.holders(obj_id)
        if holders:
            names = ", ".join(self.objects_by_id[h].label for h in holders)
            raise IommuError("EBUSY", f"DESTROY: {obj.label} is still held by {names}; destroy or detach those first "
                             "(iommufd_object_remove)")
        if isinstance(obj, HwptPaging):
            self._remove_domain(obj)
        elif isinstance(obj, VdeviceObj):
            self.objects_by_id[obj.viommu_id].vdevs.pop(obj.virt_id, None)  # type: ignore[attr-defined]
        elif isinstance(obj, AccessObj):
            self.objects_by_id[obj.ioas_id].ioas.remove_access(obj.access)  # type: ignore[attr-defined]
        elif isinstance(obj, IoasObj):
            obj.ioas._context = None
        del self.objects_by_id[obj_id]

    def unbind(self, dev_id: int) -> None:
        """Unbind a device (``iommufd_device_unbind``, when VFIO closes it): its PASIDs and RID are
        detached; since 6.17 its vDEVICE is destroyed with it (before, the vDEVICE held the device:
        EBUSY)."""
        dev_id = _obj_id(dev_id, "dev_id")
        idev = self.device_obj(dev_id, f"unbind (dev_id={dev_id})", "iommufd_device_unbind")
        vdevs = [o for o in self._of(VdeviceObj) if o.dev_id == dev_id]
        if vdevs and not self.kernel.has(6, 17):
            raise IommuError("EBUSY", f"unbind: vDEVICE {vdevs[0].id} still holds device {idev.device.name!r}; "
                             f"kernel {self.kernel.value} needs it destroyed first (iommufd_vdevice_alloc_ioctl)")
        for v in vdevs:
            self.destroy(v.id)
        for pasid in sorted(idev.attached, reverse=True):
            self.detach(dev_id, pasid=pasid)
        del self.objects_by_id[dev_id]

    # -- presentation ----------------------------------------------------------------------
    def to_dataframe(self):
        """The object table: id, type, label, the ids each holds, and a detail column."""
        import pandas as pd

        rows = self.objects()
        return pd.DataFrame({
            "id": [r.id for r in rows],
            "type": [r.type.value for r in rows],
            "label": [r.label for r in rows],
            "holds": [", ".join(map(str, r.refs)) for r in rows],
            "detail": [r.detail for r in rows],
        })

    def _summary(self) -> str:
        counts: dict[str, int] = {}
        for o in self.objects_by_id.values():
            counts[o.type.value] = counts.get(o.type.value, 0) + 1
        parts = ", ".join(f"{n} {t}" for t, n in counts.items()) or "empty"
        return f"IommufdContext(kernel {self.kernel.value}: {parts})"

    def __repr__(self) -> str:
        lines = [self._summary()]
        for r in self.objects():
            lines.append(f"  {r.id:>3} {r.type.value:<11} {r.label}: {r.detail}" + (f"  [holds {', '.join(map(str, r.refs))}]" if r.refs else ""))
        for a in self.attachments():
            lines.append(f"  device {a.dev_id} pasid {a.pasid} -> HWPT {a.hwpt_id}")
        return "\n".join(lines)


def _private_context(ioas: IOAS) -> IommufdContext:
    ctx = IommufdContext(kernel=ioas.kernel)
    ctx.adopt(ioas)
    return ctx


set_private_context_factory(_private_context)
