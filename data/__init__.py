# Makes data/ installable as the package ``iommu_lab._data`` (see pyproject.toml), so that
# installed copies of iommu_lab find the same platform and fixture files as a checkout.
