"""Figure regression shared by the renderer tests: a fingerprint of what was drawn plus a
small thumbnail compared within a tolerance (robust to font and FreeType differences).

Re-record after an intended change with ``IOMMU_LAB_UPDATE_REFS=1`` and paste the printed values.
"""

from __future__ import annotations

import os

import pytest


def drawn_fingerprint(fig) -> str:
    """Font-independent digest of everything the figure's axes draw: collections (vertices,
    colours, hatches), patches (geometry, colours, hatches), texts (string, position), tick
    labels and legends."""
    import hashlib
    import json

    import numpy as np
    from matplotlib.colors import to_hex

    items = []
    for ax in fig.axes:
        for c in ax.collections:
            verts = [np.round(p.vertices, 5).tolist() for p in c.get_paths()]
            fc = [to_hex(x) for x in c.get_facecolor()] if len(c.get_facecolor()) else []
            arr = c.get_array()
            items.append(("coll", c.get_gid(), fc[:1] if arr is not None else fc, c.get_hatch() or "", verts,
                          None if arr is None else np.round(np.asarray(arr, dtype=float), 6).tolist()))
        for p in ax.patches:
            ext = np.round(p.get_path().transformed(p.get_patch_transform()).vertices, 5).tolist() \
                if p.get_gid() and not p.get_gid().endswith("arrow") else []
            items.append(("patch", p.get_gid(), to_hex(p.get_facecolor()), p.get_hatch() or "", ext))
        for t in ax.texts:
            x, y = t.get_position()
            items.append(("text", t.get_gid(), t.get_text(), round(float(x), 5), round(float(y), 5)))
        items.append(("ticks", [t.get_text() for t in ax.get_xticklabels()], [t.get_text() for t in ax.get_yticklabels()]))
        if ax.get_legend():
            items.append(("legend", [t.get_text() for t in ax.get_legend().get_texts()]))
    return hashlib.sha256(json.dumps(items, ensure_ascii=False).encode()).hexdigest()


def check_reference(name: str, fig, references: dict) -> None:
    """Compare with the stored (fingerprint, thumbnail); print the line to paste when missing
    or when IOMMU_LAB_UPDATE_REFS is set (as test_render_layout does)."""
    import numpy as np
    from test_render_layout import THUMB_TOLERANCE, thumb_hex, thumbnail

    fp, th = drawn_fingerprint(fig), thumbnail(fig)
    if os.environ.get("IOMMU_LAB_UPDATE_REFS") or name not in references:
        print(f'\n    "{name}": ("{fp}", "{thumb_hex(th)}"),')
        if name not in references:
            pytest.fail(f"no reference for {name!r}; paste the printed line into the references")
    ref_fp, ref_thumb = references[name]
    assert fp == ref_fp, "the drawn data changed (shapes, colours, hatches, texts, ticks or legend)"
    ref = np.frombuffer(bytes.fromhex(ref_thumb), dtype=np.uint8).reshape(16, 64) / 255
    diff = float(np.abs(ref - th).mean())
    assert diff <= THUMB_TOLERANCE, f"thumbnail differs by {diff * 255:.1f}/255 on average"
