"""IOMMU fault lines from a kernel log, every era: Intel DMAR, AMD-Vi, Arm SMMUv3 and SMMUv2.

Each fault becomes a :class:`FaultRecord`: the device (PCI BDF or SMMU stream id), PASID,
address, access, the vendor's reason code with the kernel's own text for it
(:mod:`iommu_lab.hardware.faults`), and the same :class:`~iommu_lab.core.faults.FaultKind` our
walks produce. Lines that are not IOMMU faults are skipped (a whole ``dmesg`` is fine); a line
that starts like a fault but does not finish like one is a :class:`ParseError` naming it.

Line forms, as the drivers print them:

* **Intel** (drivers/iommu/intel/dmar.c ``dmar_fault_do_one``, prefix ``DMAR: ``):
  before v5.1 ``[DMA Read] Request device [bb:dd.f] fault addr <hex> [fault reason NN] <text>``
  with NN a *decimal* ``%02d``; v5.1–v5.11 the same with ``PASID <hex>`` (ffffffff = none)
  before ``fault addr``; v5.12–v5.13 ``[DMA Read NO_PASID]`` / ``[DMA Read PASID 0x..]`` with
  ``0x`` on the BDF parts, the address and a hex reason; v5.14+ the same without ``0x`` on the
  BDF. ``[INTR-REMAP] ... fault index <hex>`` lines are interrupt-remapping faults.
* **AMD** (drivers/iommu/amd/iommu.c ``iommu_print_event`` / ``amd_iommu_report_page_fault``,
  prefix ``AMD-Vi: ``): ``Event logged [IO_PAGE_FAULT device=bb:dd.f domain=0x.... address=0x...
  flags=0x....]``; some v4.x kernels print ``Event logged [`` and the event on two lines; since
  ~v5.x a known device is named by the driver prefix (``vfio-pci 0000:01:00.0: AMD-Vi: ...``)
  and ``device=`` is dropped; the unknown-device form gained a segment (~v5.19). Other events use
  the same bracket form with their own names.
* **Arm SMMUv3** (arm-smmu-v3.c ``arm_smmu_evtq_thread`` / ``arm_smmu_dump_event``):
  ``event 0x.. received:`` then four raw 64-bit words, decoded here by ``EVTQ_*`` fields; newer
  kernels add ``event: NAME client: DEV sid: .. ssid: .. iova: .. ipa: ..`` and an access line.
* **Arm SMMUv2** (arm-smmu.c ``arm_smmu_context_fault``): ``Unhandled context fault: fsr=0x..,
  iova=0x.., fsynr=0x.., cbfrsynra=0x.., cb=N``; newer kernels add ``FSR = ..`` / ``FSYNR0 = ..``.

Journal and syslog prefixes, ``dmesg -T``/``-x`` prefixes and ``N callbacks suppressed`` lines are
tolerated; the suppressed counts are kept (:attr:`FaultLog.suppressed`).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from typing import Union

from iommu_lab.core import display
from iommu_lab.core.faults import FaultKind
from iommu_lab.hardware.faults import (
    AMD_EVENT_FLAGS,
    AMD_EVENT_MEANING,
    SMMU_CLASS_TEXT,
    SMMU_EVENT_NAMES,
    SMMUV2_FSR_BITS,
    SMMUV2_FSYNR0_BITS,
    amd_page_fault_kind,
    vtd_reason,
)
from iommu_lab.io.parse import ParseError, decode_text, read_bounded

__all__ = ["FaultRecord", "FaultLog", "parse_dmesg", "read_dmesg", "looks_like_dmesg", "strip_prefix", "MAX_FILE"]

MAX_FILE = 1 << 24
MAX_LINE = 4096

_PREFIX = re.compile(
    r"^(?:<\d{1,3}>)?"  # dmesg -r level
    r"(?:[a-z]+\s*:\s*[a-z]+\s*:\s*)?"  # dmesg -x facility:level
    r"(?:(?:[A-Z][a-z]{2}\s+\d{1,2}\s+\d\d:\d\d:\d\d|\d{4}-\d\d-\d\dT\S+)\s+\S+\s+kernel:\s*)?"  # syslog/journal
    r"(?:\[\s*(?P<t>\d{1,10}\.\d{1,9})\]\s*|\[[A-Z][a-z]{2} [^\]]{10,40}\]\s*)?"  # [ 12.34] or dmesg -T
)
_SUPPRESSED = re.compile(r"^(?:\S+: )?(\w+): (\d{1,9}) callbacks suppressed$")
_BDF = r"(?:[0-9a-fA-F]{4}:)?(?:0x)?[0-9a-fA-F]{1,2}:(?:0x)?[0-9a-fA-F]{1,2}\.[0-7]"
_INTEL = re.compile(
    r"^(?:DMAR: )?\[(?P<type>DMA Read|DMA Write|INTR-REMAP)(?: (?P<pf>NO_PASID|PASID (?P<pasid2>0x[0-9a-fA-F]{1,8})))?\] "
    r"Request device \[(?P<bdf>" + _BDF + r")\] (?:PASID (?P<pasid1>[0-9a-fA-F]{1,8}) )?"
    r"fault (?P<what>addr|index) (?P<addr>(?:0x)?[0-9a-fA-F]{1,16}) "
    r"\[fault reason (?P<reason>(?:0x)?[0-9a-fA-F]{1,3})\] ?(?P<text>.*)$")
_INTEL_START = re.compile(r"^(?:DMAR: )?\[(?:DMA Read|DMA Write|INTR-REMAP)")
_AMD = re.compile(r"^(?:(?P<drv>\S+) (?P<dev>\S+): )?AMD-Vi: Event logged \[(?P<body>.*)\]$")
_AMD_START = re.compile(r"^(?:\S+ \S+: )?AMD-Vi: Event logged \[")
_AMD_KV = re.compile(r"([A-Za-z_]+(?:\[\d\])?)=([0-9a-fA-Fx:.]+),?")
_DEVNAME = re.compile(r"^(?:[0-9a-fA-F]{4}:)?[0-9a-fA-F]{2}:[0-9a-fA-F]{2}\.[0-7]$")
_SMMU = re.compile(r"^(?P<drv>arm-smmu(?:-v3)?|arm_smmu(?:_v3)?) (?P<dev>\S+): (?P<msg>.*)$")
_SMMU3_EVENT = re.compile(r"^event 0x(?P<id>[0-9a-fA-F]{2}) received:$")
_SMMU3_WORD = re.compile(r"^\s*0x(?P<w>[0-9a-fA-F]{16})$")
_SMMU3_DECODED = re.compile(r"^event: (?P<name>\S+) client: (?P<client>.+?) sid: (?P<sid>0x[0-9a-fA-F]+|0)")
_SMMU2 = re.compile(r"^Unhandled context fault: fsr=(?P<fsr>0x[0-9a-fA-F]{1,8}), iova=(?P<iova>0x[0-9a-fA-F]{1,16}), "
                    r"fsynr=(?P<fsynr>0x[0-9a-fA-F]{1,8}), cbfrsynra=(?P<cbfrsynra>0x[0-9a-fA-F]{1,8}), cb=(?P<cb>\d{1,3})")


@dataclass(frozen=True)
class FaultRecord:
    """One logged IOMMU fault, decoded.

    ``code`` is the vendor's number (VT-d fault reason, AMD event type, SMMUv3 event id, SMMUv2
    FSR); ``reason`` its name or the kernel's text for it; ``kind`` the vendor-neutral class our
    walks report (None for events that are not translation faults, e.g. a TLB conflict).
    """

    vendor: str  #: "vtd", "amd", "smmuv3" or "smmuv2"
    device: str | None  #: PCI device (SSSS:BB:DD.F) where the log names one
    stream_id: int | None
    pasid: int | None
    address: int | None
    access: str | None  #: "read", "write" or None
    code: int | None
    reason: str
    meaning: str
    kind: FaultKind | None
    interrupt: bool = False
    flags: int | None = None  #: AMD event flags
    domain: int | None = None
    stage: int | None = None  #: SMMU: 1 or 2
    time: float | None = None  #: seconds since boot, where the log has a timestamp
    line: int = 0
    text: str = ""

    def __str__(self) -> str:
        who = self.device or (f"sid {self.stream_id:#x}" if self.stream_id is not None else "unknown device")
        pasid = f" pasid {self.pasid:#x}" if self.pasid is not None else ""
        addr = f" at {self.address:#x}" if self.address is not None else ""
        kind = self.kind.value if self.kind else "event"
        return f"{self.vendor} {who}{pasid}: {self.access or ''} {kind} fault{addr}: {self.reason} — {self.meaning}".replace("  ", " ")


class FaultLog(tuple):
    """The fault records of one log, in order, plus the ratelimit counts it printed."""

    suppressed: dict[str, int]
    plot = display.plot

    def __new__(cls, records, suppressed=None):
        self = super().__new__(cls, records)
        self.suppressed = dict(suppressed or {})
        return self

    def to_dataframe(self):
        """One row per fault: device, PASID, address, access, vendor code, reason, kind, time."""
        from iommu_lab.core.frames import addr_frame

        cols = {k: [] for k in ("time", "vendor", "device", "stream_id", "pasid", "address", "access", "code",
                                "reason", "kind", "line")}
        for r in self:
            for k in cols:
                v = getattr(r, k)
                cols[k].append(v.value if isinstance(v, FaultKind) else v)
        return addr_frame(cols, hex_columns=["address"])

    def counts(self, *, bucket: float | None = None):
        """Faults counted per device, reason and (when ``bucket`` seconds is given) time bucket."""
        import pandas as pd

        df = self.to_dataframe()
        df["who"] = [r.device or (f"sid {r.stream_id:#x}" if r.stream_id is not None else "?") for r in self]
        keys = ["who", "vendor", "reason"]
        if bucket is not None:
            if not (isinstance(bucket, (int, float)) and 0 < bucket < 1e9):
                raise ValueError(f"bucket {bucket!r} is not a positive number of seconds")
            df["from_s"] = [None if r.time is None else (r.time // bucket) * bucket for r in self]
            keys.append("from_s")
        if df.empty:
            return pd.DataFrame(columns=keys + ["faults"])
        return df.groupby(keys, dropna=False).size().reset_index(name="faults")


def strip_prefix(line: str) -> tuple[str, float | None]:
    """The message of a log line without its syslog / journal / dmesg prefixes, and its time."""
    m = _PREFIX.match(line)
    t = float(m.group("t")) if m and m.group("t") else None
    return line[m.end():].strip() if m else line.strip(), t


def _bdf(text: str) -> str:
    """``bb:dd.f`` (optionally ``0x``-prefixed parts, optionally with a segment) as SSSS:BB:DD.F."""
    t = text.replace("0x", "")
    seg = "0000"
    if t.count(":") == 2:
        seg, t = t.split(":", 1)
    bus, rest = t.split(":")
    dev, fn = rest.split(".")
    return f"{int(seg, 16):04x}:{int(bus, 16):02x}:{int(dev, 16):02x}.{int(fn)}"


def _num(token: str, *, decimal: bool = False) -> int:
    if decimal and not token.startswith("0x"):
        return int(token, 10)
    return int(token[2:] if token.startswith("0x") else token, 16)


def _intel(m: re.Match, t, number, line) -> FaultRecord:
    hex_reason = m.group("reason").startswith("0x")
    code = _num(m.group("reason"), decimal=not hex_reason)
    text, kind, interrupt = vtd_reason(code)
    pasid = None
    if m.group("pasid2"):
        pasid = _num(m.group("pasid2"))
    elif m.group("pasid1") and int(m.group("pasid1"), 16) != 0xFFFFFFFF:
        pasid = int(m.group("pasid1"), 16)
    typ = m.group("type")
    intr = typ == "INTR-REMAP" or m.group("what") == "index"
    access = None if intr else ("read" if typ == "DMA Read" else "write")
    addr = _num(m.group("addr"))
    return FaultRecord("vtd", _bdf(m.group("bdf")), None, pasid, None if intr else addr, access, code,
                       f"{code:#04x}", text, kind, intr or interrupt, None, None, None, t, number, line)


def _amd(body: str, dev_prefix: str | None, t, number, line, source) -> FaultRecord:
    words = body.split(None, 1)
    if not words:
        raise ParseError(source, number, line, "an AMD-Vi event name inside 'Event logged [...]'")
    name = words[0]
    kv = dict(_AMD_KV.findall(words[1] if len(words) > 1 else ""))
    try:
        device = _bdf(kv["device"]) if "device" in kv else (_bdf(dev_prefix) if dev_prefix and _DEVNAME.match(dev_prefix) else None)
        address = _num(kv["address"]) if "address" in kv else None
        flags = _num(kv["flags"]) if "flags" in kv else None
        domain = _num(kv["domain"]) if "domain" in kv else None
        pasid = _num(kv["pasid"]) if "pasid" in kv else None
    except (ValueError, IndexError):
        raise ParseError(source, number, line, "key=value fields 'device=bb:dd.f domain=0x.. address=0x.. flags=0x..'") from None
    if address is not None and address >> 64:
        raise ParseError(source, number, line, "an address of at most 64 bits")
    meaning, kind = AMD_EVENT_MEANING.get(name, ("an event this table does not describe", None))
    access = None
    if name == "IO_PAGE_FAULT":
        if flags is None:
            raise ParseError(source, number, line, "an IO_PAGE_FAULT with flags=0x.... (EVENT_FLAG_*)")
        kind = amd_page_fault_kind(flags)
        access = "write" if flags & AMD_EVENT_FLAGS["RW"] else "read"
        set_flags = [n for n, b in AMD_EVENT_FLAGS.items() if flags & b]
        meaning = (f"flags {'|'.join(set_flags) or 'none'}: " +
                   {FaultKind.TRANSLATION: "no valid translation (PR clear)", FaultKind.PERMISSION:
                    "a present entry denied the access (PR/PE)", FaultKind.RESERVED:
                    "reserved bits set in a table entry (RZ)"}[kind] +
                   ("; an ATS translation request (TR)" if flags & AMD_EVENT_FLAGS["TR"] else ""))
    return FaultRecord("amd", device, None, pasid, address, access, None, name, meaning, kind, False, flags, domain,
                       None, t, number, line)


def _smmu3(event_id: int, words: list[int], smmu: str, t, number, text) -> FaultRecord:
    name, kind = SMMU_EVENT_NAMES.get(event_id, ("UNKNOWN", None))
    w0, w1, w2, w3 = words
    sid = w0 >> 32
    ssv = bool(w0 >> 11 & 1)
    ssid = (w0 >> 12) & 0xFFFFF if ssv else None
    translation = event_id in (0x10, 0x11, 0x12, 0x13)
    read = bool(w1 >> 35 & 1)
    s2 = bool(w1 >> 39 & 1)
    klass = (w1 >> 40) & 3
    meaning = f"{'stage 2' if s2 else 'stage 1'}, {SMMU_CLASS_TEXT[klass]}" if translation else name
    address = w2 if translation else (w3 & ((1 << 52) - 8) if event_id in (0x03, 0x09, 0x25) else None)
    return FaultRecord("smmuv3", None, sid, ssid, address, ("read" if read else "write") if translation else None,
                       event_id, name, meaning, kind, False, None, None, (2 if s2 else 1) if translation else None,
                       t, number, text)


def _smmu2(m: re.Match, t, number, line) -> FaultRecord:
    fsr, fsynr, cbfrsynra = (int(m.group(k), 16) for k in ("fsr", "fsynr", "cbfrsynra"))
    iova = int(m.group("iova"), 16)
    set_bits = [n for n, (b, _d, _k) in SMMUV2_FSR_BITS.items() if fsr >> b & 1]
    kinds = [SMMUV2_FSR_BITS[n][2] for n in set_bits if SMMUV2_FSR_BITS[n][2] is not None]
    meaning = "; ".join(SMMUV2_FSR_BITS[n][1] for n in set_bits) or "no fault bit set"
    write = bool(fsynr >> SMMUV2_FSYNR0_BITS["WNR"] & 1)
    return FaultRecord("smmuv2", None, cbfrsynra & 0xFFFF, None, iova, "write" if write else "read", fsr,
                       "|".join(set_bits) or f"fsr={fsr:#x}", meaning + f" (context bank {m.group('cb')})",
                       kinds[0] if kinds else None, False, None, None, None, t, number, line)


def looks_like_dmesg(lines: list[str]) -> bool:
    """Whether any of these lines is an IOMMU fault line or a fault preamble."""
    for ln in lines:
        msg, _t = strip_prefix(ln)
        if (_INTEL_START.match(msg) or "DMAR: DRHD: handling fault" in msg or _AMD_START.match(msg)
                or msg.endswith("AMD-Vi: Event logged [") or _SUPPRESSED.match(msg)):
            return True
        s = _SMMU.match(msg)
        if s and (_SMMU3_EVENT.match(s.group("msg")) or s.group("msg").startswith("Unhandled context fault")):
            return True
    return False


def parse_dmesg(text: Union[str, bytes], *, source: str = "dmesg") -> FaultLog:
    """Every IOMMU fault in a kernel log, in order (see the module docstring for the forms).

    Raises
    ------
    ParseError
        For a fault line cut short or malformed, or an SMMUv3 event without its four words.
    """
    if isinstance(text, (bytes, bytearray)):
        text = bytes(text).decode("utf-8", "replace") if len(text) <= MAX_FILE else text
    text = decode_text(text, source, MAX_FILE)
    records: list[FaultRecord] = []
    suppressed: dict[str, int] = {}
    pending_amd = None  # (line number, time, dev prefix) after a bare "Event logged ["
    pending_smmu = None  # [smmu, id, words, line, time, text]
    smmu_last: dict[str, int] = {}  # smmu device -> index of its last v3 record (for the decoded line)
    for number, raw in enumerate(text.split("\n"), start=1):
        raw = raw.rstrip("\r")
        if len(raw) > MAX_LINE:
            raise ParseError(source, number, raw, f"a log line of at most {MAX_LINE} characters")
        msg, t = strip_prefix(raw)
        if not msg:
            continue
        if pending_smmu is not None:
            s = _SMMU.match(msg)
            w = _SMMU3_WORD.match(s.group("msg")) if s and s.group("dev") == pending_smmu[0] else None
            if w is None:
                raise ParseError(source, number, raw, f"raw event word {len(pending_smmu[2]) + 1} of 4 of the SMMUv3 event at "
                                                      f"line {pending_smmu[3]} ('\\t0x<16 hex digits>')")
            pending_smmu[2].append(int(w.group("w"), 16))
            if len(pending_smmu[2]) == 4:
                smmu, eid, words, line0, t0, text0 = pending_smmu
                smmu_last[smmu] = len(records)
                records.append(_smmu3(eid, words, smmu, t0, line0, text0))
                pending_smmu = None
            continue
        if pending_amd is not None:
            line0, t0, dev = pending_amd
            pending_amd = None
            if not msg.endswith("]"):
                raise ParseError(source, number, raw, f"the AMD-Vi event continuing line {line0}, ending in ']'")
            records.append(_amd(msg[:-1], dev, t0, line0, raw, source))
            continue
        m = _SUPPRESSED.match(msg)
        if m:
            suppressed[m.group(1)] = suppressed.get(m.group(1), 0) + int(m.group(2))
            continue
        if _INTEL_START.match(msg):
            m = _INTEL.match(msg)
            if m is None:
                raise ParseError(source, number, raw, "a DMAR fault line '[DMA Read|DMA Write|INTR-REMAP ...] Request device "
                                                      "[bb:dd.f] ... fault addr|index <hex> [fault reason NN] <text>'")
            records.append(_intel(m, t, number, raw))
            continue
        if "AMD-Vi: Event logged [" in msg:
            if msg.endswith("Event logged ["):
                pre = msg.split("AMD-Vi:", 1)[0].strip().rstrip(":").split()
                pending_amd = (number, t, pre[-1] if pre else None)
                continue
            m = _AMD.match(msg)
            if m is None:
                raise ParseError(source, number, raw, "'AMD-Vi: Event logged [EVENT key=value ...]'")
            records.append(_amd(m.group("body"), m.group("dev"), t, number, raw, source))
            continue
        s = _SMMU.match(msg)
        if s:
            body = s.group("msg")
            e = _SMMU3_EVENT.match(body)
            if e:
                pending_smmu = [s.group("dev"), int(e.group("id"), 16), [], number, t, raw]
                continue
            d = _SMMU3_DECODED.match(body)
            if d and s.group("dev") in smmu_last:
                i = smmu_last[s.group("dev")]
                client = d.group("client").strip()
                if _DEVNAME.match(client):
                    r = records[i]
                    records[i] = FaultRecord(**{**r.__dict__, "device": _bdf(client)})
                continue
            if body.startswith("Unhandled context fault"):
                m = _SMMU2.match(body)
                if m is None:
                    raise ParseError(source, number, raw, "'Unhandled context fault: fsr=0x.., iova=0x.., fsynr=0x.., "
                                                          "cbfrsynra=0x.., cb=N'")
                records.append(_smmu2(m, t, number, raw))
            continue
    if pending_smmu is not None:
        raise ParseError(source, pending_smmu[3], pending_smmu[5], "four raw event words after 'event 0x.. received:'")
    if pending_amd is not None:
        raise ParseError(source, pending_amd[0], "Event logged [", "the AMD-Vi event on the next line")
    return FaultLog(records, suppressed)


def read_dmesg(path: Union[str, os.PathLike]) -> FaultLog:
    """Read a saved kernel log (bounded); errors name the file and line."""
    return parse_dmesg(read_bounded(path, MAX_FILE), source=str(path))
