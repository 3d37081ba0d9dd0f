"""DataFrame helpers shared by every ``to_dataframe()``: 64-bit addresses stay exact.

A plain int64 column cannot hold addresses at or above 2**63, and a column with a missing
value silently becomes float64 and loses the low bits. Addresses therefore go into pandas'
nullable ``UInt64``; a column that holds 2**64 (the size of the whole space) keeps Python
ints in an ``object`` column rather than wrapping.

pandas is imported when the first frame is built, not with this module, so a caller that only
names ``addr_frame`` (the command line, before it knows whether a table is printed) pays nothing.
The ``df.il`` accessor is registered then too, or at import when pandas is already loaded.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any, Mapping, Sequence

if TYPE_CHECKING:
    import pandas as pd

_U64_LIMIT = 1 << 64
_accessor_registered = False


def _is_int_column(values: Sequence[Any]) -> bool:
    return all(v is None or (isinstance(v, int) and not isinstance(v, bool)) for v in values)


def addr_frame(columns: Mapping[str, Sequence[Any]], hex_columns: Sequence[str] | None = None) -> pd.DataFrame:
    """Build a DataFrame whose integer columns are ``UInt64`` (nullable) when they fit.

    Columns listed in ``hex_columns`` (default: every integer column) are recorded in
    ``df.attrs["hex_columns"]`` so that ``hex_style`` can format them for display.
    """
    import pandas as pd

    register_accessor()
    data: dict[str, Any] = {}
    int_cols = []
    for name, values in columns.items():
        values = list(values)
        if values and _is_int_column(values) and all(v is None or 0 <= v < _U64_LIMIT for v in values):
            data[name] = pd.array(values, dtype="UInt64")
            int_cols.append(name)
        elif not values:
            data[name] = pd.array([], dtype="UInt64")
            int_cols.append(name)
        else:
            data[name] = values
    df = pd.DataFrame(data)
    df.attrs["hex_columns"] = list(hex_columns) if hex_columns is not None else int_cols
    return df


def hex_style(df: pd.DataFrame):
    """A pandas Styler showing the frame's address columns in hex (``0x...``)."""
    import pandas as pd

    cols = [c for c in df.attrs.get("hex_columns", []) if c in df.columns]
    return df.style.format({c: (lambda v: "" if pd.isna(v) else f"{int(v):#x}") for c in cols})


class IommuLabAccessor:
    """``df.il.hex()``: display any iommu_lab frame with its address columns in hex.

    The frame keeps exact ``UInt64`` values for computation; only the Styler formats them.
    """

    def __init__(self, df: pd.DataFrame) -> None:
        self._df = df

    def hex(self):
        return hex_style(self._df)

    @property
    def hex_columns(self) -> list[str]:
        return [c for c in self._df.attrs.get("hex_columns", []) if c in self._df.columns]


def register_accessor() -> None:
    """Register ``df.il`` with pandas (once; imports pandas)."""
    global _accessor_registered
    if not _accessor_registered:
        import pandas as pd

        pd.api.extensions.register_dataframe_accessor("il")(IommuLabAccessor)
        _accessor_registered = True


if "pandas" in sys.modules:  # a module that builds frames itself imports this for ``df.il``
    register_accessor()
