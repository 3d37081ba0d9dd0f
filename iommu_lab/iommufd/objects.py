"""The vocabulary of iommufd's object table: object types, HWPT_ALLOC flags and data types,
vIOMMU types, the kernel version a model follows, and the per-object records.

Mirrors include/uapi/linux/iommufd.h (``enum iommufd_hwpt_alloc_flags``,
``enum iommu_hwpt_data_type``, ``enum iommu_viommu_type``) and
drivers/iommu/iommufd/iommufd_private.h (``enum iommufd_object_type``, ``struct
iommufd_hwpt_paging`` with ``auto_domain``/``nest_parent``, ``struct iommufd_hwpt_nested`` with
``parent``/``viommu``, ``struct iommufd_viommu`` with its ``vdevs`` xarray). The records are the
model's objects; what a user reads back are the frozen :class:`ObjectInfo` rows.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any, Callable

from iommu_lab.core import display
from iommu_lab.core.enums import member_of
from iommu_lab.core.words import plural

__all__ = [
    "ObjType",
    "HwptFlag",
    "HwptData",
    "ViommuType",
    "Kernel",
    "ObjectInfo",
    "Attachment",
    "Obj",
    "IoasObj",
    "DeviceObj",
    "HwptPaging",
    "HwptNested",
    "ViommuObj",
    "VdeviceObj",
    "AccessObj",
    "FaultObj",
    "NO_PASID",
    "set_private_context_factory",
    "private_context_factory",
]

#: ``IOMMU_NO_PASID``: the RID (requests without a PASID) is PASID 0 in the kernel's tables.
NO_PASID = 0


def by_name(cls: Any, name: str, what: str) -> Any:
    """The member of an int enum called ``name`` (the uAPI's spelling without its prefix)."""
    try:
        return cls[name.strip()]
    except KeyError:
        allowed = ", ".join(m.name for m in cls if m.name != "NONE" or what != "HWPT_ALLOC flag")
        raise ValueError(f"unknown {what} {name!r}; allowed: {allowed}") from None


def by_value(cls: Any, value: Any, what: str) -> Any:
    """The member of an int enum with uAPI number ``value``."""
    if isinstance(value, cls):
        return value
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{what} must be a name or a number, got {type(value).__name__} {value!r}")
    try:
        return cls(value)
    except ValueError:
        allowed = ", ".join(f"{m.name}={int(m)}" for m in cls)
        raise ValueError(f"unknown {what} {value}; allowed: {allowed}") from None


def uapi_member(cls: Any, value: Any, prefix: str, what: str) -> Any:
    """A uAPI enum member from its number, its member, or its name with or without the uAPI
    prefix (``"VTD_S1"``, ``"iommu-hwpt-data-vtd-s1"``, ``1``)."""
    if isinstance(value, str):
        return by_name(cls, value.upper().replace("-", "_").removeprefix(prefix), what)
    return by_value(cls, value, what)


class ObjType(enum.Enum):
    """``enum iommufd_object_type``: what an id in one ``/dev/iommu`` names."""

    IOAS = "IOAS"
    DEVICE = "DEVICE"
    HWPT_PAGING = "HWPT_PAGING"
    HWPT_NESTED = "HWPT_NESTED"
    VIOMMU = "VIOMMU"
    VDEVICE = "VDEVICE"
    ACCESS = "ACCESS"
    FAULT = "FAULT"


class HwptFlag(enum.IntFlag):
    """``enum iommufd_hwpt_alloc_flags``: the ``flags`` of IOMMU_HWPT_ALLOC."""

    NONE = 0
    NEST_PARENT = 1 << 0
    DIRTY_TRACKING = 1 << 1
    FAULT_ID_VALID = 1 << 2
    PASID = 1 << 3

    @classmethod
    def parse(cls, value: Any) -> "HwptFlag":
        """Flags from a ``HwptFlag``, an int of uAPI bits, a name or ``"A|B"`` text; unknown
        bits are kept (IOMMU_HWPT_ALLOC refuses them itself, with EOPNOTSUPP)."""
        if isinstance(value, HwptFlag):
            return value
        if isinstance(value, bool):
            raise TypeError(f"flags must be HwptFlag, an int or names such as 'NEST_PARENT|DIRTY_TRACKING', got {value!r}")
        if isinstance(value, int):
            if not 0 <= value <= 0xFFFF_FFFF:
                raise ValueError(f"flags {value:#x} do not fit the __u32 flags of IOMMU_HWPT_ALLOC")
            return cls(value)  # IntFlag keeps unknown bits: HWPT_ALLOC refuses them itself
        if isinstance(value, str):
            out = cls.NONE
            for part in (p.strip() for p in value.replace(",", "|").split("|")):
                if part:
                    out |= by_name(cls, part.upper().removeprefix("IOMMU_HWPT_ALLOC_").removeprefix("IOMMU_HWPT_"),
                                   "HWPT_ALLOC flag")
            return out
        if isinstance(value, (list, tuple, set, frozenset)):
            out = cls.NONE
            for part in value:
                out |= cls.parse(part)
            return out
        raise TypeError(f"flags must be HwptFlag, an int or names such as 'NEST_PARENT|DIRTY_TRACKING', got {value!r}")

    @property
    def text(self) -> str:
        names = [m.name for m in HwptFlag if m.value and int(self) & m.value]
        extra = int(self) & ~0xF
        if extra:
            names.append(f"{extra:#x}")
        return "|".join(names) or "0"


class HwptData(enum.IntEnum):
    """``enum iommu_hwpt_data_type``: the driver data a nested HWPT is made from."""

    NONE = 0
    VTD_S1 = 1
    ARM_SMMUV3 = 2
    AMD_GUEST = 3

    @classmethod
    def parse(cls, value: Any) -> "HwptData":
        return uapi_member(cls, value, "IOMMU_HWPT_DATA_", "hwpt data type")


class ViommuType(enum.IntEnum):
    """``enum iommu_viommu_type``."""

    DEFAULT = 0
    ARM_SMMUV3 = 1
    TEGRA241_CMDQV = 2
    AMD = 3

    @classmethod
    def parse(cls, value: Any) -> "ViommuType":
        return uapi_member(cls, value, "IOMMU_VIOMMU_TYPE_", "vIOMMU type")


class Kernel(enum.Enum):
    """Which kernel's iommufd a model answers as: the newest mainline by default, or a long-term
    release users still run. Each rule that changed names the release it arrived in.

    ``"6.6"``: IOMMU_HWPT_ALLOC without flags (NEST_PARENT and DIRTY_TRACKING arrived in 6.7),
    no vIOMMU, no fault queue; IOMMU_IOAS_MAP checks the length before the ``user_va + length``
    wrap. ``"6.12"``: flags NEST_PARENT, DIRTY_TRACKING and FAULT_ID_VALID (6.11), no vIOMMU
    (6.13), no PASID flag (6.15), the same map order. ``"mainline"``: everything, the wrap checked
    first (``iopt_alloc_user_pages``, 6.13, with IOMMU_IOAS_MAP_FILE).
    """

    V6_6 = "6.6"
    V6_12 = "6.12"
    MAINLINE = "mainline"

    @classmethod
    def parse(cls, value: Any) -> "Kernel":
        if isinstance(value, float):
            value = f"{value:.2f}".rstrip("0")
        return member_of(cls, value, "kernel", non_text=TypeError)

    @property
    def release(self) -> tuple[int, int]:
        """The release as ``(major, minor)``; mainline is taken as newer than any number."""
        return {"6.6": (6, 6), "6.12": (6, 12)}.get(self.value, (99, 0))

    def has(self, major: int, minor: int) -> bool:
        """Whether something that arrived in ``major.minor`` is in this kernel."""
        return self.release >= (major, minor)


@dataclass(frozen=True)
class Attachment:
    """One attach edge: a device (at a PASID, 0 for the RID) translated by a HWPT."""

    dev_id: int
    pasid: int
    hwpt_id: int


@dataclass(frozen=True)
class ObjectInfo:
    """One row of the object table as ``objects()`` reports it.

    ``refs`` are the ids this object holds a reference on (it keeps them alive: destroying one
    of them answers EBUSY while this object exists); ``detail`` a short text.
    """

    id: int
    type: ObjType
    label: str
    refs: tuple[int, ...]
    detail: str

    _repr_html_ = display.html
    plot = display.plot


class Obj:
    """An entry of the object table (``struct iommufd_object``): an id and a type."""

    type: ObjType

    def __init__(self, id: int) -> None:
        self.id = id

    @property
    def refs(self) -> tuple[int, ...]:
        """Ids this object keeps alive (its ``refcount_inc`` on other objects)."""
        return ()

    @property
    def label(self) -> str:
        return f"{self.type.value} {self.id}"

    @property
    def detail(self) -> str:
        return ""

    def info(self) -> ObjectInfo:
        return ObjectInfo(self.id, self.type, self.label, self.refs, self.detail)


class IoasObj(Obj):
    """An IOAS in the table; ``ioas`` is the :class:`~iommu_lab.iommufd.ioas.IOAS` model."""

    type = ObjType.IOAS

    def __init__(self, id: int, ioas: Any) -> None:
        super().__init__(id)
        self.ioas = ioas

    @property
    def detail(self) -> str:
        n = len(self.ioas.areas)
        return f"{plural(n, 'area')}, alignment {self.ioas.iova_alignment:#x}"


class DeviceObj(Obj):
    """A bound device (``iommufd_device_bind``): a ``Device`` behind one platform's IOMMU."""

    type = ObjType.DEVICE

    def __init__(self, id: int, device: Any, platform: Any, driver: Any) -> None:
        super().__init__(id)
        self.device = device
        self.platform = platform
        self.driver = driver
        #: PASID -> hwpt id (``igroup->pasid_attach``); 0 is the RID.
        self.attached: dict[int, int] = {}

    @property
    def label(self) -> str:
        return f"DEVICE {self.id} {self.device.name}"

    @property
    def detail(self) -> str:
        where = self.platform.name if self.platform is not None else "no platform"
        return f"{where}; " + (", ".join(f"pasid {p} -> hwpt {h}" for p, h in sorted(self.attached.items())) or "detached")

    @property
    def max_pasids(self) -> int:
        """``dev->iommu->max_pasids``: 2^pasid_bits, 0 when the IOMMU has no PASID support."""
        bits = getattr(self.platform, "pasid_bits", 0) or 0
        return 1 << bits if bits else 0


class HwptPaging(Obj):
    """``struct iommufd_hwpt_paging``: an I/O page table filled from one IOAS."""

    type = ObjType.HWPT_PAGING

    def __init__(self, id: int, ioas_id: int, flags: HwptFlag, *, auto: bool, driver: Any, fault_id: int | None,
                 pseudo: str, iommu: str, platform: Any = None) -> None:
        super().__init__(id)
        #: The physical IOMMU instance the domain was made for (``domain->owner`` and its device).
        self.iommu = iommu
        self.platform = platform
        self.ioas_id = ioas_id
        self.flags = flags
        self.auto_domain = auto
        self.driver = driver
        self.fault_id = fault_id
        #: The name the domain's aperture reservations are owned by in the IOAS.
        self.pseudo = pseudo
        #: The domain's dirty tracking (a ``pagetable.dirty.DirtyTracker`` over its table) when
        #: allocated with DIRTY_TRACKING and the IOAS keeps page tables; None otherwise.
        self.tracker: Any = None

    @property
    def dirty_enabled(self) -> bool:
        """Whether IOMMU_HWPT_SET_DIRTY_TRACKING has switched hardware updates on."""
        return bool(self.tracker is not None and self.tracker.enabled)

    @property
    def nest_parent(self) -> bool:
        return bool(self.flags & HwptFlag.NEST_PARENT)

    @property
    def pasid_compat(self) -> bool:
        return bool(self.flags & HwptFlag.PASID)

    @property
    def refs(self) -> tuple[int, ...]:
        return (self.ioas_id,) + ((self.fault_id,) if self.fault_id is not None else ())

    @property
    def detail(self) -> str:
        dirty = ("; dirty tracking " + ("on" if self.dirty_enabled else "off")) if self.flags & HwptFlag.DIRTY_TRACKING else ""
        return ("auto " if self.auto_domain else "") + f"flags {self.flags.text}; {self.driver.name}" + dirty


class HwptNested(Obj):
    """``struct iommufd_hwpt_nested``: a user-owned stage 1 over a nest parent, made on the
    parent itself (``viommu_id`` None) or through a vIOMMU."""

    type = ObjType.HWPT_NESTED

    def __init__(self, id: int, parent_id: int, viommu_id: int | None, data: HwptData, flags: HwptFlag,
                 driver: Any, fault_id: int | None) -> None:
        super().__init__(id)
        self.parent_id = parent_id
        self.viommu_id = viommu_id
        self.data = data
        self.flags = flags
        self.driver = driver
        self.fault_id = fault_id

    @property
    def pasid_compat(self) -> bool:
        return bool(self.flags & HwptFlag.PASID)

    @property
    def refs(self) -> tuple[int, ...]:
        held = self.viommu_id if self.viommu_id is not None else self.parent_id
        return (held,) + ((self.fault_id,) if self.fault_id is not None else ())

    @property
    def detail(self) -> str:
        via = f"vIOMMU {self.viommu_id}" if self.viommu_id is not None else f"parent {self.parent_id}"
        return f"{self.data.name} via {via}"


class ViommuObj(Obj):
    """``struct iommufd_viommu``: a slice of one physical IOMMU holding a nest parent, with its
    virtual-id -> device table (``viommu->vdevs``)."""

    type = ObjType.VIOMMU

    def __init__(self, id: int, vtype: ViommuType, hwpt_id: int, iommu: str, driver: Any) -> None:
        super().__init__(id)
        self.vtype = vtype
        self.hwpt_id = hwpt_id
        self.iommu = iommu
        self.driver = driver
        #: virt_id -> vdevice id.
        self.vdevs: dict[int, int] = {}

    @property
    def refs(self) -> tuple[int, ...]:
        return (self.hwpt_id,)

    @property
    def detail(self) -> str:
        return f"{self.vtype.name} on {self.iommu}; {plural(len(self.vdevs), 'vDEVICE')}"


class VdeviceObj(Obj):
    """``struct iommufd_vdevice``: one device's virtual id (vSID, vDeviceID, vRID) in a vIOMMU."""

    type = ObjType.VDEVICE

    def __init__(self, id: int, viommu_id: int, dev_id: int, virt_id: int) -> None:
        super().__init__(id)
        self.viommu_id = viommu_id
        self.dev_id = dev_id
        self.virt_id = virt_id

    @property
    def refs(self) -> tuple[int, ...]:
        return (self.viommu_id, self.dev_id)

    @property
    def detail(self) -> str:
        return f"virt_id {self.virt_id:#x} -> device {self.dev_id}"


class AccessObj(Obj):
    """``struct iommufd_access``: an in-kernel user (mdev, a HW queue) of one IOAS."""

    type = ObjType.ACCESS

    def __init__(self, id: int, ioas_id: int, access: Any) -> None:
        super().__init__(id)
        self.ioas_id = ioas_id
        self.access = access

    @property
    def refs(self) -> tuple[int, ...]:
        return (self.ioas_id,)


class FaultObj(Obj):
    """``struct iommufd_fault``: the queue IOMMU_FAULT_QUEUE_ALLOC makes for page requests."""

    type = ObjType.FAULT


_FACTORY: list[Callable[[Any], Any]] = []


def set_private_context_factory(factory: Callable[[Any], Any]) -> None:
    """Install how an IOAS made alone gets its private context (``context.py`` does this at
    import, so the IOAS module need not import the context that holds IOASes)."""
    _FACTORY[:] = [factory]


def private_context_factory() -> Callable[[Any], Any] | None:
    return _FACTORY[0] if _FACTORY else None
