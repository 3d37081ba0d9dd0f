"""DMA traces: the schema, its validation, exact files, merging, and the four generators."""

import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st

from iommu_lab.core.ranges import U64_MAX
from iommu_lab.dma.trace import (
    COLUMNS,
    OPS,
    PASID_MAX,
    Op,
    Trace,
    TraceError,
    check_mapped,
    nic_rx_ring,
    random_working_set,
    storage_sg,
    streaming,
)

DTYPES = {
    "t": "int64",
    "iova": "uint64",
    "length": "uint64",
    "pa": "uint64",
    "stage": "uint8",
    "pasid": "UInt32",
}


def frame(**columns):
    """A minimal one-DMA frame with the given columns replaced."""
    base = {"t": [0], "op": ["read"], "iova": [0x1000], "length": [64]}
    base.update(columns)
    return pd.DataFrame(base)


def assert_schema(tr: Trace) -> None:
    df = tr.frame
    assert tuple(df.columns) == COLUMNS
    for col, dtype in DTYPES.items():
        assert str(df[col].dtype) == dtype, col
    assert isinstance(df["op"].dtype, pd.CategoricalDtype)
    assert list(df["op"].cat.categories) == list(OPS) and not df["op"].cat.ordered
    assert isinstance(df["device"].dtype, pd.CategoricalDtype)


def assert_well_formed(tr: Trace) -> None:
    assert_schema(tr)
    assert (np.diff(tr.frame["t"].to_numpy()) >= 0).all()
    assert check_mapped(tr).empty


# ===================================================================== schema and coercion
def test_from_frame_fills_defaults_and_coerces_every_dtype():
    tr = Trace.from_frame(frame(op=["R"], iova=["0x1000"]))
    assert_schema(tr)
    row = tr.frame.iloc[0]
    assert (row["op"], row["device"], row["iova"], row["pa"], row["stage"]) == (
        "read",
        "dev0",
        0x1000,
        0,
        1,
    )
    assert pd.isna(row["pasid"])


@pytest.mark.parametrize("spelling", ["read", "READ", " Read ", "r", Op.READ])
def test_op_accepts_any_case_alias_and_enum(spelling):
    assert Trace.from_frame(frame(op=[spelling])).frame["op"].iloc[0] == "read"


@pytest.mark.parametrize("iova", [["0x2000"], np.array([0x2000], dtype=np.uint64)])
def test_from_frame_never_mutates_or_shares_the_callers_frame(iova):
    df = frame(op=["W"], iova=iova)
    before = df.copy()
    tr = Trace.from_frame(df)
    tr.frame.loc[0, "iova"] = 7
    pd.testing.assert_frame_equal(df, before)


def test_hex_and_decimal_strings_and_top_of_space_are_exact():
    tr = Trace.from_frame(
        frame(
            iova=["0xffff_ffff_ffff_f000", "18446744073709547520"],
            t=[0, 1],
            op=["r", "w"],
            length=["0x1000", "4096"],
        )
    )
    assert tr.frame["iova"].tolist() == [U64_MAX - 0xFFF, U64_MAX - 0xFFF]


@pytest.mark.parametrize(
    "columns, needle",
    [
        ({"iova": [1 << 64]}, "iova[0] = 0x1_0000_0000_0000_0000: exceeds"),
        ({"iova": [-1]}, "iova[0] = -0x1: is negative"),
        ({"length": [0]}, "length[0] = 0x0: is zero"),
        ({"pasid": [1 << 20]}, "pasid[0] = 0x10_0000: exceeds"),
        (
            {"op": ["fetch"]},
            "op[0] = 'fetch': is not a trace operation; allowed: 'read', 'write', 'map', 'unmap'",
        ),
        ({"op": ["read"], "stage": [2]}, "stage[0] = 2: on a read row"),
        ({"iova": [1.0]}, "iova[0] = 1.0: is a float column"),
        ({"iova": ["0xzz"]}, "iova[0] = '0xzz': is not an integer"),
        ({"pa": [0x5000]}, "pa[0] = 0x5000: on a read row"),
        ({"iova": [U64_MAX], "length": [2]}, "runs past the end of the 64-bit space"),
        ({"device": [""]}, "device[0] = '': is not a device name"),
        ({"bogus": [1]}, "bogus = 'bogus': is not a trace column"),
    ],
)
def test_bad_values_are_refused_naming_column_row_and_value(columns, needle):
    with pytest.raises(TraceError) as err:
        Trace.from_frame(frame(**columns))
    assert needle in str(err.value)
    assert "allowed:" in str(err.value)


def test_decreasing_time_names_both_rows():
    df = pd.DataFrame({"t": [0, 9, 5], "op": ["r"] * 3, "iova": [0] * 3, "length": [1] * 3})
    with pytest.raises(TraceError, match=r"t\[2\] = 5: is earlier than t\[1\] = 9"):
        Trace.from_frame(df)


def test_error_names_the_offending_row_position_not_the_index_label():
    df = pd.DataFrame(
        {"t": [0, 1], "op": ["r", "r"], "iova": [0, -5], "length": [1, 1]}, index=[10, 20]
    )
    with pytest.raises(TraceError, match=r"iova\[1\] = -0x5"):
        Trace.from_frame(df)


def test_from_records_tuples_in_column_order_and_dicts():
    a = Trace.from_records(
        [(0, "map", "d", None, 0x1000, 0x1000, 0x9000, 1), (5, "w", "d", 3, 0x1000, 8, 0, 1)]
    )
    b = Trace.from_records(
        [
            {"t": 0, "op": "map", "device": "d", "iova": 0x1000, "length": 0x1000, "pa": 0x9000},
            {"t": 5, "op": "w", "device": "d", "pasid": 3, "iova": 0x1000, "length": 8},
        ]
    )
    assert a.frame["pasid"].tolist()[1] == 3
    pd.testing.assert_frame_equal(a.frame.drop(columns="pasid"), b.frame.drop(columns="pasid"))
    assert pd.isna(a.frame["pasid"].iloc[0]) and pd.isna(b.frame["pasid"].iloc[0])


def test_stage_two_maps_are_allowed():
    tr = Trace.from_frame(
        pd.DataFrame(
            {
                "t": [0],
                "op": ["map"],
                "iova": [0x4000_0000],
                "length": [0x20_0000],
                "pa": [0x1_0000_0000],
                "stage": [2],
            }
        )
    )
    assert tr.frame["stage"].iloc[0] == 2


# ===================================================================== files
def wide_trace() -> Trace:
    return Trace.from_frame(
        pd.DataFrame(
            {
                "t": [0, 0, 3, 3],
                "op": ["map", "read", "write", "unmap"],
                "device": ["nic0", "nic0", "gpu1", "nic0"],
                "pasid": [None, None, PASID_MAX, None],
                "iova": [U64_MAX - 0x1FFF, U64_MAX - 0x1FFF, 1 << 63, U64_MAX - 0x1FFF],
                "length": [0x2000, 0x2000, 1, 0x2000],
                "pa": [(1 << 63) + 0x1000, 0, 0, 0],
                "stage": [1, 1, 1, 1],
            }
        ),
        name="wide",
    )


@pytest.mark.parametrize("suffix", [".parquet", ".pq", ".csv"])
def test_file_round_trip_is_exact_above_two_to_the_63_and_with_na_pasid(tmp_path, suffix):
    tr = wide_trace()
    back = Trace.read(tr.save(tmp_path / f"t{suffix}"))
    pd.testing.assert_frame_equal(back.frame, tr.frame)
    assert back.name == "t"


def test_csv_writes_addresses_in_hex(tmp_path):
    text = wide_trace().save(tmp_path / "t.csv").read_text()
    assert "0xffffffffffffe000" in text and "0x8000000000001000" in text


def test_csv_accepts_decimal_addresses(tmp_path):
    path = tmp_path / "dec.csv"
    path.write_text(
        "t,op,device,pasid,iova,length,pa,stage\n0,map,d,,4096,4096,36864,1\n1,READ,d,7,4096,64,0,1\n"
    )
    tr = Trace.read(path)
    assert tr.frame["pa"].tolist() == [0x9000, 0] and tr.frame["pasid"].iloc[1] == 7


def test_unknown_suffix_names_it_and_the_allowed_ones(tmp_path):
    with pytest.raises(ValueError, match=r"'\.json'.*\.parquet, \.pq, \.csv"):
        wide_trace().save(tmp_path / "t.json")


def test_file_with_missing_column_names_file_and_column(tmp_path):
    path = tmp_path / "short.csv"
    path.write_text("t,op,device,pasid,iova,length,pa\n0,read,d,,0x0,1,0x0\n")
    with pytest.raises(ValueError, match=r"short\.csv.*lacks column 'stage'"):
        Trace.read(path)


def test_file_with_bad_value_names_the_file(tmp_path):
    path = tmp_path / "bad.csv"
    path.write_text("t,op,device,pasid,iova,length,pa,stage\n0,read,d,,0x0,0,0x0,1\n")
    with pytest.raises(TraceError, match=r"bad\.csv: length\[0\]"):
        Trace.read(path)


rows = st.lists(
    st.tuples(
        st.integers(0, 1000),
        st.sampled_from(["read", "write", "unmap"]),
        st.sampled_from(["nic0", "nvme0"]),
        st.one_of(st.none(), st.integers(0, PASID_MAX)),
        st.integers(0, U64_MAX),
        st.integers(1, 1 << 40),
    ),
    max_size=12,
)


def to_trace(drawn) -> Trace:
    records = []
    t = 0
    for dt, op, dev, pasid, iova, length in drawn:
        t += dt
        records.append((t, op, dev, pasid, min(iova, U64_MAX - length + 1), length, 0, 1))
    return (
        Trace.from_records(records)
        if records
        else Trace.from_frame(
            pd.DataFrame({c: pd.Series([], dtype=object) for c in ("t", "op", "iova", "length")})
        )
    )


@given(rows)
def test_from_frame_of_a_trace_frame_is_the_identity(drawn):
    tr = to_trace(drawn)
    pd.testing.assert_frame_equal(Trace.from_frame(tr.frame).frame, tr.frame)


@given(rows, st.sampled_from([".parquet", ".csv"]))
def test_any_valid_trace_survives_a_file_round_trip(drawn, suffix):
    tr = to_trace(drawn)
    with tempfile.TemporaryDirectory() as tmp:
        back = Trace.read(tr.save(Path(tmp) / f"x{suffix}"))
    pd.testing.assert_frame_equal(back.frame, tr.frame)


# ===================================================================== summaries
def test_working_set_counts_every_page_an_access_spans():
    tr = Trace.from_frame(
        pd.DataFrame(
            {
                "t": [0, 1, 2, 3],
                "op": ["read", "write", "read", "map"],
                # 0xff8+16: pages 0-1; 0x1000: page 1 again; 0x5000+0x1001: pages 5-6; no map
                "iova": [0xFF8, 0x1000, 0x5000, 0x9000_0000],
                "length": [16, 4, 0x1001, 0x1000],
                "pa": [0, 0, 0, 0x1000],
            }
        )
    )
    assert tr.working_set(4096) == 4  # pages 0, 1, 5, 6
    assert tr.working_set(2 << 20) == 1
    assert tr.working_set(1) == 16 + 0x1001  # bytes: [0x1000, 0x1003] lies inside [0xff8, 0x1007]


def test_working_set_merges_accesses_nested_inside_a_long_one():
    # pages [0, 10], then [2, 3] and [5, 6] inside it: 11 pages, not 13
    tr = Trace.from_records(
        [
            (0, "read", "d", None, 0, 11 * 4096),
            (1, "read", "d", None, 2 * 4096, 2 * 4096),
            (2, "read", "d", None, 5 * 4096, 2 * 4096),
        ]
    )
    assert tr.working_set() == 11


def test_working_set_of_the_top_page_does_not_wrap():
    tr = Trace.from_frame(frame(iova=[U64_MAX - 0xFFF], length=[0x1000]))
    assert tr.working_set() == 1


def test_describe_and_summaries_count_ops_and_bytes():
    tr = storage_sg(20, queue_depth=4, segments=3, read_fraction=1.0)
    d = tr.describe()
    assert d["maps"] == 3 + 20 * 3 and d["unmaps"] == 20
    assert d["writes"] == 20 * 3 + 20  # data into memory (block reads) and completions
    assert d["bytes"] == tr.bytes == 20 * (64 + 48 + 3 * 4096 + 16)
    assert tr.devices == ["nvme0"] and len(tr) == d["rows"]


def test_traces_compare_by_identity_not_by_frame_truthiness():
    tr = wide_trace()
    assert tr == tr and tr != wide_trace()


def test_reprs_show_addresses_in_hex():
    tr = wide_trace()
    html = tr._repr_html_()
    assert "0xffff_ffff_ffff_e000" in html and "<table>" in html
    assert "wide" in repr(tr) and "4 rows" in repr(tr)
    assert tr.head(2).il.hex_columns == ["iova", "pa"]


# ===================================================================== merge and checker
def test_merge_interleaves_by_time_and_ties_keep_argument_order():
    a = Trace.from_records(
        [(0, "read", "a", None, 0, 1, 0, 1), (10, "read", "a", None, 1, 1, 0, 1)]
    )
    b = Trace.from_records(
        [(0, "write", "b", None, 0, 1, 0, 1), (5, "write", "b", None, 1, 1, 0, 1)]
    )
    merged = Trace.merge(a, b, name="both")
    assert list(zip(merged.frame["t"], merged.frame["device"], strict=True)) == [
        (0, "a"),
        (0, "b"),
        (5, "b"),
        (10, "a"),
    ]
    assert Trace.merge(b, a).frame["device"].tolist()[:2] == ["b", "a"]
    assert merged.devices == ["a", "b"] and merged.name == "both"


def test_check_mapped_finds_access_after_unmap_and_partial_overlap():
    tr = Trace.from_records(
        [
            (0, "map", "d", None, 0x1000, 0x2000, 0x8000, 1),
            (1, "read", "d", None, 0x1FF0, 0x20, 0, 1),  # inside [0x1000, 0x2fff]
            (2, "unmap", "d", None, 0x2000, 0x1000, 0, 1),
            (3, "read", "d", None, 0x1FF0, 0x20, 0, 1),  # now straddles into the unmapped page
            (4, "read", "d", 5, 0x1000, 8, 0, 1),  # PASID 5 is another address space
            (5, "read", "e", None, 0x1000, 8, 0, 1),  # so is another device
            (6, "read", "d", None, 0x1000, 8, 0, 1),  # still mapped
        ]
    )
    assert check_mapped(tr).index.tolist() == [3, 4, 5]
    assert tr.unmapped_accesses().index.tolist() == [3, 4, 5]


def test_access_straddling_two_adjacent_maps_is_mapped():
    tr = Trace.from_records(
        [
            (0, "map", "d", None, 0x1000, 0x1000, 0x8000, 1),
            (0, "map", "d", None, 0x2000, 0x1000, 0x3000, 1),
            (1, "write", "d", None, 0x1FF0, 0x20, 0, 1),
            (2, "unmap", "d", None, 0x1000, 0x2000, 0, 1),
            (3, "write", "d", None, 0x2000, 0x10, 0, 1),
        ]
    )
    assert check_mapped(tr).index.tolist() == [4]


def test_partial_unmaps_and_maps_in_any_order_track_single_bytes():
    tr = Trace.from_records(
        [
            (0, "map", "d", None, 0x3000, 0x1000, 0x9000, 1),
            (0, "map", "d", None, 0x2000, 0x1000, 0x8000, 1),  # adjacent, below the first
            (1, "read", "d", None, 0x2FF8, 0x10, 0, 1),  # mapped across the seam
            (2, "unmap", "d", None, 0x2800, 0x801, 0, 1),  # [0x2800, 0x3000]: one byte into 0x3000
            (3, "read", "d", None, 0x3000, 1, 0, 1),  # unmapped
            (4, "read", "d", None, 0x3001, 0xFFF, 0, 1),  # still mapped
            (5, "read", "d", None, 0x27FF, 1, 0, 1),  # still mapped
            (6, "read", "d", None, 0x27FF, 2, 0, 1),  # runs into the hole
            (7, "map", "d", None, 0x5000, 0x1000, 0xA000, 1),
            (
                8,
                "unmap",
                "d",
                None,
                0x4000,
                0x1001,
                0,
                1,
            ),  # from a hole to the first byte of 0x5000
            (9, "read", "d", None, 0x5000, 1, 0, 1),  # unmapped
            (9, "read", "d", None, 0x5001, 1, 0, 1),  # still mapped
        ]
    )
    assert check_mapped(tr).index.tolist() == [4, 7, 10]


def test_check_mapped_ignores_stage_two_maps():
    tr = Trace.from_records(
        [(0, "map", "d", None, 0, 0x1000, 0x1000, 2), (1, "read", "d", None, 0, 8, 0, 1)]
    )
    assert check_mapped(tr).index.tolist() == [1]


# ===================================================================== generators
def test_nic_page_pool_maps_once_and_reuses_exactly_ring_buffers():
    tr = nic_rx_ring(300, ring=16, packet=(64, 1500), seed=3)
    assert_well_formed(tr)
    ops = tr.frame["op"].tolist()
    assert ops[:2] == ["map", "map"] and "map" not in ops[2:] and "unmap" not in ops
    data = tr.frame.iloc[2:].iloc[1::3]
    assert (data["op"] == "write").all()
    assert data["iova"].nunique() == 16
    assert ((data["iova"].to_numpy() - data["iova"].min()) % 2048 == 0).all()


def test_nic_descriptor_read_then_data_then_writeback_per_packet():
    tr = nic_rx_ring(3, ring=2, packet=100, gbps=1.0)
    dma = tr.dma
    assert dma["op"].tolist() == ["read", "write", "write"] * 3
    assert dma["length"].tolist()[:3] == [16, 100, 16]
    # (100 + 24) bytes at 1 Gbit/s: the next packet starts 992 ns later
    assert dma["t"].tolist()[3] == 992


def test_nic_streaming_dma_unmaps_and_remaps_each_buffer_with_lifo_iovas():
    ring = 8
    tr = nic_rx_ring(40, ring=ring, budget=4, recycle=False, seed=1)
    assert_well_formed(tr)
    df = tr.frame
    assert (df["op"] == "unmap").sum() == 40 and (df["op"] == "map").sum() == 1 + ring + 40
    buffers = df.iloc[1:][df["op"].iloc[1:] == "map"]  # row 0 maps the descriptor ring
    assert (buffers["iova"] % 4096 == 0).all() and (buffers["length"] == 4096).all()
    # The rcache hands back freed IOVAs: no more distinct buffer IOVAs than ring slots.
    assert buffers["iova"].nunique() == ring
    # ... in LIFO order: the first refill gets the 4 freed IOVAs back reversed.
    unmapped = df[df["op"] == "unmap"]["iova"].tolist()[:4]
    remapped = buffers["iova"].tolist()[ring : ring + 4]
    assert remapped == unmapped[::-1]
    # Fresh pages for every refill, never a page live elsewhere at the same time.
    assert buffers["pa"].iloc[:ring].nunique() == ring


def storage_requests(tr: Trace):
    """Split a storage_sg trace into (map rows, the DMA rows after them) per submission."""
    df = tr.frame.iloc[3:]  # after the SQ, CQ and SGL-page maps
    ops = df["op"].tolist()
    out, i = [], 0
    while i < len(ops):
        if ops[i] != "map":
            i += 1
            continue
        j = i
        while ops[j] == "map":
            j += 1
        nseg = j - i
        skip = 1 + (nseg > 1)  # the command, then the SGL if the list has more than one entry
        out.append((df.iloc[i:j], df.iloc[j + skip : j + skip + nseg]))
        i = j
    return out


def test_storage_requests_use_one_contiguous_mapped_range_each():
    tr = storage_sg(40, queue_depth=4, segments=(1, 9), seed=2)
    assert_well_formed(tr)
    requests = storage_requests(tr)
    unmaps = tr.frame[tr.frame["op"] == "unmap"]
    assert len(requests) == len(unmaps) == 40
    for (maps, data), (_, unmap) in zip(requests, unmaps.iterrows(), strict=True):
        iova = maps["iova"].to_numpy()
        assert (np.diff(iova) == 4096).all()  # one contiguous IOVA range per scatterlist
        assert data["iova"].tolist() == iova.tolist() and data["op"].isin(["read", "write"]).all()
        assert (unmap["iova"], unmap["length"]) == (
            iova[0],
            4096 * len(iova),
        )  # in-order completion
    scattered = np.concatenate([np.diff(m["pa"].to_numpy().astype(np.int64)) for m, _ in requests])
    assert (scattered != 4096).mean() > 0.9  # PAs scattered


def test_storage_unmap_covers_exactly_the_segments_mapped_for_the_request():
    tr = storage_sg(10, queue_depth=2, segments=3)
    df = tr.frame.iloc[3:]
    maps = df[df["op"] == "map"]
    first = maps.iloc[:3]
    assert np.diff(first["iova"].to_numpy()).tolist() == [4096, 4096]
    unmap = df[df["op"] == "unmap"].iloc[0]
    assert (unmap["iova"], unmap["length"]) == (first["iova"].iloc[0], 3 * 4096)


def test_storage_reuses_freed_iova_ranges_lifo():
    tr = storage_sg(50, queue_depth=4, segments=4)
    unmaps = tr.frame[tr.frame["op"] == "unmap"]
    assert (
        unmaps["iova"].nunique() <= 5
    )  # 4 in flight, plus at most one fresh while the queue fills


def test_storage_reads_an_sgl_only_for_multi_segment_requests():
    one = storage_sg(5, segments=1).dma
    many = storage_sg(5, segments=5).dma
    assert not (
        (one["op"] == "read") & (one["length"] == 16)
    ).any()  # one segment: inline in the command
    assert ((many["op"] == "read") & (many["length"] == 5 * 16)).sum() == 5
    assert ((one["op"] == "read") & (one["length"] == 64)).sum() == 5


def test_streaming_maps_once_and_walks_the_buffer_in_chunks():
    tr = streaming(1000, chunk=256, op="write", gbps=8.0)
    assert_well_formed(tr)
    m = tr.frame.iloc[0]
    assert (m["op"], m["iova"], m["pa"], m["length"]) == ("map", 0x3_0000_0000, 0x1_0000_0000, 4096)
    assert tr.dma["length"].tolist() == [256, 256, 256, 232]
    assert tr.dma["t"].tolist() == [0, 256, 512, 768]
    assert m["iova"] % (1 << 30) == 0 and m["pa"] % (1 << 30) == 0


def test_random_working_set_stays_inside_and_aligned():
    tr = random_working_set(2000, working_set=1 << 20, size=64, skew=1.2, seed=5)
    assert_well_formed(tr)
    iova = tr.dma["iova"].to_numpy() - np.uint64(0x4_0000_0000)
    assert (iova % 64 == 0).all() and (iova < 1 << 20).all()


def test_skew_concentrates_accesses_on_fewer_pages():
    uniform = random_working_set(5000, working_set=4 << 20, seed=1)
    skewed = random_working_set(5000, working_set=4 << 20, skew=1.5, seed=1)
    assert skewed.working_set() < uniform.working_set() / 2


@pytest.mark.parametrize(
    "make",
    [
        lambda s: nic_rx_ring(50, ring=8, packet=(60, 1500), recycle=False, seed=s),
        lambda s: storage_sg(30, queue_depth=4, seed=s),
        lambda s: random_working_set(100, skew=0.8, seed=s),
    ],
)
def test_generators_are_deterministic_by_seed(make):
    pd.testing.assert_frame_equal(make(7).frame, make(7).frame)
    assert not make(7).frame.equals(make(8).frame)


def test_generators_carry_device_and_pasid():
    tr = streaming(4096, device="acc9", pasid=0x1234)
    assert set(tr.frame["device"]) == {"acc9"} and set(tr.frame["pasid"]) == {0x1234}


@pytest.mark.parametrize(
    "call, needle",
    [
        (lambda: nic_rx_ring(1, packet=4000), "packet = 4000: is larger than the receive buffer"),
        (lambda: nic_rx_ring(1, ring=0), "ring = 0: is zero"),
        (lambda: nic_rx_ring(1, base=0x1001), "base = 4097: is not a multiple of 0x1000"),
        (lambda: nic_rx_ring(1, packet=(10, 5)), "min > max"),
        (lambda: storage_sg(1, segment=1000), "segment = 1000"),
        (lambda: storage_sg(1, segments=(1, 300)), "segments[1] = 300: exceeds"),
        (lambda: storage_sg(1, read_fraction=1.5), "read_fraction = 1.5: is not a fraction"),
        (lambda: streaming(100, op="fetch"), "op = 'fetch': is not a DMA direction"),
        (
            lambda: random_working_set(1, working_set=8192, size=3000),
            "working_set = 8192: is not a multiple of size",
        ),
        (lambda: random_working_set(1, skew=-1.0), "skew = -1.0"),
        (lambda: streaming(100, pasid=1 << 20), "pasid = 1048576: exceeds"),
        (lambda: streaming(100, gbps=0), "gbps = 0: is not a positive finite number"),
    ],
)
def test_generator_arguments_are_validated(call, needle):
    with pytest.raises(ValueError) as err:
        call()
    assert needle in str(err.value) and "allowed:" in str(err.value)


def test_merged_generators_still_map_every_access():
    tr = Trace.merge(nic_rx_ring(100, ring=16, recycle=False), storage_sg(20, queue_depth=4))
    assert_well_formed(tr)
    assert tr.devices == ["nic0", "nvme0"]


@pytest.mark.parametrize("name", ["nic_rx_small.csv", "nvme_sg_small.csv"])
def test_sample_traces_load_and_map_every_access(name):
    tr = Trace.read(Path(__file__).parents[1] / "data" / "traces" / name)
    assert_well_formed(tr)
    assert tr.n_dma > 0


def test_to_dataframe_gives_addresses_as_exact_uint64():
    tr = wide_trace()
    df = tr.to_dataframe()
    assert tuple(df.columns) == COLUMNS
    assert [str(df[c].dtype) for c in ("iova", "length", "pa")] == ["UInt64"] * 3
    assert df["iova"].tolist() == [int(v) for v in tr.frame["iova"]]
    assert df.il.hex_columns == ["iova", "pa"]
    df.loc[0, "pa"] = 1
    assert int(tr.frame.loc[0, "pa"]) == (1 << 63) + 0x1000  # a copy: the trace is unchanged


def test_generators_take_the_replays_flush_policy_type():
    from iommu_lab.dma.replay import FlushPolicy as ReplayPolicy
    from iommu_lab.dma.trace import FlushPolicy

    assert FlushPolicy is ReplayPolicy
    by_enum = nic_rx_ring(600, ring=64, recycle=False, policy=FlushPolicy.LAZY)
    by_text = nic_rx_ring(600, ring=64, recycle=False, policy="LAZY")
    assert by_enum.frame.equals(by_text.frame)
    assert not by_enum.frame.equals(nic_rx_ring(600, ring=64, recycle=False).frame)
    with pytest.raises(ValueError, match="unknown flush policy 'eager'; allowed: 'strict', 'lazy'"):
        storage_sg(1, policy="eager")
