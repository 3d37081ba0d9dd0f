"""The iommufd uAPI's objects: the I/O address space (IOAS) with its areas, allocator and
reserved/allowed trees, in-kernel accesses, and VFIO type1 compatibility as a rule book.
"""

from iommu_lab.iommufd.area import Area, Prot
from iommu_lab.iommufd.ioas import IOAS, Access, Capabilities, IoasInfo, Lookup, Reservation
from iommu_lab.iommufd.type1 import Semantics

__all__ = ["IOAS", "Access", "Area", "Capabilities", "IoasInfo", "Lookup", "Prot", "Reservation", "Semantics"]
