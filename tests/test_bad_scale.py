"""Bad input to memory, guest RAM and the table census: refused before any work, nothing changed."""

from __future__ import annotations

from badinput import Bad, CliError, cli_call, parametrize

from iommu_lab.core.errors import IommuError
from iommu_lab.nesting.memory import GuestMemory
from iommu_lab.nesting.nested import Nested
from iommu_lab.pagetable import PageTable, PhysicalMemory
from iommu_lab.pagetable.census import Periodic, table_census

GiB = 1 << 30


def _mem() -> PhysicalMemory:
    m = PhysicalMemory(base=0x1000_0000, size=GiB, name="host")
    m.alloc(4096)
    m.write_u64(0x1000_0008, 0xABCD)
    return m


M1, M2, M3, M4, M5, M6 = (_mem() for _ in range(6))
H = PhysicalMemory(name="host")  # 64 GiB
S2 = PageTable("vtd-ss-4level", memory=H)


def _host_state():
    return H.snapshot(), S2.memory.bytes_used


CASES = [
    Bad("scale-mem-size-text", "api", "silent", lambda: PhysicalMemory(size="64G"), TypeError,
        words=["memory size", "int", "'64G'"]),
    Bad("scale-mem-size-zero", "api", "silent", lambda: PhysicalMemory(size=0), ValueError,
        words=["positive", "4 KiB"]),
    Bad("scale-mem-size-negative", "api", "silent", lambda: PhysicalMemory(size=-4096), ValueError,
        words=["positive"]),
    Bad("scale-mem-base-unaligned", "api", "silent", lambda: PhysicalMemory(base=0x1001), ValueError,
        words=["0x1001", "4 KiB"]),
    Bad("scale-mem-past-2-64", "api", "silent", lambda: PhysicalMemory(base=(1 << 64) - 4096, size=8192),
        ValueError, words=["2^64"]),
    Bad("scale-mem-size-float", "api", "silent", lambda: PhysicalMemory(size=4096.0), TypeError,
        words=["memory size", "float"]),
    Bad("scale-alloc-huge", "api", "memory", lambda: M1.alloc(1 << 70), ValueError,
        words=["allocation", "bytes"], snapshot=M1.snapshot, isolate=True),
    Bad("scale-alloc-zero", "api", "silent", lambda: M2.alloc(0), ValueError,
        words=["allocation"], snapshot=M2.snapshot),
    Bad("scale-alloc-many-count", "api", "memory", lambda: M3.alloc_many(10**12, 4096), IommuError,
        errno="ENOMEM", words=["do not fit"], snapshot=M3.snapshot, isolate=True),
    Bad("scale-alloc-many-negative", "api", "silent", lambda: M4.alloc_many(-1, 4096), ValueError,
        words=["-1", ">= 0"], snapshot=M4.snapshot),
    Bad("scale-write-wide-word", "api", "silent", lambda: M5.write_u64(0x1000_0010, 1 << 64), ValueError,
        words=["64-bit word"], snapshot=M5.snapshot),
    Bad("scale-write-outside", "api", "silent", lambda: M5.write_u64(0x8, 1), IommuError,
        errno="EFAULT", words=["outside", "host memory"], snapshot=M5.snapshot),
    Bad("scale-free-not-a-block", "api", "changed", lambda: M6.free(0x1000_2000), ValueError,
        words=["not the start of an allocated block"], snapshot=M6.snapshot),
    Bad("scale-free-not-int", "api", "leak", lambda: M6.free("0x1000_0000"), TypeError,
        words=["block address", "str"], snapshot=M6.snapshot),
    Bad("scale-guest-ram-text", "api", "refused",
        lambda: Nested.for_platform("intel-vtd-48", guest_ram="4G"), None,
        check=lambda n: n.guest_memory.size == 4 * GiB or (_ for _ in ()).throw(AssertionError(n))),
    Bad("scale-guest-ram-garbage", "api", "leak",
        lambda: Nested.for_platform("intel-vtd-48", guest_ram="lots"), ValueError,
        words=["guest RAM size", "'lots'"]),
    Bad("scale-guest-ram-float", "api", "silent",
        lambda: Nested.for_platform("intel-vtd-48", guest_ram=4.5e9), TypeError,
        words=["guest RAM size", "float"]),
    Bad("scale-guest-eager-too-big", "api", "memory",
        lambda: GuestMemory(S2, H, size=1 << 50, backing="eager"), IommuError, errno="ENOMEM",
        words=["eager backing", "backing='lazy'"], snapshot=_host_state, isolate=True),
    Bad("scale-guest-backing", "api", "leak", lambda: GuestMemory(S2, H, backing=5), ValueError,
        words=["backing", "'eager'", "5"], snapshot=_host_state),
    Bad("scale-census-count-2-70", "api", "memory", lambda: Periodic(0, 1 << 70, 4096, 4096), ValueError,
        words=["count", "2^64"]),
    Bad("scale-census-overlap", "api", "silent", lambda: Periodic(0, 4, 0x1000, 0x2000), ValueError,
        words=["stride", "overlap"]),
    Bad("scale-census-layout-text", "api", "leak", lambda: table_census("vtd-ss-4level", "0x1000"), TypeError,
        words=["layout", "str"]),
    Bad("scale-census-fmt-int", "api", "leak", lambda: table_census(5, (0, 4096)), TypeError,
        words=["fmt", "int"]),
    Bad("scale-census-million-entries", "api", "time",
        lambda: table_census("vtd-ss-4level", ((i << 12, 4096) for i in range(10**7))), ValueError,
        words=["more than", "Periodic"], isolate=True),
    Bad("scale-census-outside-input", "api", "silent",
        lambda: table_census("vtd-ss-3level", (1 << 40, 4096)), ValueError, words=["input range"]),
    Bad("scale-census-unaligned", "api", "leak",
        lambda: table_census("vtd-ss-4level", (0x800, 4096)), ValueError, words=["page size", "aligned"]),
    Bad("scale-cli-nested-ram-text", "cli", "message",
        cli_call(["nested", "intel-vtd-48", "0x0", "--ram", "lots"]), CliError, words=["--ram", "lots"]),
]

test_bad_input = parametrize(CASES)
