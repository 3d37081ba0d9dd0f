"""Every importer's parser, fed arbitrary and mutated text: a result or one of our errors, with
the line number for file input. The whole module is bounded (a few seconds per parser)."""

from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from iommu_lab.io import (
    ParseError,
    parse_devtbl,
    parse_dmar_translation,
    parse_dmesg,
    parse_domain_translation,
    parse_group_listing,
    parse_iommu_regset,
    parse_register_reads,
    parse_reserved_regions,
)
from iommu_lab.io.detect import detect

DATA = Path(__file__).resolve().parent.parent / "data"
PARSERS = {
    parse_domain_translation: ["debugfs/domain_translation_struct", "debugfs/v6.7/abi-doc-split_domain_translation_struct",
                               "debugfs/v6.7/0000-00-02.0_domain_translation_struct"],
    parse_dmar_translation: ["debugfs/dmar_translation_struct"],
    parse_iommu_regset: ["debugfs/v6.7/iommu_regset"],
    parse_devtbl: ["amd/devtbl"],
    parse_register_reads: ["amd/mmio", "amd/capability"],
    parse_dmesg: ["dmesg/smmuv3.log", "dmesg/amd-4.x.log", "dmesg/intel-5.14+.log", "dmesg/smmuv2.log"],
    parse_group_listing: ["sysfs/listings/wiki-iommu_groups.txt", "sysfs/listings/find-iommu_groups.txt"],
    parse_reserved_regions: ["sysfs/intel-host/iommu_groups/1/reserved_regions"],
}
SAMPLES = [(p, (DATA / f).read_text()) for p, files in PARSERS.items() for f in files]
FUZZ = settings(max_examples=250, deadline=None, suppress_health_check=list(HealthCheck))


def _ours_only(parser, text):
    try:
        parser(text)
    except ParseError as e:
        assert e.line >= 0 and str(e).startswith(f"{e.source}:{e.line}:")
    except (ValueError, TypeError) as e:
        assert type(e).__module__.startswith("iommu_lab") or type(e) in (ValueError, TypeError), repr(e)


@FUZZ
@given(st.sampled_from(SAMPLES), st.integers(0, 10**6), st.integers(0, 10**6), st.text(max_size=12))
def test_a_fixture_cut_and_corrupted_anywhere_is_read_or_refused_with_a_line(sample, cut, at, junk):
    parser, text = sample
    cut %= len(text) + 1
    at %= len(text) + 1
    _ours_only(parser, text[:at] + junk + text[at:cut] if at < cut else text[:cut] + junk)


@FUZZ
@given(st.sampled_from(list(PARSERS)), st.text(alphabet=st.characters(codec="utf-8"), max_size=300))
def test_arbitrary_text_is_read_or_refused(parser, text):
    _ours_only(parser, text)
    assert detect(text) is None or detect(text).value


@FUZZ
@given(st.sampled_from(list(PARSERS)), st.binary(max_size=200))
def test_arbitrary_bytes_are_read_or_refused(parser, data):
    _ours_only(parser, data)
