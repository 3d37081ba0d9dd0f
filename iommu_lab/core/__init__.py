"""The lowest layer: what every other layer speaks.

64-bit ranges (``IovaRange``, ``RangeSet``), size parsing and formatting, ``IommuError`` with
the kernel's errno, the bit-field library, enum parsing, DataFrame helpers, and ``display``:
the only way a model reaches a view. Nothing here imports any other layer.
"""

from iommu_lab.core.errors import IommuError, UnsupportedError
from iommu_lab.core.ranges import (
                                   U64_MAX,
                                   EiB,
                                   GiB,
                                   IovaRange,
                                   KiB,
                                   MiB,
                                   PiB,
                                   RangeSet,
                                   TiB,
                                   fmt_addr,
                                   fmt_size,
                                   parse_address,
                                   parse_size,
                                   parse_u64,
)

__all__ = ["EiB", "GiB", "IommuError", "IovaRange", "KiB", "MiB", "PiB", "RangeSet", "TiB", "U64_MAX",
           "UnsupportedError", "fmt_addr", "fmt_size", "parse_address", "parse_size",
           "parse_u64"]
