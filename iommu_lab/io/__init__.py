"""Importers of real kernel artefacts (sysfs, debugfs of every era, dmesg fault lines), each a
small table-driven parser, and one detector that names the kind of any file it is given.

Errors are ``ParseError`` (a ``ValueError``) naming the file, the line and the expected form.
"""

from iommu_lab.io.amd import DteRow, RegisterRead, parse_devtbl, parse_register_reads
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
from iommu_lab.io.detect import Imported, Kind, NotReadYet, detect, read
from iommu_lab.io.dmesg import FaultLog, FaultRecord, parse_dmesg, read_dmesg
from iommu_lab.io.faultwalk import FaultExplanation, explain
from iommu_lab.io.groups import parse_group_listing, read_group_listing
from iommu_lab.io.parse import ParseError
from iommu_lab.io.regset import RegsetUnit, parse_iommu_regset, read_iommu_regset
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
    "parse_group_listing",
    "read_group_listing",
    "DomainDump",
    "DomainDumps",
    "ContextRow",
    "parse_domain_translation",
    "read_domain_translation",
    "parse_dmar_translation",
    "read_dmar_translation",
    "format_domain_translation",
    "detect_debugfs",
    "RegsetUnit",
    "parse_iommu_regset",
    "read_iommu_regset",
    "DteRow",
    "RegisterRead",
    "parse_devtbl",
    "parse_register_reads",
    "FaultRecord",
    "FaultLog",
    "parse_dmesg",
    "read_dmesg",
    "FaultExplanation",
    "explain",
    "Kind",
    "NotReadYet",
    "Imported",
    "detect",
    "read",
]
