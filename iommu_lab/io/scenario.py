"""Scenario files: a platform, devices and a sequence of IOAS operations, as TOML data.

A scenario is what a design review argues about ("attach the NIC, map 16 GiB of guest RAM at 0,
copy the doorbell page...") written down so it can be replayed, diffed and rendered. It is read
with ``tomllib`` and never executed: every value is data. Addresses are hex *strings*
(``"0xfee0_0000"``) because TOML integers are signed 64-bit and cannot hold IOVAs >= 2**63;
sizes may also be written ``"2M"``, ``"16G"`` (``parse_size``).

Example::

    platform = "intel-vtd-48"
    [[devices]]
    name = "nic0"                      # platform.device("nic0"), or give aperture/pgsizes/...
    [[ops]]
    op = "attach"
    device = "nic0"
    [[ops]]
    op = "map"
    iova = "0x10_0000"
    length = "2M"
    [[ops]]
    op = "walk"
    iova = "0x10_0000"

Operations: ``attach``/``detach`` (device), ``map`` (length, iova?, prot?, user_va?), ``unmap``
(iova, length), ``unmap_all``, ``copy`` (src_iova, length, iova?, prot? — within the IOAS),
``allow`` (ranges = [[start, last], ...]), ``reserve`` (start, last, owner?), ``huge_pages``
(enabled), ``walk`` (iova: the lookup and every domain's walk). ``Scenario.record(ioas)`` writes an IOAS's history back
as a scenario whose replay reproduces it (maps at the IOVAs they got).
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Union

from iommu_lab.core.errors import IommuError
from iommu_lab.core.ranges import U64_MAX, IovaRange, RangeSet, fmt_addr, parse_size
from iommu_lab.hardware.device import Device, ReservedRegion
from iommu_lab.hardware.platform import platforms
from iommu_lab.io.parse import read_bounded
from iommu_lab.iommufd.ioas import (
    IOAS,
    AllowOp,
    AttachOp,
    CopyOp,
    DetachOp,
    HugePagesOp,
    MapOp,
    ReserveOp,
    UnmapAllOp,
    UnmapOp,
)

__all__ = ["Scenario", "ScenarioError", "WalkResult", "ScenarioDiff", "diff"]


class ScenarioError(ValueError):
    """A scenario file that does not have the documented form: names the file, op index and key."""


_OPS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {  # op -> (required keys, optional keys)
    "attach": (("device",), ()),
    "detach": (("device",), ()),
    "map": (("length",), ("iova", "prot", "user_va")),
    "unmap": (("iova", "length"), ("expect_errno",)),
    "unmap_all": ((), ()),
    "copy": (("src_iova", "length"), ("iova", "prot")),
    "allow": (("ranges",), ()),
    "reserve": (("start", "last"), ("owner",)),
    "huge_pages": (("enabled",), ()),
    "walk": (("iova",), ()),
}
_TOP = {"platform", "semantics", "title", "devices", "ops"}
_DEVICE_KEYS = {"name", "platform", "aperture", "pgsizes", "reserved", "format"}


@dataclass(frozen=True)
class WalkResult:
    """What a ``walk`` step found: the IOAS lookup (area, reservation or free) and each domain's walk."""

    index: int
    iova: int
    lookup: Any

    def __str__(self) -> str:
        return f"op {self.index}: walk {fmt_addr(self.iova)}\n{self.lookup}"


@dataclass
class Scenario:
    """A replayable scenario: platform name, device descriptions and operations (plain dicts)."""

    platform: str | None = None
    devices: list[dict] = field(default_factory=list)
    ops: list[dict] = field(default_factory=list)
    semantics: str | None = None
    title: str | None = None
    source: str = "<scenario>"
    results: list[WalkResult] = field(default_factory=list, compare=False, repr=False)

    # -- reading -----------------------------------------------------------------------------
    @classmethod
    def load(cls, path: Union[str, os.PathLike]) -> "Scenario":
        """Read and check a scenario file (every op's keys and values) before anything runs."""
        p = Path(path)
        # A regular file of bounded size, checked before reading (a FIFO or /dev/zero is refused).
        raw = read_bounded(p, MAX_SCENARIO_BYTES)
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise ScenarioError(f"{p}: not UTF-8 text (the file looks binary)") from None
        depth = _nesting_depth(text)
        if depth > MAX_NESTING:
            raise ScenarioError(f"{p}: arrays or inline tables nested {depth} deep; a scenario needs at most "
                                f"{MAX_NESTING}")
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as e:
            raise ScenarioError(f"{p}: not valid TOML: {str(e)[:200]}") from None
        except RecursionError:
            raise ScenarioError(f"{p}: nested too deeply to read") from None
        return cls.from_dict(data, source=str(p))

    @classmethod
    def from_dict(cls, data: dict, *, source: str = "<scenario>") -> "Scenario":
        unknown = set(data) - _TOP
        if unknown:
            raise ScenarioError(f"{source}: unknown top-level key(s) {sorted(unknown)}; expected {sorted(_TOP)}")
        for key in ("devices", "ops"):
            if not isinstance(data.get(key, []), list):
                raise ScenarioError(f"{source}: {key}: expected an array of tables ([[{key}]])")
        sc = cls(platform=data.get("platform"), devices=list(data.get("devices", [])), ops=list(data.get("ops", [])),
                 semantics=data.get("semantics"), title=data.get("title"), source=source)
        sc._check()
        return sc

    def _err(self, where: str, msg: str) -> ScenarioError:
        return ScenarioError(f"{self.source}: {where}: {msg}")

    def _check(self) -> None:
        for key in ("platform", "semantics", "title"):
            v = getattr(self, key)
            if v is not None and not isinstance(v, str):
                raise self._err(key, f"expected a string, got {v!r}")
        if not isinstance(self.devices, list) or not isinstance(self.ops, list):
            raise self._err("devices/ops", "expected arrays of tables ([[devices]], [[ops]])")
        names = set()
        for i, d in enumerate(self.devices):
            if not isinstance(d, dict) or not isinstance(d.get("name"), str):
                raise self._err(f"devices[{i}]", "expected a table with a string 'name'")
            bad = set(d) - _DEVICE_KEYS
            if bad:
                raise self._err(f"devices[{i}]", f"unknown key(s) {sorted(bad)}; expected {sorted(_DEVICE_KEYS)}")
            names.add(d["name"])
        for i, op in enumerate(self.ops):
            where = f"ops[{i}]"
            if not isinstance(op, dict) or op.get("op") not in _OPS:
                raise self._err(where, f"key 'op' must be one of {', '.join(_OPS)}; got {op.get('op') if isinstance(op, dict) else op!r}")
            required, optional = _OPS[op["op"]]
            for k in required:
                if k not in op:
                    raise self._err(where, f"{op['op']} needs key {k!r}")
            bad = set(op) - set(required) - set(optional) - {"op"}
            if bad:
                raise self._err(where, f"{op['op']} does not take key(s) {sorted(bad)}; it takes {list(required + optional)}")
            if "device" in op and (not isinstance(op["device"], str) or op["device"] not in names):
                raise self._err(f"{where}.device", f"{op['device']!r} is not declared in [[devices]] ({sorted(names) or 'none'})")
            for k in ("iova", "length", "src_iova", "start", "last", "user_va"):
                if k in op:
                    self._num(op[k], f"{where}.{k}")
            if "ranges" in op:
                self._ranges(op["ranges"], f"{where}.ranges")
            if "enabled" in op and not isinstance(op["enabled"], bool):
                raise self._err(f"{where}.enabled", f"expected true or false, got {op['enabled']!r}")
            for k in ("prot", "owner", "expect_errno"):
                if k in op and not isinstance(op[k], str):
                    raise self._err(f"{where}.{k}", f"expected a string, got {op[k]!r}")

    def _num(self, value: Any, where: str) -> int:
        if isinstance(value, bool):
            raise self._err(where, f"expected a hex string or size, got {value!r}")
        try:
            n = parse_size(value) if isinstance(value, (str, int)) else None
        except (ValueError, TypeError, IommuError):
            n = None
        if n is None or not 0 <= n <= U64_MAX:
            raise self._err(where, f"expected a 64-bit address or size such as \"0x1000\" or \"2M\", got {value!r}")
        return n

    def _ranges(self, value: Any, where: str) -> list[IovaRange]:
        if not isinstance(value, list):
            raise self._err(where, "expected [[start, last], ...]")
        out = []
        for j, r in enumerate(value):
            if not isinstance(r, list) or len(r) != 2:
                raise self._err(f"{where}[{j}]", "expected [start, last] (inclusive last)")
            a, b = self._num(r[0], f"{where}[{j}]"), self._num(r[1], f"{where}[{j}]")
            if a > b:
                raise self._err(f"{where}[{j}]", "start must be <= last")
            out.append(IovaRange(a, b))
        return out

    # -- replay ------------------------------------------------------------------------------
    def _platform(self, name: str | None, where: str):

        try:
            return platforms.get(name)
        except (IommuError, KeyError, LookupError) as e:
            raise self._err(where, str(e).strip("'\"")) from None

    def _device(self, i: int, d: dict) -> Device:
        where = f"devices[{i}]"
        pname = d.get("platform", self.platform)
        explicit = {k for k in d if k not in ("name", "platform")}
        if pname is not None and not explicit:
            return self._platform(pname, f"{where}.platform").device(d["name"])
        kw: dict[str, Any] = {}
        if "aperture" in d:
            kw["aperture"] = tuple(self._ranges(d["aperture"], f"{where}.aperture"))
        if "pgsizes" in d:
            kw["pgsizes"] = self._num(d["pgsizes"], f"{where}.pgsizes")
        if "reserved" in d:
            regions = []
            for j, r in enumerate(d["reserved"] if isinstance(d["reserved"], list) else [None]):
                if not isinstance(r, dict) or set(r) - {"start", "last", "type"} or not {"start", "last"} <= set(r):
                    raise self._err(f"{where}.reserved[{j}]", "expected {start, last, type}")
                try:
                    regions.append(ReservedRegion(self._num(r["start"], f"{where}.reserved[{j}].start"),
                                                  self._num(r["last"], f"{where}.reserved[{j}].last"), r.get("type", "reserved")))
                except (ValueError, IommuError) as e:
                    raise self._err(f"{where}.reserved[{j}]", str(e)) from None
            kw["reserved"] = tuple(regions)
        if "format" in d:
            kw["format"] = d["format"]
        try:
            return Device(d["name"], platform=pname, **kw)
        except (ValueError, TypeError, IommuError) as e:
            raise self._err(where, str(e)) from None

    def replay(self) -> IOAS:
        """Run the operations on a fresh IOAS; ``walk`` steps land in ``self.results``.

        A failing operation raises ``ScenarioError`` naming the op index and the kernel's errno.
        """
        kw = {"semantics": self.semantics} if self.semantics else {}
        try:
            ioas = IOAS(**kw)
        except (ValueError, IommuError) as e:
            raise self._err("semantics", str(e)) from None
        devices = {d["name"]: self._device(i, d) for i, d in enumerate(self.devices)}
        if self.platform is not None:
            ioas._platform = self._platform(self.platform, "platform")
            if not self.devices:
                ioas.attach(ioas._platform.device())
        results = []
        for i, op in enumerate(self.ops):
            where = f"ops[{i}] ({op['op']})"
            n = lambda k: self._num(op[k], f"ops[{i}].{k}") if op.get(k) is not None else None  # noqa: E731
            try:
                kind = op["op"]
                if kind == "attach":
                    ioas.attach(devices[op["device"]])
                elif kind == "detach":
                    ioas.detach(devices[op["device"]])
                elif kind == "map":
                    ioas.map(n("length"), n("iova"), user_va=n("user_va"), prot=op.get("prot", "rw"))
                elif kind == "unmap":
                    expect = op.get("expect_errno")
                    try:
                        ioas.unmap(n("iova"), n("length"))
                    except IommuError as e:
                        if e.errno != expect:
                            raise
                    else:
                        if expect:
                            raise self._err(where, f"expected {expect} but the unmap succeeded")
                elif kind == "unmap_all":
                    ioas.unmap_all()
                elif kind == "copy":
                    ioas.copy(ioas, n("src_iova"), n("length"), n("iova"), prot=op.get("prot", "rw"))
                elif kind == "allow":
                    ioas.allow_iovas(self._ranges(op["ranges"], f"ops[{i}].ranges"))
                elif kind == "reserve":
                    ioas.reserve(IovaRange(n("start"), n("last")), owner=op.get("owner"))
                elif kind == "huge_pages":
                    ioas.set_huge_pages(bool(op["enabled"]))
                elif kind == "walk":
                    results.append(WalkResult(i, n("iova"), ioas.lookup(n("iova"))))
            except IommuError as e:
                raise self._err(where, str(e)) from None
            except (ValueError, TypeError) as e:
                if isinstance(e, ScenarioError):
                    raise
                raise self._err(where, str(e)) from None
        self.results = results
        return ioas

    # -- writing -----------------------------------------------------------------------------
    @classmethod
    def record(cls, ioas: IOAS, *, platform: str | None = None) -> "Scenario":
        """A scenario from ``ioas.history`` whose replay gives the same layout (maps at their IOVAs)."""
        devices: dict[str, dict] = {}
        ops: list[dict] = []
        for op in ioas.history:
            if isinstance(op, (AttachOp, DetachOp)):
                d = op.device
                devices.setdefault(d.name, _device_dict(d))
                ops.append({"op": op.op, "device": d.name})
            elif isinstance(op, MapOp):
                rec = {"op": "map", "iova": _hex(op.result), "length": _hex(op.length), "prot": str(op.prot)}
                if op.user_va is not None:
                    rec["user_va"] = _hex(op.user_va)
                ops.append(rec)
            elif isinstance(op, UnmapOp):
                rec = {"op": "unmap", "iova": _hex(op.iova), "length": _hex(op.length)}
                if op.errno:
                    rec["expect_errno"] = op.errno
                ops.append(rec)
            elif isinstance(op, UnmapAllOp):
                ops.append({"op": "unmap_all"})
            elif isinstance(op, CopyOp):
                if op.src is not None:
                    raise ScenarioError(f"cannot record {op!r}: a copy from another IOAS is not a one-IOAS scenario")
                ops.append({"op": "copy", "src_iova": _hex(op.src_iova), "length": _hex(op.length),
                            "iova": _hex(op.result), "prot": str(op.prot)})
            elif isinstance(op, AllowOp):
                ops.append({"op": "allow", "ranges": [[_hex(r.start), _hex(r.last)] for r in op.ranges]})
            elif isinstance(op, ReserveOp):
                rec = {"op": "reserve", "start": _hex(op.start), "last": _hex(op.last)}
                if op.owner is not None:
                    rec["owner"] = op.owner
                ops.append(rec)
            elif isinstance(op, HugePagesOp):
                ops.append({"op": "huge_pages", "enabled": bool(op.enabled)})
            else:
                raise ScenarioError(f"cannot record {op!r} in a scenario file")
        sem = ioas.semantics.value if hasattr(ioas.semantics, "value") else str(ioas.semantics)
        plat = platform or (ioas._platform.name if getattr(ioas, "_platform", None) is not None else None)
        return cls(platform=plat, devices=list(devices.values()), ops=ops,
                   semantics=None if sem == "iommufd" else sem, source="<recorded>")

    def dumps(self) -> str:
        """The scenario as TOML text (addresses as hex strings)."""
        lines = []
        for key in ("title", "platform", "semantics"):
            v = getattr(self, key)
            if v is not None:
                lines.append(f"{key} = {_toml(v)}")
        for d in self.devices:
            lines += ["", "[[devices]]"] + [f"{k} = {_toml(v)}" for k, v in d.items()]
        for op in self.ops:
            lines += ["", "[[ops]]"] + [f"{k} = {_toml(v)}" for k, v in op.items()]
        return "\n".join(lines) + "\n"

    def dump(self, path: Union[str, os.PathLike]) -> None:
        Path(path).write_text(self.dumps(), encoding="utf-8")


def _hex(v: int) -> str:
    return f"{int(v):#x}"


def _toml(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return _toml(_hex(v))
    if isinstance(v, str):
        return '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_toml(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{ " + ", ".join(f"{k} = {_toml(x)}" for k, x in v.items()) + " }"
    raise TypeError(f"cannot write {v!r} to a scenario file")


def _device_dict(d: Device) -> dict:
    if d.platform is not None:
        from iommu_lab.hardware.platform import platforms

        try:
            if platforms.get(d.platform).device(d.name) == d:
                return {"name": d.name, "platform": d.platform}
        except (IommuError, KeyError, LookupError):
            pass
    aperture = d.aperture if isinstance(d.aperture, (tuple, list, RangeSet)) else (d.aperture,)
    out: dict[str, Any] = {"name": d.name, "aperture": [[_hex(r.start), _hex(r.last)] for r in aperture],
                           "pgsizes": _hex(d.pgsizes),
                           "reserved": [{"start": _hex(r.start), "last": _hex(r.last), "type": r.type.value} for r in d.reserved]}
    if d.format is not None:
        out["format"] = d.format
    return out


# -- diff -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ScenarioDiff:
    """How two scenarios' resulting layouts differ: areas, reservations and usable IOVA ranges."""

    areas_added: tuple[tuple[int, int, str], ...]  #: (iova, length, prot) only in b
    areas_removed: tuple[tuple[int, int, str], ...]  #: only in a
    reserved_added: tuple[tuple[int, int, str], ...]  #: (start, last, why) only in b
    reserved_removed: tuple[tuple[int, int, str], ...]
    ranges_gained: RangeSet  #: usable in b, not in a
    ranges_lost: RangeSet

    @property
    def empty(self) -> bool:
        return not (self.areas_added or self.areas_removed or self.reserved_added or self.reserved_removed
                    or list(self.ranges_gained) or list(self.ranges_lost))

    def rows(self) -> list[tuple[str, str, int, int, str]]:
        out = []
        for what, change, items in (("area", "+", self.areas_added), ("area", "-", self.areas_removed)):
            out += [(what, change, a, a + n - 1, p) for a, n, p in items]
        for what, change, items in (("reserved", "+", self.reserved_added), ("reserved", "-", self.reserved_removed)):
            out += [(what, change, s, e, w) for s, e, w in items]
        out += [("iova_range", "+", r.start, r.last, "") for r in self.ranges_gained]
        out += [("iova_range", "-", r.start, r.last, "") for r in self.ranges_lost]
        return out

    def to_dataframe(self):
        from iommu_lab.core.frames import addr_frame

        rows = self.rows()
        return addr_frame({"what": [r[0] for r in rows], "change": [r[1] for r in rows], "start": [r[2] for r in rows],
                           "last": [r[3] for r in rows], "detail": [r[4] for r in rows]}, hex_columns=["start", "last"])

    def __str__(self) -> str:
        if self.empty:
            return "no difference"
        return "\n".join(f"{c} {w:10s} {IovaRange(s, e)} {d}".rstrip() for w, c, s, e, d in self.rows())


def _layout(ioas: IOAS):
    areas = {(a.iova, a.length, ("r" if a.prot & 1 else "-") + ("w" if a.prot & 2 else "-")) for a in ioas.areas}
    resv = {(r.start, r.last, r.type.value if r.type is not None else r.kind) for r in ioas.reserved}
    return areas, resv, ioas.iova_ranges()


def diff(a: Union[Scenario, IOAS], b: Union[Scenario, IOAS]) -> ScenarioDiff:
    """Compare the layouts two scenarios (or IOASes) end in."""
    la = _layout(a.replay() if isinstance(a, Scenario) else a)
    lb = _layout(b.replay() if isinstance(b, Scenario) else b)
    return ScenarioDiff(tuple(sorted(lb[0] - la[0])), tuple(sorted(la[0] - lb[0])),
                        tuple(sorted(lb[1] - la[1])), tuple(sorted(la[1] - lb[1])),
                        lb[2].difference(la[2]), la[2].difference(lb[2]))
MAX_SCENARIO_BYTES = 1 << 20
MAX_NESTING = 32


def _nesting_depth(text: str) -> int:
    """The deepest ``[``/``{`` nesting outside strings and comments (a bound before tomllib recurses)."""
    depth = best = 0
    quote = None
    comment = False
    for ch in text:
        if comment:
            comment = ch != "\n"
        elif quote:
            if ch == quote:
                quote = None
        elif ch in "\"'":
            quote = ch
        elif ch == "#":
            comment = True
        elif ch in "[{":
            depth += 1
            best = max(best, depth)
        elif ch in "]}":
            depth = max(0, depth - 1)
    return best


