"""``python -m iommu_lab`` is the ``iommu-lab`` command."""

from iommu_lab.cli import main

raise SystemExit(main())
