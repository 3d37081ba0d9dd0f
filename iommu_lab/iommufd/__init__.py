"""The iommufd uAPI's objects: the I/O address space (IOAS) with its areas, allocator and
reserved/allowed trees, in-kernel accesses, and VFIO type1 compatibility as a rule book.

Modules, lowest first (each imports only those before it): ``pages`` (``struct iopt_pages``),
``area`` (``struct iopt_area`` / ``iopt_reserved`` and their index), ``domains`` (attached devices
and their page tables), ``access`` (in-kernel accesses), ``history`` (the operation journal),
``io_pagetable`` (``struct io_pagetable`` and the ``iopt_*`` core), ``type1`` (VFIO's rules),
``info`` (GET_INFO and lookup answers), ``ioas`` (the IOAS object and its ioctls), then the
object graph of one ``/dev/iommu``: ``objects`` (object types, HWPT_ALLOC flags, records),
``drivers`` (what each IOMMU driver's ops accept), ``hwpt`` (IOMMU_HWPT_ALLOC), ``viommu``
(vIOMMU and vDEVICE), ``device_obj`` (attach, replace, detach), ``dirty`` (SET_DIRTY_TRACKING,
GET_DIRTY_BITMAP and DMA writes), ``hw_info`` (IOMMU_GET_HW_INFO), ``context`` (the table).
"""

from iommu_lab.iommufd.access import Access
from iommu_lab.iommufd.area import Area, Prot, Reservation
from iommu_lab.iommufd.context import IommufdContext
from iommu_lab.iommufd.info import Capabilities, IoasInfo, Lookup
from iommu_lab.iommufd.ioas import IOAS
from iommu_lab.iommufd.objects import HwptData, HwptFlag, Kernel, ObjectInfo, ObjType, ViommuType
from iommu_lab.iommufd.type1 import Semantics

__all__ = ["IOAS", "Access", "Area", "Capabilities", "IoasInfo", "Lookup", "Prot", "Reservation", "Semantics",
           "IommufdContext", "ObjectInfo", "HwptFlag", "HwptData", "ViommuType", "Kernel", "ObjType"]
