"""``python -m iommu_lab`` is the ``iommu-lab`` command."""

from .cli import main

raise SystemExit(main())
