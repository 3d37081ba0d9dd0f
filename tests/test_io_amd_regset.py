"""AMD devtbl / capability / mmio and Intel iommu_regset, decoded."""

from pathlib import Path

from iommu_lab.io import parse_devtbl, parse_iommu_regset, read

DATA = Path(__file__).resolve().parent.parent / "data"


def test_devtbl_row_decodes_into_dte_fields():
    (row,) = read(DATA / "amd/devtbl").value
    f = row.fields()
    assert row.sbdf == "0000:c4:00.0" and row.iommu == "iommu3"
    assert (f["V"], f["TV"], f["Mode"], f["PTRoot"], f["DomainID"]) == (1, 1, 3, 0x129C36000, 9)
    assert (f["IV"], f["IntTabLen"], f["IntTableRootPtr"]) == (1, 9, 0x1373B8000)
    assert "3-level host table" in row.summary()


def test_devtbl_early_colon_form_and_guest_fields():
    gcr3 = 0x12345000
    q0 = 1 | 2 | (4 << 9) | (1 << 55) | (((gcr3 >> 12) & 7) << 58)
    q1 = 7 | (((gcr3 >> 15) & 0xFFFF) << 16) | ((gcr3 >> 31) << 43)
    text = ("DeviceId QWORD[3] QWORD[2] QWORD[1] QWORD[0] iommu\n"
            f"0000:01:00:0 {0:016x} {0:016x} {q1:016x} {q0:016x} iommu0\n")
    (row,) = parse_devtbl(text)
    assert row.sbdf == "0000:01:00.0" and row.fields()["GV"] == 1 and row.gcr3_root == gcr3


def test_capability_and_mmio_reads_name_their_registers():
    cap = read(DATA / "amd/capability").value
    assert cap[0].name == "Capability Header" and cap[0].fields()["CapID"] == 0xF
    mmio = read(DATA / "amd/mmio").value
    assert mmio[0].name == "Control" and mmio[0].fields()["IommuEn"] == 1
    assert "Extended Feature" in mmio[1].describe()


def test_regset_units_decode_cap_ecap_status_and_mode():
    u0, u1 = read(DATA / "debugfs/v6.7/iommu_regset").value
    assert (u0.iommu, u0.base, u0.offsets["CAP"]) == ("dmar0", 0xFED90000, 0x08)
    assert u0.status["TES"] and not u1.status["TES"] and u0.scalable is True and u1.scalable is None
    d = u0.decoded()
    assert d.ias and d.pgsizes & 0x1000 and "dmar0" in u0.describe()


def test_regset_from_the_abi_document_with_its_prompt():
    text = """ $ sudo cat /sys/kernel/debug/iommu/intel/iommu_regset

 IOMMU: dmar0 Register Base Address: 26be37000

 Name                    Offset          Contents
 VER                     0x00            0x0000000000000010
 GSTS                    0x1c            0x00000000c7000000

 [...]
"""
    (u,) = parse_iommu_regset(text)
    assert u.registers["VER"] == 0x10 and u.status["QIES"]
