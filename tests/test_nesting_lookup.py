"""The guest page-table lookup aid: every raw entry explained, bad entries shown as faults."""

from iommu_lab.hardware.formats import EntryKind
from iommu_lab.nesting.explain import GuestLookup, lookup
from iommu_lab.nesting.nested import FaultOwner, GuestMemory, Nested, Stage
from iommu_lab.pagetable.memory import PhysicalMemory
from iommu_lab.pagetable.table import PageTable

MiB = 1 << 20


def nested_with_one_page(prot="rw"):
    n = Nested.for_platform("intel-vtd-48", guest_ram=16 * MiB)
    n.map(0x4000_0000, 0x10_0000, 0x1000, prot=prot)
    return n


def s1_ref(n, level):
    return next(r for r in n.walk(0x4000_0000).refs if r.stage is Stage.STAGE1 and r.level == level)


def test_lookup_explains_each_entry_field_by_field():
    n = nested_with_one_page(prot="r")
    look = n.lookup(0x4000_0123)
    assert isinstance(look, GuestLookup) and look.ok and look.nested
    assert look.gpa == 0x10_0123 and look.hpa == n.translate_one(0x4000_0123)
    assert [e.name for e in look.entries] == ["PML4E", "PDPE", "PDE", "PTE"]
    pml4e = look.entries[0]
    roles = {f.name: f.role for f in pml4e.fields}
    assert (
        roles["ADDR"] == "next-table address"
        and roles["P"] == "present"
        and roles["RW"] == "permission"
    )
    assert pml4e.kind is EntryKind.TABLE and "table -> GPA 0x1000" in pml4e.verdict
    assert pml4e.read_address == n.guest_memory.ram_hpa + pml4e.entry_address  # read in host RAM
    pte = look.entries[-1]
    fields = {f.name: f for f in pte.fields}
    assert fields["ADDR"].role == "output address" and fields["ADDR"].value == 0x100
    assert fields["RW"].value == 0  # read-only, as the guest asked
    assert fields["XD"].value == 1 and fields["XD"].role == "permission"
    text = str(look)
    assert "PML4E [0]" in text and "next-table address" in text and "output address" in text


def test_lookup_shows_reserved_bits_as_the_fault_the_hardware_raises():
    n = nested_with_one_page()
    r = s1_ref(n, 3)
    n.host_memory.write_u64(r.address, r.raw | 0x80)  # PS set in a PML4E
    look = n.lookup(0x4000_0000)
    assert not look.ok and look.entries[0].faulted
    assert "reserved" in look.entries[0].verdict
    ps = {f.name: f for f in look.entries[0].fields}["PS"]
    assert ps.role == "reserved" and "must be 0 at PML4E" in ps.meaning
    assert look.fault.owner is FaultOwner.GUEST
    assert look.fault.vtd_fault().code == 0x72
    assert "SMMUv3 event" in str(look) and "0x72" in str(look)


def test_lookup_shows_a_pointer_outside_guest_memory_as_the_hosts_stage2_fault():
    n = nested_with_one_page()
    r = s1_ref(n, 2)
    n.host_memory.write_u64(r.address, 0x7000_0000 | 0x27)  # PDPTE -> GPA 0x7000_0000, no such RAM
    look = n.lookup(0x4000_0000)
    assert "OUTSIDE guest RAM" in look.entries[1].verdict
    assert look.fault.owner is FaultOwner.HOST and look.fault.smmu_event().klass == 1  # CLASS=TT
    assert any("bad pointer is in the guest's table" in note for note in look.notes)


def test_lookup_on_a_plain_guest_table():
    host = PhysicalMemory(name="host")
    s2 = PageTable("arm-lpae-s2-4k-40bit", memory=host)
    gm = GuestMemory(s2, host, size=4 * MiB)
    s1 = PageTable("arm-lpae-s1-4k-48bit", memory=gm)
    s1.map(0x1000, 0x20_0000, 0x1000, prot="r")
    look = lookup(s1, 0x1000)
    assert not look.nested and look.gpa == 0x20_0000 and look.hpa is None
    assert [e.name for e in look.entries] == ["L0", "L1", "L2", "L3"]
    ap = {f.name: f for f in look.entries[-1].fields}["AP"]
    assert ap.role == "permission" and ap.value & 0b10  # AP[2]: read-only
    miss = lookup(s1, 0x5000)
    assert not miss.ok and "not present" in miss.entries[-1].verdict


def test_lookup_dataframe_and_html():
    n = nested_with_one_page()
    look = n.lookup(0x4000_0000)
    df = look.to_dataframe()
    assert set(df["entry"]) == {"PML4E", "PDPE", "PDE", "PTE"}
    assert str(df["raw"].dtype) == "UInt64"
    assert "output address" in set(df["role"])
    html = look._repr_html_()
    assert "<table>" in html and "il-repr" in html
    assert "GuestLookup" in repr(look)
