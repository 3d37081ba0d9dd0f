"""Fuzzing core's text readers: whatever the text, only our ValueError/TypeError comes out.

Text is drawn from the grammar's own alphabet (digits, hex, units, ``^``, ``..``, ``+``, ``,``,
brackets, ``_``) mixed with any Unicode, so the fuzz spends its time near the grammar's edges.
Also checks the one-grammar promise: text ``IovaRange.parse`` reads, ``RangeSet.parse`` reads
as the same single range.
"""

from __future__ import annotations

import pytest
from badinput import _ours
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from iommu_lab.core.enums import member_of
from iommu_lab.core.files import parse_toml
from iommu_lab.core.perm import Perm
from iommu_lab.core.ranges import U64_MAX, IovaRange, RangeSet, parse_address, parse_size, parse_u64
from iommu_lab.dma.iova import FlushPolicy

FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

GRAMMAR = ["0x", "0b", "0", "1", "9", "f", "F", "_", "K", "M", "G", "E", "iB", "B", "^", "**", "2", "-bit",
           " bits", "..", "+", ",", ";", "\n", "[", "]", "{", "}", " ", "-", ".", "99999999999", "ff" * 9,
           "\u0663", "\uff11", "\t", "r", "w", "x"]
grammar_text = st.lists(st.sampled_from(GRAMMAR) | st.text(max_size=3), max_size=14).map("".join)
any_value = grammar_text | st.text(max_size=40) | st.integers() | st.floats() | st.none() | st.booleans() \
    | st.binary(max_size=8)


def _only_ours(fn, value):
    try:
        return fn(value)
    except (ValueError, TypeError) as e:
        assert _ours(e), f"{fn.__name__}({value!r}) leaked {type(e).__name__}: {e}"
        assert len(str(e)) <= 600, f"{fn.__name__}({value!r}): message of {len(str(e))} characters"
        return None


@pytest.mark.parametrize(
    "reader",
    [parse_size, parse_address, parse_u64, lambda t: parse_u64(t, "x", base=16, underscores=False),
     IovaRange.parse, RangeSet.parse, Perm.parse, lambda t: member_of(FlushPolicy, t, "flush policy")],
    ids=["parse_size", "parse_address", "parse_u64", "parse_u64_hex", "IovaRange.parse", "RangeSet.parse",
         "Perm.parse", "member_of"],
)
@FUZZ
@given(value=any_value)
def test_readers_raise_only_our_errors(reader, value):
    _only_ours(reader, value)


@FUZZ
@given(text=grammar_text)
def test_sizes_and_addresses_stay_in_range(text):
    size = _only_ours(parse_size, text)
    assert size is None or 0 <= size <= 1 << 64
    addr = _only_ours(parse_address, text)
    assert addr is None or 0 <= addr <= U64_MAX


@FUZZ
@given(text=grammar_text)
def test_rangeset_reads_one_range_text_as_iovarange_does(text):
    r = _only_ours(IovaRange.parse, text)
    if r is not None:
        assert RangeSet.parse(text) == RangeSet([r]), text


TOML_BITS = ["[", "]", "{", "}", "a", " = ", "1", "'", '"', '"""', "'''", "\\", "#", "\n", ",", ".", "[[t]]\n",
             "x = [", "y = {z = ", "9" * 20]


@settings(max_examples=300, deadline=None)
@given(text=st.lists(st.sampled_from(TOML_BITS) | st.text(max_size=2), max_size=40).map("".join)
       | st.integers(0, 6000).map(lambda n: "a = " + "[" * n + "]" * n))
def test_toml_raises_only_our_errors_and_never_recurses_out(text):
    _only_ours(lambda t: parse_toml(t, what="fuzz file"), text)
