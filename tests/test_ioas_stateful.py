"""The IOAS against a deliberately naive model: lists of areas and ranges, linear scans, the
kernel's rules written out again in the plainest way. Hypothesis drives both with random map
(fixed and automatic), unmap, copy, attach, detach, allow, reserve and huge-page operations and
checks that they agree on every result and errno, that areas never overlap or leave their
windows, that automatic IOVAs obey rule 3, and that every failed operation left the IOAS
exactly as it was (except the documented non-atomic unmap, rule 5.6)."""

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from iommu_lab.core.errors import IommuError
from iommu_lab.core.ranges import U64_MAX, IovaRange, RangeSet
from iommu_lab.hardware.device import Device, ReservedRegion, ResvType
from iommu_lab.iommufd.ioas import IOAS

PAGE = 0x1000
HPAGE = 0x20_0000

DEVICES = [
    Device("a", aperture=IovaRange(0x4000, 0x7F_FFFF), reserved=[ReservedRegion(0x40_0000, 0x40_FFFF, "msi")]),
    Device("b", aperture=[IovaRange(0, 0x1F_FFFF), IovaRange(0x20_0000, U64_MAX)], pgsizes=0x201000),
    Device("c", pgsizes=0x800, reserved=[ReservedRegion(0x8_0000, 0x8_FFFF, "sw-msi")]),
    Device("d", pgsizes=0x10000),
    Device("e", reserved=[ReservedRegion(0, 0xFFFF, "direct-relaxable"), ReservedRegion(0x30_0000, 0x30_0FFF, "direct")]),
    Device("f", aperture=IovaRange.bits(48), format="vtd-ss-4level"),  # gets a real page-table domain
]

addresses = st.one_of(st.integers(0, 0x1200).map(lambda n: n * 0x800), st.integers(1, 8).map(lambda k: U64_MAX + 1 - k * PAGE))
lengths = st.sampled_from([1, 0x800, 0x1000, 0x2000, 0x3000, 0x8000, 0x10000, 0x20_0000, 0x40_0000])
vas = st.sampled_from([0, 0x400, 0x800, 0x1000, 0x7000_1000, 0x7000_3800, 0x7F00_0000_0000])
prots = st.sampled_from(["rw", "r", "w", ""])


def overlaps(s1, l1, s2, l2):
    return s1 <= l2 and s2 <= l1


class Naive:
    """Plain lists; every rule re-stated from the reference without any cleverness."""

    def __init__(self):
        self.areas = []  # dicts: iova, length, va, prot, pages, writable
        self.reserved = []  # (start, last, owner)
        self.allowed = []
        self.devices = []
        self.huge = True
        self.pages = 0

    def align(self):
        a = 1 if self.huge else PAGE
        for d in self.devices:
            a = max(a, d.pgsizes & -d.pgsizes)
        return a

    def windows(self):
        ws = [(0, U64_MAX)]
        for d in self.devices:
            ws = [(max(s, w.start), min(l, w.last)) for s, l in ws for w in d.windows if max(s, w.start) <= min(l, w.last)]
        return sorted(ws)

    def fixed_checks(self, iova, length):
        a = self.align()
        if iova % a:
            return "EINVAL"
        last = iova + length - 1
        if last > U64_MAX:
            return "EOVERFLOW"
        if any(overlaps(iova, last, s, l) for s, l, _ in self.reserved):
            return "EINVAL"
        if not any(s <= iova and last <= l for s, l in self.windows()):
            return "EINVAL"
        if any(overlaps(iova, last, x["iova"], x["iova"] + x["length"] - 1) for x in self.areas):
            return "EEXIST"
        return None

    def auto(self, addr, length):
        if length >= U64_MAX // 2:
            return "EOVERFLOW"
        off = addr % PAGE
        al = 1 << (length - 1).bit_length()
        if addr:
            al = min(al, addr & -addr)
        al = min(al, HPAGE)
        if al < self.align():
            return "EINVAL"

        def check(start, last):
            x = start + al - 1
            if x > U64_MAX:
                return None
            x = (x & ~(al - 1)) | off
            return None if x >= last or last - x < length - 1 else x

        base = RangeSet(self.allowed) if self.allowed else RangeSet.full()
        spans = base & RangeSet([(PAGE, U64_MAX - PAGE)])
        used = sorted([(s, l) for s, l, _ in self.reserved] + [(x["iova"], x["iova"] + x["length"] - 1) for x in self.areas])
        for ws, wl in self.windows():
            for span in spans & RangeSet([(ws, wl)]):
                start = check(span.start, span.last)
                if start is None:
                    continue
                free = RangeSet([(start, span.last)]) - RangeSet(used)
                for hole in free:
                    got = check(hole.start, hole.last)
                    if got is not None:
                        return got
        return "ENOSPC"

    def insert(self, pieces, length, iova, prot):
        a = self.align()
        if length % a:
            return "EINVAL"
        if iova is None:
            iova = self.auto(pieces[0][1], length)
            if isinstance(iova, str):
                return iova
        else:
            err = self.fixed_checks(iova, length)
            if err:
                return err
        for pages, va, n, writable in pieces:
            if "w" in prot and not writable:
                return "EPERM"
            if (va % PAGE) % a:
                return "EINVAL"
        cur = iova
        for pages, va, n, writable in pieces:
            self.areas.append(dict(iova=cur, length=n, va=va, prot=prot, pages=pages, writable=writable))
            cur += n
        return iova

    def map(self, length, iova, va, prot):
        if not prot:
            return "EINVAL"
        if length == 0:
            return "EINVAL"
        if va + length > U64_MAX:
            return "EOVERFLOW"
        self.pages += 1
        return self.insert([(self.pages, va, length, "w" in prot)], length, iova, prot)

    def unmap(self, iova, length):
        if iova == 0 and length == U64_MAX:
            n = sum(x["length"] for x in self.areas)
            self.areas = []
            return n
        if iova >= U64_MAX or length >= U64_MAX:
            return "EOVERFLOW"
        if length == 0:
            return "EINVAL"
        last = iova + length - 1
        if last > U64_MAX:
            return "EOVERFLOW"
        removed = 0
        for x in sorted(self.areas, key=lambda x: x["iova"]):
            xl = x["iova"] + x["length"] - 1
            if overlaps(iova, last, x["iova"], xl):
                if x["iova"] < iova or xl > last:
                    return ("ENOENT", removed)
                self.areas.remove(x)
                removed += x["length"]
        return removed if removed else ("ENOENT", 0)

    def copy(self, src_iova, length, iova, prot):
        if not prot:
            return "EINVAL"
        if length == 0:
            return "EINVAL"
        last = src_iova + length - 1
        if last > U64_MAX:
            return "EOVERFLOW"
        pieces, cur = [], src_iova
        for x in sorted(self.areas, key=lambda x: x["iova"]):
            xl = x["iova"] + x["length"] - 1
            if x["iova"] <= cur <= xl:
                end = min(xl, last)
                pieces.append((x["pages"], x["va"] + cur - x["iova"], end - cur + 1, x["writable"]))
                cur = end + 1
                if end == last:
                    break
        else:
            return "ENOENT"
        if cur != last + 1:
            return "ENOENT"
        return self.insert(pieces, length, iova, prot)

    def conflicts(self, s, l):
        return any(overlaps(s, l, x["iova"], x["iova"] + x["length"] - 1) for x in self.areas) or any(
            overlaps(s, l, a, b) for a, b in self.allowed)

    def attach(self, dev):
        if any(d.name == dev.name for d in self.devices):
            return "EINVAL"
        self.devices.append(dev)
        wins = self.windows()
        self.devices.remove(dev)
        for x in self.areas:
            s, l = x["iova"], x["iova"] + x["length"] - 1
            if not any(a <= s and l <= b for a, b in wins) and any(a <= s <= b for a, b in wins) and any(a <= l <= b for a, b in wins):
                return "EADDRINUSE"  # would straddle touching windows (model extension)
        regions = [r for r in dev.reserved if r.type is not ResvType.DIRECT_RELAXABLE]
        if any(self.conflicts(r.start, r.last) for r in regions):
            return "EADDRINUSE"
        kinds = [r.type for r in regions]
        if kinds.count(ResvType.SW_MSI) > 1 or (ResvType.SW_MSI in kinds and ResvType.MSI in kinds):
            return "EINVAL"
        new = max(dev.pgsizes & -dev.pgsizes, self.align())
        if new > PAGE:
            return "EINVAL"
        if new > self.align() and any(x["iova"] % new or x["length"] % new or x["va"] % PAGE % new for x in self.areas):
            return "EADDRINUSE"
        outside = RangeSet.full() - RangeSet(dev.windows)
        if any(self.conflicts(r.start, r.last) for r in outside):
            return "EADDRINUSE"
        self.devices.append(dev)
        self.reserved += [(r.start, r.last, dev.name) for r in regions] + [(r.start, r.last, dev.name) for r in outside]
        return None

    def detach(self, dev):
        if dev not in self.devices:
            return "ENOENT"
        self.devices.remove(dev)
        self.reserved = [r for r in self.reserved if r[2] != dev.name]
        return None

    def allow(self, ranges):
        seen = []
        for s, l in ranges:
            if s >= l or any(overlaps(s, l, a, b) for a, b in seen):
                return "EINVAL"
            seen.append((s, l))
        if any(overlaps(s, l, a, b, ) for s, l in seen for a, b, _ in self.reserved):
            return "EADDRINUSE"
        self.allowed = seen
        return None

    def reserve(self, s, l):
        if self.conflicts(s, l):
            return "EADDRINUSE"
        self.reserved.append((s, l, None))
        return None

    def set_huge(self, on):
        if not on:
            if not self.huge:
                return None
            if self.devices and self.areas:
                return "EINVAL"
            new = max(self.align(), PAGE)
            if any(x["iova"] % new or x["length"] % new or x["va"] % PAGE % new for x in self.areas):
                return "EADDRINUSE"
        self.huge = on
        return None


def snapshot(ioas):
    return (ioas.areas, ioas.reserved, ioas.allowed, ioas.devices, ioas.iova_alignment, ioas.huge_pages, len(ioas.history))


class IoasMachine(RuleBasedStateMachine):
    def __init__(self):
        super().__init__()
        self.ioas = IOAS()
        self.model = Naive()

    def run(self, real, naive):
        before = snapshot(self.ioas)
        try:
            got = real()
        except IommuError as e:
            got = e.errno
            partial = getattr(e, "unmapped", 0)
            if partial:
                got = (e.errno, partial)
            elif e.errno == "ENOENT" and hasattr(e, "unmapped"):
                got = (e.errno, 0)
            else:
                assert snapshot(self.ioas) == before, f"failed with {e} but changed the IOAS"
        want = naive()
        assert got == want, (got, want)
        return got

    @rule(length=lengths, iova=addresses, va=vas, prot=prots)
    def map_fixed(self, length, iova, va, prot):
        got = self.run(lambda: self.ioas.map(length, iova, user_va=va, prot=prot).iova, lambda: self.model.map(length, iova, va, prot))
        if isinstance(got, int):
            assert got == iova

    @rule(length=lengths, va=vas, prot=prots)
    def map_auto(self, length, va, prot):
        got = self.run(lambda: self.ioas.map(length, user_va=va, prot=prot).iova, lambda: self.model.map(length, None, va, prot))
        if isinstance(got, int):
            assert PAGE <= got <= U64_MAX - PAGE - length + 1
            if self.ioas.allowed:
                assert IovaRange(got, got + length - 1) in self.ioas.allowed

    @rule(iova=addresses, length=st.one_of(lengths, st.sampled_from([0, 0x100000, U64_MAX])))
    def unmap(self, iova, length):
        self.run(lambda: self.ioas.unmap(iova, length), lambda: self.model.unmap(iova, length))

    @rule(data=st.data(), before=st.sampled_from([0, 0, 1, 0x800, -0x800]), extra=st.sampled_from([0, 0, 1, 0x1000, 0x40_0000, -0x800]))
    def unmap_existing(self, data, before, extra):
        areas = self.ioas.areas
        if not areas:
            return
        i = data.draw(st.integers(0, len(areas) - 1))
        j = data.draw(st.integers(i, min(i + 3, len(areas) - 1)))
        iova = max(areas[i].iova - before, 0)
        length = max(min(areas[j].last + extra, U64_MAX - 1) - iova + 1, 1)
        self.run(lambda: self.ioas.unmap(iova, length), lambda: self.model.unmap(iova, length))

    @rule(data=st.data(), iova=st.one_of(st.none(), addresses), prot=prots)
    def copy_existing(self, data, iova, prot):
        areas = self.ioas.areas
        if not areas:
            return
        a = data.draw(st.sampled_from(areas))
        src = a.iova + data.draw(st.sampled_from([0, 0, 0x800, 0x1000])) % a.length
        length = data.draw(st.sampled_from([a.last - src + 1, 0x800, 0x1000, 0x2000, a.length]))
        self.run(lambda: self.ioas.copy(self.ioas, src, length, iova, prot=prot).iova, lambda: self.model.copy(src, length, iova, prot))

    @rule()
    def unmap_all(self):
        self.run(lambda: self.ioas.unmap(0, U64_MAX), lambda: self.model.unmap(0, U64_MAX))

    @rule(src=addresses, length=lengths, iova=st.one_of(st.none(), addresses), prot=prots)
    def copy(self, src, length, iova, prot):
        self.run(lambda: self.ioas.copy(self.ioas, src, length, iova, prot=prot).iova, lambda: self.model.copy(src, length, iova, prot))

    @rule(i=st.integers(0, len(DEVICES) - 1))
    def attach(self, i):
        self.run(lambda: self.ioas.attach(DEVICES[i]), lambda: self.model.attach(DEVICES[i]))

    @rule(i=st.integers(0, len(DEVICES) - 1))
    def detach(self, i):
        self.run(lambda: self.ioas.detach(DEVICES[i]), lambda: self.model.detach(DEVICES[i]))

    @rule(ranges=st.lists(st.tuples(addresses, lengths), max_size=3))
    def allow(self, ranges):
        rs = [(s, min(s + n - 1, U64_MAX)) for s, n in ranges]
        self.run(lambda: self.ioas.allow_iovas(rs), lambda: self.model.allow(rs))

    @rule(start=addresses, length=lengths)
    def reserve(self, start, length):
        last = min(start + length - 1, U64_MAX)
        self.run(lambda: self.ioas.reserve(IovaRange(start, last)) and None, lambda: self.model.reserve(start, last))

    @rule(on=st.booleans())
    def huge_pages(self, on):
        self.run(lambda: self.ioas.set_huge_pages(on), lambda: self.model.set_huge(on))

    @invariant()
    def agrees_with_the_model(self):
        m = self.model
        got = [(a.iova, a.length, a.user_va, a.prot.text.replace("-", "")) for a in self.ioas.areas]
        want = sorted((x["iova"], x["length"], x["va"], x["prot"]) for x in m.areas)
        assert got == want
        # owner None (a user reservation) may share a range with a device's: sort None first
        by_owner = lambda t: (t[0], t[1], t[2] is not None, t[2] or "")  # noqa: E731
        assert sorted(((r.start, r.last, r.owner) for r in self.ioas.reserved), key=by_owner) == sorted(m.reserved, key=by_owner)
        assert self.ioas.allowed == RangeSet(m.allowed)
        assert self.ioas.iova_alignment == m.align()
        assert self.ioas.iova_ranges() == RangeSet.full() - RangeSet((s, l) for s, l, _ in m.reserved)

    @invariant()
    def areas_never_overlap_and_stay_in_one_window_outside_reserved(self):
        areas = self.ioas.areas
        for a, b in zip(areas, areas[1:]):
            assert a.last < b.iova
        windows = self.ioas.permitted()
        for a in areas:
            assert any(w.start <= a.iova and a.last <= w.last for w in windows)
            assert not any(overlaps(a.iova, a.last, r.start, r.last) for r in self.ioas.reserved)
        # every paging domain maps exactly the areas, to the pinned pages' physical addresses
        host = self.ioas.host_memory if self.ioas.domains else None
        for dom in self.ioas.domains:
            for a in areas:
                for probe in {a.iova, a.last}:
                    w = dom.walk(probe)
                    assert w.ok and w.pa == host.resolve(a.user_va + probe - a.iova, 1)[0][1]
            for gap in list(self.ioas.iopt.gaps())[:4]:
                if gap.last < 1 << 48:
                    assert not dom.walk(gap.start).ok
        # the gap index mirrors the areas and reservations exactly
        used = RangeSet([a.range for a in areas] + [r.range for r in self.ioas.reserved])
        assert RangeSet(self.ioas.iopt.gaps()) == RangeSet.full() - used


TestIoasStateful = IoasMachine.TestCase
TestIoasStateful.settings = settings(max_examples=max(200, settings.default.max_examples), stateful_step_count=40, deadline=None)
