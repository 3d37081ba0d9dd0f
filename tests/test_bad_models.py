"""Bad input to the page-table, format, platform, nesting and PASID models: our errors, nothing changed."""

from badinput import Bad, parametrize

from iommu_lab.core.errors import IommuError, UnsupportedError
from iommu_lab.hardware import formats
from iommu_lab.hardware.platform import load_platform, platforms
from iommu_lab.nesting.nested import Nested
from iommu_lab.nesting.pasid import AmdGcr3Table, SmmuCdTable, VtdPasidTable
from iommu_lab.nesting.shadow import ShadowNesting
from iommu_lab.pagetable.memory import PhysicalMemory
from iommu_lab.pagetable.table import PageTable, pgsize_split

MiB = 1 << 20

PT = PageTable("vtd-ss-4level")
PT.map(0x20_0000, 0x20_0000, 2 * MiB)
ARM = PageTable("arm-lpae-s1-4k-48bit")
ARM.map(0x1000, 0x1000, 0x1000)
TCE = PageTable("power-tce-4k")
MEM = PhysicalMemory()
GCR3 = AmdGcr3Table(MEM, 16)
PAIRS = {p: Nested.for_platform(p, guest_ram=4 * MiB, backing="lazy")
         for p in ("intel-vtd-48", "arm-smmuv3-48", "amd-v1")}
PAIRS["intel-vtd-48"].bind_pasid(1)
SHADOW = ShadowNesting.build("x86-64-4level", "vtd-ss-4level", guest_ram=4 * MiB)
SHADOW.guest_map(0x4000_0000, 0x10_0000, 0x1000)
VIRTIO = ShadowNesting.build(None, "vtd-ss-4level", guest_ram=4 * MiB)
VIRTIO.guest_map(0x4000_0000, 0x10_0000, 0x1000)
VTD_MEM = PhysicalMemory()
PSERIES = platforms.get("power9-pseries")


def _pseries_with(old, new):
    return _bad_toml(PSERIES.source.read_text().replace(old, new))


def table_state(pt):
    return lambda: (pt.memory.snapshot(), sorted(pt.memory.allocations()), pt.root, pt.fmt.name)


def pair_state(n):
    return lambda: (n.host_memory.snapshot(), sorted(n.host_memory.allocations()),
                    sorted(n.guest_memory.allocations()), id(n.pasid_table), dict(n._pasid_roots))


def shadow_state(s):
    return lambda: (repr(s.costs), s.memory.snapshot(), s.stage2.memory.snapshot())


def mem_state(m):
    return lambda: (m.snapshot(), sorted(m.allocations()))


def _bad_toml(tmp_text):
    import pathlib
    import tempfile

    d = pathlib.Path(tempfile.mkdtemp())
    p = d / "x.toml"
    p.write_text(tmp_text)
    return p


CASES = [
    # -- page-table map/unmap ----------------------------------------------------------------
    Bad("models-pt-map-overlap", "api", "changed", lambda: PT.map(0x20_0000, 0x80_0000, 0x1000),
        IommuError, "EADDRINUSE", ["overlaps", "__map_range"], table_state(PT)),
    Bad("models-pt-map-overlap-arm", "api", "changed", lambda: ARM.map(0x1000, 0x9000, 0x1000),
        IommuError, "EEXIST", ["overlaps", "io-pgtable-arm"], table_state(ARM)),
    Bad("models-pt-map-unaligned", "api", "silent", lambda: PT.map(0x1001, 0x1000, 0x1000),
        IommuError, "EINVAL", ["aligned"], table_state(PT)),
    Bad("models-pt-map-zero", "api", "silent", lambda: PT.map(0x1000, 0x1000, 0),
        IommuError, "EINVAL", ["positive"], table_state(PT)),
    Bad("models-pt-map-negative", "api", "silent", lambda: PT.map(-0x1000, 0x1000, 0x1000),
        IommuError, "EINVAL", ["iova"], table_state(PT)),
    Bad("models-pt-map-wraps", "api", "changed", lambda: PT.map((1 << 64) - 0x1000, 0, 0x2000),
        IommuError, "EOVERFLOW", ["2^64"], table_state(PT)),
    Bad("models-pt-map-beyond-aperture", "api", "changed", lambda: PT.map(1 << 48, 0x1000, 0x1000),
        IommuError, "EINVAL", ["input range"], table_state(PT)),
    Bad("models-pt-map-no-rw", "api", "silent", lambda: PT.map(0x1000, 0x1000, 0x1000, prot=""),
        IommuError, "EINVAL", ["neither read nor write"], table_state(PT)),
    Bad("models-pt-map-bad-prot", "api", "leak", lambda: PT.map(0x1000, 0x1000, 0x1000, prot="q"),
        ValueError, None, ["unknown letter"], table_state(PT)),
    Bad("models-pt-map-float", "api", "silent", lambda: PT.map(0x1000, 0x1000, 4096.0),
        TypeError, None, ["size"], table_state(PT)),
    Bad("models-pt-map-bool", "api", "silent", lambda: PT.map(0x1000, 0x1000, True),
        TypeError, None, ["size"], table_state(PT)),
    Bad("models-pt-map-pa-beyond-oas", "api", "changed", lambda: PT.map(0x1000, 1 << 52, 0x1000),
        IommuError, "EINVAL", ["output"], table_state(PT)),
    Bad("models-pt-map-huge-noncanonical", "api", "changed",
        lambda: PageTable("x86-64-4level").map(1 << 47, 0x1000, 0x1000), IommuError, "EINVAL", ["canonical"]),
    Bad("models-pt-unmap-unaligned", "api", "changed", lambda: PT.unmap(0x20_0800, 0x1000),
        IommuError, "EINVAL", ["aligned"], table_state(PT)),
    Bad("models-pt-unmap-zero", "api", "silent", lambda: PT.unmap(0x20_0000, 0),
        IommuError, "EINVAL", ["positive"], table_state(PT)),
    Bad("models-pt-unmap-wraps", "api", "changed", lambda: PT.unmap((1 << 64) - 0x1000, 0x2000),
        IommuError, "EOVERFLOW", ["2^64"], table_state(PT)),
    Bad("models-pt-tce-overlap", "api", "changed",
        lambda: (TCE.map(0x1000, 0x1000, 0x1000), TCE.map(0x1000, 0x2000, 0x1000)),
        IommuError, "EBUSY", ["overlaps"]),
    Bad("models-pt-populate-bad-size", "api", "silent", lambda: PT.populate(0, 0, 0x3000, 0x3000),
        IommuError, "EINVAL", ["leaf size"], table_state(PT)),
    Bad("models-pt-bad-bitmap", "api", "silent", lambda: PageTable("vtd-ss-4level", pgsize_bitmap=0x2000),
        ValueError, None, ["pgsize_bitmap"]),
    Bad("models-pgsize-split-terabyte", "api", "memory", lambda: len(pgsize_split(0x1000, 0, 0, 1 << 40)),
        None, check=lambda n: n == 1 << 28, isolate=True, mem_mb=600),
    Bad("models-pgsize-split-no-size", "api", "leak", lambda: pgsize_split(0x200000, 0x1000, 0, 0x1000),
        IommuError, "EINVAL", ["no page size"]),
    # -- formats -----------------------------------------------------------------------------
    Bad("models-format-unknown", "api", "leak", lambda: formats.get("vtd-ss-9level"),
        IommuError, "EINVAL", ["unknown page-table format"]),
    Bad("models-format-not-str", "api", "leak", lambda: formats.get(5), TypeError, None, ["string"]),
    Bad("models-format-arm-bad-ias", "api", "leak", lambda: formats.get("arm-lpae-s1-4k-99bit"),
        IommuError, "EINVAL", ["99"]),
    Bad("models-format-vtd-levels", "api", "silent", lambda: formats.vtd_ss(6), ValueError, None, ["3, 4 or 5"]),
    Bad("models-format-amd-mode", "api", "silent", lambda: formats.amd_v1(7), ValueError, None, ["1..6"]),
    Bad("models-format-tce-shift", "api", "silent", lambda: formats.power_tce(13), ValueError, None, ["page shift"]),
    Bad("models-format-no-leaf-size", "api", "leak", lambda: formats.get("vtd-ss-4level").encode_leaf(0, 0x3000),
        ValueError, None, ["leaf"]),
    # -- PASID structures ----------------------------------------------------------------------
    Bad("models-gcr3-cr3-unaligned", "api", "changed", lambda: GCR3.set_gcr3(0x300, 0x1234),
        IommuError, "EINVAL", ["4 KiB-aligned", "update_gcr3"], mem_state(MEM)),
    Bad("models-gcr3-cr3-too-wide", "api", "changed", lambda: GCR3.set_gcr3(0x301, 1 << 52),
        IommuError, "EINVAL", ["below 2^52"], mem_state(MEM)),
    Bad("models-gcr3-pasid-range", "api", "changed", lambda: GCR3.set_gcr3(1 << 16, 0x1000),
        IommuError, "EINVAL", ["16-bit"], mem_state(MEM)),
    Bad("models-gcr3-width", "api", "silent", lambda: AmdGcr3Table(PhysicalMemory(), 21),
        IommuError, "EINVAL", ["0..20", "get_gcr3_levels"]),
    Bad("models-gcr3-glx0-accepted", "api", "refused", lambda: AmdGcr3Table(PhysicalMemory(), 0).glx,
        None, check=lambda g: g == 0),
    Bad("models-vtd-pasid-width", "api", "silent", lambda: VtdPasidTable(PhysicalMemory(), 21),
        IommuError, "EINVAL", ["MAX_NR_PASID_BITS"]),
    Bad("models-vtd-devfn", "api", "changed", lambda: VtdPasidTable(VTD_MEM, devfn=0x100),
        IommuError, "EINVAL", ["devfn", "8-bit"], mem_state(VTD_MEM)),
    Bad("models-vtd-bus", "api", "changed", lambda: VtdPasidTable(VTD_MEM, bus=-1),
        IommuError, "EINVAL", ["PCI bus"], mem_state(VTD_MEM)),
    Bad("models-vtd-devfn-type", "api", "changed", lambda: VtdPasidTable(VTD_MEM, devfn="3"),
        TypeError, None, ["devfn", "int"], mem_state(VTD_MEM)),
    Bad("models-smmu-cdmax", "api", "silent", lambda: SmmuCdTable(PhysicalMemory(), 21),
        IommuError, "EINVAL", ["S1CDMax"]),
    Bad("models-smmu-guest-linear-accepted", "api", "refused",
        lambda: SmmuCdTable(PhysicalMemory(), 12, two_level=False).two_level, None, check=lambda t: t is False),
    # -- nesting: PASID binding --------------------------------------------------------------
    Bad("models-bind-vtd-pasid-table", "api", "silent",
        lambda: PAIRS["intel-vtd-48"].bind_pasid(7, binding="pasid-table"), UnsupportedError, "EOPNOTSUPP",
        ["never walks a guest-owned PASID table"], pair_state(PAIRS["intel-vtd-48"])),
    Bad("models-bind-vtd-bad-pasid", "api", "changed", lambda: PAIRS["intel-vtd-48"].bind_pasid(1 << 20),
        IommuError, "EINVAL", ["20-bit"], pair_state(PAIRS["intel-vtd-48"])),
    Bad("models-bind-smmu-bad-pasid", "api", "changed", lambda: PAIRS["arm-smmuv3-48"].bind_pasid(1 << 25),
        IommuError, "EINVAL", ["SSID"], pair_state(PAIRS["arm-smmuv3-48"])),
    Bad("models-bind-amd-bad-pasid", "api", "changed", lambda: PAIRS["amd-v1"].bind_pasid(1 << 16),
        IommuError, "EINVAL", ["16-bit"], pair_state(PAIRS["amd-v1"])),
    Bad("models-bind-negative-pasid", "api", "changed", lambda: PAIRS["amd-v1"].bind_pasid(-1),
        IommuError, "EINVAL", ["PASID"], pair_state(PAIRS["amd-v1"])),
    Bad("models-bind-float-pasid", "api", "silent", lambda: PAIRS["arm-smmuv3-48"].bind_pasid(1.0),
        TypeError, None, ["int"], pair_state(PAIRS["arm-smmuv3-48"])),
    Bad("models-bind-bad-width", "api", "silent", lambda: PAIRS["amd-v1"].bind_pasid(1, pasid_bits=30),
        IommuError, "EINVAL", ["0..20"], pair_state(PAIRS["amd-v1"])),
    Bad("models-bind-bad-binding", "api", "leak", lambda: PAIRS["arm-smmuv3-48"].bind_pasid(1, binding="x"),
        ValueError, None, ["x"], pair_state(PAIRS["arm-smmuv3-48"])),
    Bad("models-nested-power", "api", "message", lambda: Nested.for_platform("power9-pseries"),
        UnsupportedError, "EOPNOTSUPP", ["no nesting"]),
    Bad("models-nested-riscv-hint", "api", "message", lambda: Nested.for_platform("riscv-sv48"),
        UnsupportedError, "EOPNOTSUPP", ["G-stage", "riscv/iommu.c"]),
    # -- per-window page sizes -------------------------------------------------------------------
    Bad("models-window-between", "api", "silent", lambda: PSERIES.window_page_size(1 << 40),
        IommuError, "EINVAL", ["no window", "0x3fff_ffff"]),
    Bad("models-window-negative", "api", "silent", lambda: PSERIES.window_of(-1),
        ValueError, None, ["iova", "64-bit"]),
    Bad("models-window-format-size", "api", "silent", lambda: PSERIES.window_format(0, page_size=2 * MiB),
        IommuError, "EINVAL", ["page sizes", "64 KiB"]),
    Bad("models-window-format-type", "api", "silent", lambda: PSERIES.window_format(0, page_size="4K"),
        TypeError, None, ["page_size", "int"]),
    Bad("models-platform-window-page", "platform-toml", "silent",
        lambda: load_platform(_pseries_with('page_size = "64K"', 'page_size = "16M"')),
        IommuError, "EINVAL", ["page_size", "not one of"]),
    Bad("models-platform-window-page-some", "platform-toml", "silent",
        lambda: load_platform(_pseries_with(', page_size = "4K"', "")),
        IommuError, "EINVAL", ["every window or for none"]),
    Bad("models-platform-hint-on-hardware", "platform-toml", "silent",
        lambda: load_platform(_bad_toml(platforms.get("intel-vtd-48").source.read_text().replace(
            'nesting = "hardware"', 'nesting = "hardware"\nnesting_hint = "x"'))),
        IommuError, "EINVAL", ["nesting_hint", "only allowed"]),
    # -- shadowing ---------------------------------------------------------------------------
    Bad("models-shadow-map-twice", "api", "changed", lambda: SHADOW.guest_map(0x4000_0000, 0x10_0000, 0x1000),
        IommuError, "EADDRINUSE", ["overlaps"], shadow_state(SHADOW)),
    Bad("models-shadow-map-unaligned", "api", "changed", lambda: SHADOW.guest_map(0x4000_0800, 0x10_0000, 0x1000),
        IommuError, "EINVAL", ["aligned"], shadow_state(SHADOW)),
    Bad("models-shadow-unmap-zero", "api", "changed", lambda: SHADOW.guest_unmap(0x4000_0000, 0),
        IommuError, "EINVAL", ["positive"], shadow_state(SHADOW)),
    Bad("models-virtio-map-overlap", "api", "changed", lambda: VIRTIO.guest_map(0x4000_0000, 0x20_0000, 0x1000),
        IommuError, "EINVAL", ["virtio_iommu_map"], shadow_state(VIRTIO)),
    Bad("models-virtio-unmap-zero", "api", "changed", lambda: VIRTIO.guest_unmap(0x4000_0000, 0),
        IommuError, "EINVAL", ["positive"], shadow_state(VIRTIO)),
    # -- platform TOML ---------------------------------------------------------------------------
    Bad("models-platform-missing", "platform-toml", "leak", lambda: load_platform("/nonexistent/p.toml"),
        IommuError, "ENOENT", ["no platform file"]),
    Bad("models-platform-dev-zero", "platform-toml", "memory", lambda: load_platform("/dev/zero"),
        IommuError, "EINVAL", ["/dev/zero"], isolate=True, mem_mb=600, seconds=10),
    Bad("models-platform-deep", "platform-toml", "leak",
        lambda: load_platform(_bad_toml("a = " + "[" * 5000 + "]" * 5000 + "\n")),
        IommuError, "EINVAL", ["deep"], isolate=True, mem_mb=600, seconds=10),
    Bad("models-platform-binary", "platform-toml", "leak", lambda: load_platform(_bad_toml("name = \"\x00\"\n")),
        IommuError, "EINVAL", ["platform file"]),
    Bad("models-platform-malformed", "platform-toml", "leak", lambda: load_platform(_bad_toml("ias = = 4\n")),
        IommuError, "EINVAL", ["not valid TOML", ":1"]),
]

test_bad_input = parametrize(CASES)
