"""PASID tables: index arithmetic at the edges, real entry bits in memory, lookups and faults."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from iommu_lab.core.errors import IommuError
from iommu_lab.nesting.pasid import (
    AMD_DTE,
    SMMU_CD,
    SMMU_STE,
    VTD_PASID_DIR_ENTRY,
    VTD_PASID_ENTRY,
    AmdGcr3Table,
    Binding,
    Pgtt,
    SmmuCdTable,
    SteConfig,
    VtdPasidTable,
    amd_gcr3_index,
    amd_gcr3_levels,
    smmu_cd_index,
    vtd_pasid_index,
)
from iommu_lab.pagetable.memory import PhysicalMemory


@pytest.fixture
def host():
    return PhysicalMemory(name="host")


# -- VT-d index arithmetic ------------------------------------------------------------------


@pytest.mark.parametrize(
    "pasid, expected",
    [
        (0, (0, 0)),  # RID_PASID
        (0x3F, (0, 63)),  # last entry of the first PASID table
        (0x40, (1, 0)),  # first entry of the second table: the directory boundary 63/64
        (0x12345, (0x48D, 5)),  # the reference's worked example
        (0xFFFFF, (0x3FFF, 63)),  # last 20-bit PASID: last directory entry, last table entry
    ],
)
def test_vtd_pasid_index_splits_14_plus_6_bits(pasid, expected):
    assert vtd_pasid_index(pasid) == expected


@pytest.mark.parametrize("bad", [-1, 0x100000])
def test_vtd_pasid_outside_20_bits_is_einval(bad):
    with pytest.raises(IommuError) as e:
        vtd_pasid_index(bad)
    assert e.value.errno == "EINVAL"


def test_vtd_entry_sizes_are_8_and_64_bytes():
    assert VTD_PASID_DIR_ENTRY.size == 8
    assert VTD_PASID_ENTRY.size == 64
    assert SMMU_CD.size == 64 and SMMU_STE.size == 64


def test_vtd_pasid_entry_bits_match_kernel_helpers():
    # pasid_set_translation_type: bits 8:6; pasid_set_flptr: val[2] & VTD_PAGE_MASK;
    # pasid_set_slptr: val[0] & VTD_PAGE_MASK; pasid_set_domain_id: val[1] 15:0.
    v = VTD_PASID_ENTRY.encode(
        P=1, PGTT=Pgtt.NESTED, SSPTPTR=0x1234_5000, DID=7, FSPTPTR=0xABC_D000, FLPM=1
    )
    words = [(v >> (64 * i)) & (2**64 - 1) for i in range(8)]
    assert words[0] == 0x1234_5000 | (3 << 6) | 1
    assert words[1] == 7
    assert words[2] == 0xABC_D000 | (1 << 2)
    assert words[3:] == [0] * 5


def test_vtd_directory_is_128k_for_20_bits_and_tables_are_lazy(host):
    t = VtdPasidTable(host)
    assert t.dir_entries == 1 << 14
    used = host.bytes_used
    assert used == 128 * 1024 + 2 * 4096  # directory, plus the root table and one context table
    t.set_entry(0x40, Pgtt.FIRST_STAGE, fsptptr=0x5000)
    assert host.bytes_used == used + 4096  # one 64 x 64 B table
    t.set_entry(0x7F, Pgtt.FIRST_STAGE, fsptptr=0x6000)
    assert host.bytes_used == used + 4096  # same table (0x40..0x7f)
    t.set_entry(0x80, Pgtt.FIRST_STAGE, fsptptr=0x7000)
    assert host.bytes_used == used + 8192


def test_vtd_lookup_reads_root_context_directory_then_entry_from_memory(host):
    t = VtdPasidTable(host)
    addr = t.set_entry(0x12345, Pgtt.NESTED, fsptptr=0x5000, ssptptr=0x1000_0000, did=3)
    look = t.lookup(0x12345)
    assert look.ok and look.n_refs == 4
    assert [r.structure for r in look.refs] == ["root entry", "context entry", "PASID directory", "PASID table"]
    assert look.refs[2].address == t.directory + 0x2468
    assert look.refs[3].address == addr and addr & 0xFFF == 0x140
    assert look.stage1_root == 0x5000 and look.stage2_root == 0x1000_0000
    assert look.mode == "PGTT=NESTED"
    assert look.binding is Binding.PGTABLE
    # what the lookup decoded is what memory holds, not a record of what was set
    host.write_u64(addr + 16, 0x9000)
    assert t.lookup(0x12345).stage1_root == 0x9000


@pytest.mark.parametrize("pgtt", list(Pgtt))
def test_vtd_pgtt_selects_stages(host, pgtt):
    t = VtdPasidTable(host)
    t.set_entry(1, pgtt, fsptptr=0x5000, ssptptr=0x6000)
    look = t.lookup(1)
    assert (look.stage1_root is not None) == (pgtt in (Pgtt.FIRST_STAGE, Pgtt.NESTED))
    assert (look.stage2_root is not None) == (pgtt in (Pgtt.SECOND_STAGE, Pgtt.NESTED))


def test_vtd_lookup_faults_carry_sm_fault_reasons(host):
    t = VtdPasidTable(host)
    look = t.lookup(0xFFFFF)
    assert look.fault.code == "0x51" and look.n_refs == 3  # root, context, directory
    t.set_entry(0x40, Pgtt.FIRST_STAGE, fsptptr=0x5000)
    look = t.lookup(0x41)  # directory entry present, PASID entry not
    assert look.fault.code == "0x59" and look.n_refs == 4
    addr = t.entry_address(0x40)
    host.write_u64(addr, host.read_u64(addr) | (1 << 10))  # a reserved bit in val[0]
    assert t.lookup(0x40).fault.code == "0x5a"
    host.write_u64(addr, (host.read_u64(addr) & ~(7 << 6) & ~(1 << 10)) | (7 << 6))
    assert t.lookup(0x40).fault.code == "0x5b"  # PGTT 7 is not a translation type


# -- SMMUv3 CD tables -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "ssid, s1cdmax, two_level, expected",
    [
        (0, 20, True, (0, 0)),
        (0x3FF, 20, True, (0, 0x3FF)),
        (0x400, 20, True, (1, 0)),
        (0x12345, 20, True, (0x48, 0x345)),
        (0xFFFFF, 20, True, (0x3FF, 0x3FF)),
        (0x3FF, 10, False, (0x3FF,)),
        (0, 0, False, (0,)),
    ],
)
def test_smmu_cd_index_splits_s1cdmax_minus_10_plus_10(ssid, s1cdmax, two_level, expected):
    assert smmu_cd_index(ssid, s1cdmax, two_level) == expected


def test_smmu_ssid_beyond_s1cdmax_is_einval():
    with pytest.raises(IommuError):
        smmu_cd_index(1 << 12, 12, True)


def test_smmu_linear_up_to_1024_cds_two_level_above(host):
    assert not SmmuCdTable(host, 10).two_level
    assert SmmuCdTable(host, 11).two_level
    with pytest.raises(IommuError, match="64 KiB"):  # a table the host driver builds
        SmmuCdTable(host, 12, two_level=False, binding=Binding.PGTABLE)
    with pytest.raises(IommuError):
        SmmuCdTable(host, 8, two_level=True)


def test_smmu_two_level_lookup_reads_ste_l1_and_cd(host):
    cds = SmmuCdTable(host, 20)
    cd_addr = cds.set_cd(0x12345, 0x7000, asid=9)
    assert cd_addr & 0xFFFF == 0xD140  # L2 byte offset of the reference's example
    ste = cds.make_ste(host, s2ttb=0x1000_0000, vmid=5)
    d = SMMU_STE.decode(SMMU_STE.read(host, ste))
    assert d["Config"] == SteConfig.NESTED and d["S1Fmt"] == 2 and d["S1CDMax"] == 20
    assert d["S1ContextPtr"] == cds.base and d["S2TTB"] == 0x1000_0000 and d["S2VMID"] == 5
    look = cds.lookup(0x12345)
    assert [r.structure for r in look.refs] == ["STE", "L1 CD descriptor", "CD"]
    assert look.stage1_root == 0x7000 and look.entry["ASID"] == 9


def test_smmu_invalid_cd_is_c_bad_cd_and_guest_owned(host):
    cds = SmmuCdTable(host, 8)
    look = cds.lookup(3)
    assert "C_BAD_CD" in look.fault.code and look.fault.owner == "guest"
    look = cds.lookup(0x100)
    assert "C_BAD_SUBSTREAMID" in look.fault.code


# -- AMD GCR3 -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "bits, levels", [(1, 1), (9, 1), (10, 2), (16, 2), (18, 2), (19, 3), (20, 3)]
)
def test_amd_gcr3_levels_are_ceil_bits_over_9(bits, levels):
    assert amd_gcr3_levels(bits) == levels


@pytest.mark.parametrize(
    "pasid, levels, expected",
    [
        (0x12345, 3, (0x0, 0x91, 0x145)),
        (0, 2, (0, 0)),
        (0x1FF, 2, (0, 0x1FF)),
        (0x200, 2, (1, 0)),
        (0xFFFFF, 3, (3, 0x1FF, 0x1FF)),
    ],
)
def test_amd_gcr3_index_is_9_bits_per_level(pasid, levels, expected):
    assert amd_gcr3_index(pasid, levels) == expected


def test_amd_dte_encodes_split_gcr3_root_and_lookup_walks_levels(host):
    g = AmdGcr3Table(host, 20)
    g.set_gcr3(0x12345, 0x9000)
    dte = g.make_dte(host, host_root=0x1000_0000, host_mode=4)
    d = AMD_DTE.decode(AMD_DTE.read(host, dte))
    assert d["GV"] == 1 and d["GLX"] == 2
    root = (d["GCR3_14_12"] << 12) | (d["GCR3_30_15"] << 15) | (d["GCR3_51_31"] << 31)
    assert root == g.root
    look = g.lookup(0x12345)
    assert look.ok and look.n_refs == 4 and look.stage1_root == 0x9000
    assert [r.index for r in look.refs[1:]] == [0x0, 0x91, 0x145]
    assert not g.lookup(0x12346).ok


def test_guest_owned_table_lookup_counts_the_translation_references(host):
    guest = PhysicalMemory(base=0, size=1 << 30, name="guest")
    g = AmdGcr3Table(guest, 9)
    g.set_gcr3(5, 0x4000)
    calls = []

    def translate(gpa):
        calls.append(gpa)
        return gpa, ()

    look = g.lookup(5, translate=translate, host_memory=guest)
    assert calls == [g.root + 8 * 5]
    assert look.stage1_root == 0x4000


def test_lookup_text_dataframe_and_html(host):
    t = VtdPasidTable(host)
    t.set_entry(0x40, Pgtt.PASS_THROUGH)
    look = t.lookup(0x40)
    assert "PGTT=PASS_THROUGH" in str(look) and "PASID directory" in str(look)
    df = look.to_dataframe()
    assert list(df["kind"]) == ["pasid"] * 4 and str(df["address"].dtype) == "UInt64"
    assert "<table>" in look._repr_html_()


@given(st.integers(0, 0xFFFFF))
def test_pasid_indices_recombine_to_the_pasid(pasid):
    d, i = vtd_pasid_index(pasid)
    assert (d << 6) | i == pasid and 0 <= i < 64 and 0 <= d < 1 << 14
    l1, l2 = smmu_cd_index(pasid, 20, True)
    assert (l1 << 10) | l2 == pasid and l2 < 1024
    top, mid, low = amd_gcr3_index(pasid, 3)
    assert (top << 18) | (mid << 9) | low == pasid and max(top, mid, low) < 512


def test_structure_faults_carry_the_one_fault_vocabulary(host):
    from iommu_lab.core.faults import FaultKind, FaultReason
    from iommu_lab.hardware.faults import SmmuEventId, VtdReason

    t = VtdPasidTable(host)
    missing = t.resolve(0x41).fault
    assert missing.reason is FaultReason.NOT_PRESENT and missing.kind is FaultKind.TRANSLATION
    assert missing.vendor is VtdReason.SM_PDE_NOT_PRESENT
    t.set_entry(0x40, Pgtt.FIRST_STAGE, fsptptr=0x5000)
    addr = t.entry_address(0x40)
    host.write_u64(addr, host.read_u64(addr) | (1 << 10))
    bad = t.resolve(0x40).fault
    assert bad.reason is FaultReason.RESERVED_BITS and bad.kind is FaultKind.RESERVED
    cd = SmmuCdTable(host, 4, binding=Binding.PGTABLE)
    assert cd.resolve(0x10).fault.vendor is SmmuEventId.C_BAD_SUBSTREAMID


def test_lookup_is_the_old_name_of_resolve(host):
    t = VtdPasidTable(host)
    t.set_entry(0x40, Pgtt.NESTED, fsptptr=0x5000, ssptptr=0x6000)
    assert t.lookup(0x40) == t.resolve(0x40)
    assert t.resolve(0x40).pgtt is Pgtt.NESTED


# -- scalable-mode root and context entries (drivers/iommu/intel/iommu.c iommu_context_addr,
#    pasid.c context_entry_set_pasid_table) --------------------------------------------------


def test_vtd_root_entry_halves_and_context_slots_follow_iommu_context_addr(host):
    """devfn 0..0x7f use root->lo, 0x80..0xff root->hi; each context entry is 32 bytes."""
    from iommu_lab.nesting.pasid import VTD_CONTEXT_ENTRY, VTD_ROOT_ENTRY

    low = VtdPasidTable(host, bus=3, devfn=0x08)
    high = VtdPasidTable(host, bus=3, devfn=0x81, root_table=low.root_table)
    root = VTD_ROOT_ENTRY.decode(VTD_ROOT_ENTRY.read(host, low.root_table + 16 * 3))
    assert root["LP"] == 1 and root["UP"] == 1 and root["LCTP"] != root["UCTP"]
    assert low.context_addr == root["LCTP"] + 0x08 * 32
    assert high.context_addr == root["UCTP"] + 0x01 * 32
    ctx = VTD_CONTEXT_ENTRY.decode(VTD_CONTEXT_ENTRY.read(host, low.context_addr))
    assert ctx["P"] == 1 and ctx["PASIDDIRPTR"] == low.directory
    assert ctx["PDTS"] == 7  # context_get_sm_pds: 2^14 directory entries = 2^(7 + 7)
    assert ctx["RID_PASID"] == 0  # IOMMU_NO_PASID
    for t in (low, high):
        t.set_entry(5, Pgtt.FIRST_STAGE, fsptptr=0x5000)
        look = t.lookup(5)
        assert look.ok and look.refs[0].index == 3 and look.refs[1].index == t.devfn
        assert look.refs[1].address == t.context_addr


def test_vtd_context_entry_faults_carry_sm_reasons(host):
    """A cleared root half faults 0x39, a cleared context entry 0x41, a PASID beyond PDTS 0x46
    (dma_remap_sm_fault_reasons), each after the reads the hardware made."""
    from iommu_lab.core.faults import FaultReason
    from iommu_lab.nesting.pasid import VTD_CONTEXT_ENTRY

    t = VtdPasidTable(host, bus=1, devfn=0x10)
    t.set_entry(0x2000, Pgtt.FIRST_STAGE, fsptptr=0x5000)
    ctx = VTD_CONTEXT_ENTRY.decode(VTD_CONTEXT_ENTRY.read(host, t.context_addr))
    VTD_CONTEXT_ENTRY.write(host, t.context_addr, VTD_CONTEXT_ENTRY.encode(**{**ctx, "PDTS": 0}))
    look = t.lookup(0x2000)  # PDTS 0 covers PASIDs below 2^13
    assert look.fault.reason is FaultReason.OUT_OF_RANGE and "0x46" in str(look.fault) and look.n_refs == 2
    VTD_CONTEXT_ENTRY.write(host, t.context_addr, 0)
    look = t.lookup(0x2000)
    assert look.fault.structure == "context entry" and "0x41" in str(look.fault) and look.n_refs == 2
    host.write_u64(t.root_table + 16 * 1, 0)
    look = t.lookup(0x2000)
    assert look.fault.structure == "root entry" and "0x39" in str(look.fault) and look.n_refs == 1


def test_vtd_requester_id_is_checked_before_allocating(host):
    used = host.bytes_used
    with pytest.raises(IommuError, match="devfn 0x100"):
        VtdPasidTable(host, devfn=0x100)
    with pytest.raises(IommuError, match="PCI bus 0x100"):
        VtdPasidTable(host, bus=0x100)
    assert host.bytes_used == used
