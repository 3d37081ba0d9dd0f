"""Importers of real kernel artefacts (sysfs, debugfs), each a small table-driven parser.

Errors are ``ParseError`` (a ``ValueError``) naming the file, the line and the expected form.
"""

from iommu_lab.io.debugfs import (
    ContextRow,
    DomainDump,
    DomainDumps,
    detect_debugfs,
    format_domain_translation,
    parse_dmar_translation,
    parse_domain_translation,
    read_dmar_translation,
    read_domain_translation,
)
from iommu_lab.io.parse import ParseError
from iommu_lab.io.sysfs import (
    IommuGroup,
    merge_regions,
    parse_reserved_regions,
    read_host,
    read_iommu_groups,
    read_reserved_regions,
)

__all__ = [
    "ParseError",
    "IommuGroup",
    "merge_regions",
    "parse_reserved_regions",
    "read_reserved_regions",
    "read_iommu_groups",
    "read_host",
    "DomainDump",
    "DomainDumps",
    "ContextRow",
    "parse_domain_translation",
    "read_domain_translation",
    "parse_dmar_translation",
    "read_dmar_translation",
    "format_domain_translation",
    "detect_debugfs",
]
