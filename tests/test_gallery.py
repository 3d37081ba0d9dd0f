"""The gallery writes every kind of figure in light and dark, as SVG and PNG, and SVG bytes are
the same from run to run (python -m iommu_lab.gallery)."""

from __future__ import annotations

from iommu_lab import gallery

KINDS = {"layout", "walk", "nested", "pagetable", "compare", "replay", "whatif"}


def test_the_gallery_holds_every_kind_of_figure():
    assert KINDS <= set(gallery.kinds())


def test_renderer_modules_that_add_kinds_are_registered_by_one_line_each():
    import importlib

    for module, func in gallery.KINDS:
        mod = importlib.import_module(module)
        assert callable(getattr(mod, func)), (module, func)


def _first_of_each_kind() -> list[str]:
    firsts = {}
    for name in gallery.ENTRIES:
        firsts.setdefault(gallery.kind_of(name), name)
    return list(firsts.values())


def test_every_kind_is_written_in_light_and_dark_as_svg_and_png(tmp_path):
    names = _first_of_each_kind()
    written = gallery.write(tmp_path, names=names)
    assert len(written) == len(names) * 2 * 2
    got = {p.name for p in written}
    for name in names:
        for st in ("light", "dark"):
            assert f"{name}-{st}.svg" in got and f"{name}-{st}.png" in got
    for p in written:
        assert p.stat().st_size > 1000, p


def test_svg_is_byte_stable_across_two_runs(tmp_path):
    names = _first_of_each_kind()
    a = gallery.write(tmp_path / "a", names=names, formats=(".svg",), styles=("dark",))
    b = gallery.write(tmp_path / "b", names=names, formats=(".svg",), styles=("dark",))
    assert [p.read_bytes() for p in a] == [p.read_bytes() for p in b]


def test_list_names_every_entry(capsys):
    assert gallery.main(["--list", "unused"]) == 0
    assert capsys.readouterr().out.split() == list(gallery.ENTRIES)
