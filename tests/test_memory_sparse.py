"""Memory grows with what a model touches, never with what is configured.

Host and guest memory hold only the table pages and the pages actually written. Blocks are
aligned to real physical addresses (as the kernel's buddy allocator hands out naturally
aligned blocks and QEMU backs guest RAM with aligned huge pages), so a 1 GiB guest RAM block
can be mapped with 1 GiB stage-2 leaves.
"""

from iommu_lab.hardware import formats
from iommu_lab.nesting.memory import host_memory_for
from iommu_lab.nesting.nested import Nested
from iommu_lab.pagetable.memory import PhysicalMemory

MiB = 1 << 20


def test_a_4_tib_guest_with_one_mapping_costs_a_few_mb_of_model_memory():
    ram = 4 << 40
    host = host_memory_for(formats.get("vtd-ss-4level"), at_least=ram)
    n = Nested.for_platform("intel-vtd-48", guest_ram=ram, backing="eager", host=host)
    n.map(0x1000, ram - 0x1000, 0x1000)
    assert n.walk(0x1000).ok
    assert host.bytes_backed < 4 * MiB, host.bytes_backed


def test_the_cost_does_not_grow_with_configured_guest_ram():
    backed = []
    for ram in (1 << 30, 1 << 40):
        host = host_memory_for(formats.get("vtd-ss-4level"), at_least=ram)
        n = Nested.for_platform("intel-vtd-48", guest_ram=ram, backing="eager", host=host)
        n.map(0x1000, 0x10_0000, 0x1000)
        assert n.walk(0x1000).ok
        backed.append(host.bytes_backed)
    assert backed[1] <= backed[0] + 64 * 1024, backed


def test_a_word_written_far_above_the_first_backs_one_chunk_not_everything_between():
    mem = PhysicalMemory(base=0, size=1 << 46)
    low = mem.alloc(4096)
    mem.write_u64(low, 1)
    before = mem.bytes_backed
    big = mem.alloc(1 << 45)  # reserved, not backed, until written
    assert mem.bytes_backed == before
    mem.write_u64(big + (1 << 44), 0xABCD)
    assert mem.read_u64(big + (1 << 44)) == 0xABCD
    assert mem.bytes_backed - before <= 2 * MiB, mem.bytes_backed - before


def test_a_1_gib_guest_ram_block_is_mapped_with_1_gib_stage2_leaves():
    n = Nested.for_platform("intel-vtd-48", guest_ram=1 << 30, backing="eager")
    n.map(0x1000, 0x10_0000, 0x1000)
    w = n.walk(0x1000)
    assert w.ok
    stage2 = [r.label for r in w.refs if r.label.startswith("S2")]
    # Each stage-2 translation reads SL-PML4E then SL-PDPE, whose entry is a 1 GiB leaf.
    assert stage2[:2] == ["S2 SL-PML4E", "S2 SL-PDPE"], stage2
    assert len(stage2) == 2 * 5, stage2
