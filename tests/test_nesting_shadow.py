"""Software nesting (shadowing), its costs against hardware nesting, and the composition law."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from iommu_lab.core.errors import IommuError
from iommu_lab.nesting.nested import Nested, nested_walk_refs
from iommu_lab.nesting.shadow import DmaPattern, ShadowNesting, compare_costs, run_workload

MiB = 1 << 20


def test_shadow_is_one_table_in_the_hosts_format_mapping_iova_to_hpa():
    n = Nested.build("x86-64-4level", "vtd-ss-4level")
    n.map(0x4000_0000, 0x10_0000, 0x3000)
    n.map(0x8000_0000, 0x20_0000, 2 * MiB)
    s = n.shadow()
    assert s.table.fmt.name == "vtd-ss-4level"
    for iova in (0x4000_0000, 0x4000_2FFF, 0x8000_0000, 0x801F_FFFF):
        assert s.translate_one(iova) == n.translate_one(iova)
    # a 2 MiB guest leaf over 2 MiB host leaves stays one 2 MiB shadow leaf
    big = [m for m in s.table.mappings() if m.iova == 0x8000_0000]
    assert big and big[0].size == 2 * MiB
    assert "ShadowNesting" in repr(s) and "<table>" in s._repr_html_()
    assert len(s.to_dataframe()) == 4


def test_shadow_walk_is_native_depth():
    n = Nested.build("x86-64-4level", "vtd-ss-4level", guest_ram=4 * MiB, backing="lazy")
    n.map(0x4000_0000, 0x10_0000, 0x1000)
    n.guest_memory.back(0x10_0000, 0x1000)
    s = n.shadow()
    assert s.walk(0x4000_0000).references == 4
    assert n.walk(0x4000_0000).n_pagetable_refs == nested_walk_refs(4, 4) == 24


def test_caching_mode_map_costs_an_exit_a_guest_table_walk_and_shadow_writes():
    s = ShadowNesting.build("x86-64-4level", "vtd-ss-4level")
    s.guest_map(0x4000_0000, 0x10_0000, 0x2000)
    c = s.costs
    assert c.guest_ops == 1 and c.vm_exits == 1 and c.host_iotlb_flushes == 1
    assert c.guest_pte_writes == 3 + 2  # three new table pointers, two leaves
    assert c.vmm_guest_table_reads == 3 + 2  # vtd_page_walk reads each entry of the range once
    assert c.stage2_lookups == 2 and c.shadow_pte_writes >= 2
    assert s.translate_one(0x4000_1000) == s.stage2.walk(0x10_1000).pa
    done = s.guest_unmap(0x4000_0000, 0x1000)
    assert done == 0x1000 and c.vm_exits == 2
    with pytest.raises(IommuError):
        s.translate_one(0x4000_0000)
    assert s.translate_one(0x4000_1000)


def test_virtio_iommu_has_no_guest_table_only_requests():
    s = ShadowNesting.for_platform("virtio-iommu-q35", host_format="vtd-ss-4level")
    assert s.stage1 is None and "virtio" in s.mode
    s.guest_map(0x1000, 0x10_0000, 0x1000)
    assert (
        s.costs.vm_exits == 1
        and s.costs.guest_pte_writes == 0
        and s.costs.vmm_guest_table_reads == 0
    )
    assert s.translate_one(0x1000) == s.stage2.walk(0x10_0000).pa


def test_virtio_iommu_needs_a_host_format_and_power_cannot_shadow():
    with pytest.raises(IommuError, match="host_format"):
        ShadowNesting.for_platform("virtio-iommu-q35")
    with pytest.raises(IommuError) as e:
        ShadowNesting.for_platform("power9-pseries")
    assert e.value.errno == "EOPNOTSUPP"


def test_unbacked_gpa_is_skipped_like_qemu_and_faults_on_dma():
    n = Nested.build("x86-64-4level", "vtd-ss-4level", guest_ram=4 * MiB, backing="lazy")
    n.map(0x4000_0000, 0x30_0000, 0x1000)  # stage 2 does not back GPA 0x30_0000
    s = n.shadow()
    assert s.costs.unbacked_bytes == 0x1000
    assert not s.table.walk(0x4000_0000).ok and not n.walk(0x4000_0000).ok


def test_compare_costs_puts_walk_time_against_map_time():
    df = compare_costs(
        DmaPattern.dynamic(8), "x86-64-4level", "vtd-ss-4level", backing="lazy", guest_ram=4 * MiB
    )
    hw, sw = df["hardware nesting"], df["software nesting (shadow)"]
    assert list(df.columns) == ["hardware nesting", "software nesting (shadow)"]
    assert hw["refs_per_miss"] == 24 and sw["refs_per_miss"] == 4
    assert hw["shadow_pte_writes"] == 0 and sw["shadow_pte_writes"] > 0
    assert hw["vmm_guest_table_reads"] == 0 and sw["vmm_guest_table_reads"] > 0
    # hardware nesting traps only the 8 unmaps' invalidations; the caching-mode shadow traps
    # the invalidation after each of the 8 maps too (nesting.exits)
    assert hw["vm_exits"] == 8 and sw["vm_exits"] == 16
    assert sw["map_time_memory_ops"] > hw["map_time_memory_ops"]
    assert hw["walk_refs"] > sw["walk_refs"]


def test_static_workload_amortises_the_shadow():
    hwc, swc = run_workload(
        DmaPattern.static(4, dmas=50), "arm-lpae-s1-4k-48bit", "arm-lpae-s2-4k-40bit"
    )
    assert hwc.iotlb_misses == swc.iotlb_misses == 50
    assert swc.vm_exits == 1 and hwc.vm_exits == 0  # one map: only the shadow traps it
    assert hwc.walk_refs > 3 * swc.walk_refs


def test_workload_operations_are_checked():
    with pytest.raises(ValueError, match="workload operation"):
        compare_costs([("remap", 0, 0)])


# -- the composition law (hypothesis) --------------------------------------------------------

PAIRS = [
    ("x86-64-4level", "vtd-ss-4level"),
    ("x86-64-5level", "vtd-ss-3level"),
    ("x86-64-4level", "amd-v1-4level"),
    ("arm-lpae-s1-4k-48bit", "arm-lpae-s2-4k-40bit"),
]

maps = st.lists(
    st.tuples(
        st.integers(0, 7),
        st.integers(0, 511),
        st.integers(0, 255),
        st.integers(1, 4),
        st.sampled_from(["r", "rw"]),
    ),
    min_size=1,
    max_size=5,
)


@settings(max_examples=30, deadline=None)
@given(
    pair=st.sampled_from(PAIRS),
    mappings=maps,
    backed=st.sets(st.integers(0, 255), max_size=40),
    probes=st.lists(
        st.tuples(st.integers(0, 7), st.integers(0, 511), st.integers(0, 0xFFF)),
        min_size=1,
        max_size=6,
    ),
    access=st.sampled_from(["r", "w"]),
)
def test_nested_walk_equals_stage2_after_stage1_and_equals_the_shadow(
    pair, mappings, backed, probes, access
):
    n = Nested.build(*pair, guest_ram=4 * MiB, backing="lazy")
    data = 2 * MiB  # data pages live in the upper half of guest RAM
    for blk, page, gpage, npages, prot in mappings:
        iova = blk * 0x4000_0000 + page * 0x1000
        try:
            n.map(iova, data + (gpage % 250) * 0x1000, npages * 0x1000, prot=prot)
        except IommuError:
            pass  # overlaps an earlier mapping; the model is unchanged
    for gpage in backed:
        n.guest_memory.back(data + gpage * 0x1000, 0x1000)
    shadow = n.shadow()
    iovas = [blk * 0x4000_0000 + page * 0x1000 + off for blk, page, off in probes]
    iovas += [m.iova + 0x10 for m in n.stage1.mappings()][:4]
    for iova in iovas:
        w = n.walk(iova, access=access)
        w1 = n.stage1.walk(iova, access=access)  # the guest's table, read as the guest sees it
        expected = None
        if w1.ok:
            w2 = n.stage2.walk(w1.pa, access=access)
            expected = w2.pa if w2.ok else None
        assert w.output == expected
        assert (w.fault is None) == (expected is not None)
        s = shadow.table.walk(iova, access=access)
        assert (s.pa if s.ok else None) == expected
