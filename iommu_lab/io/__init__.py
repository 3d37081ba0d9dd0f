"""Importers of real kernel artefacts (sysfs, debugfs), each a small table-driven parser.

Errors are ``ParseError`` (a ``ValueError``) naming the file, the line and the expected form.
"""

from .parse import ParseError
from .sysfs import IommuGroup, merge_regions, parse_reserved_regions, read_host, read_iommu_groups, read_reserved_regions

__all__ = [
    "ParseError",
    "IommuGroup",
    "merge_regions",
    "parse_reserved_regions",
    "read_reserved_regions",
    "read_iommu_groups",
    "read_host",
]
