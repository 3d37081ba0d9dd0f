"""Random alloc / attach / replace / detach / destroy / map / unmap / dirty-tracking sequences
against a naive reference of the object graph and of the dirty pages: every answer agrees, and a
failed operation changes nothing (dirty bits and tracking state included)."""

from __future__ import annotations

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import Bundle, RuleBasedStateMachine, initialize, invariant, rule

from iommu_lab.core.errors import IommuError
from iommu_lab.iommufd import HwptFlag, IommufdContext, ObjType

PAGE = 0x1000

PLATFORMS = ["intel-vtd-48", "arm-smmuv3-48", "riscv-sv39"]
IDS = st.integers(min_value=0, max_value=12)


class Reference:
    """The naive graph: who refers to whom, who is attached where; no rules but reachability."""

    def __init__(self) -> None:
        self.kind: dict[int, str] = {}
        self.refs: dict[int, set[int]] = {}
        self.attached: dict[int, int] = {}   # device -> hwpt (RID only)
        self.auto: set[int] = set()
        self.maps: dict[int, list[tuple[int, int]]] = {}   # ioas -> (iova, length) of live areas
        self.dirty: dict[int, set[int]] = {}               # dirty-tracking hwpt -> dirty 4 KiB page numbers
        self.enabled: dict[int, bool] = {}
        self.always_on: set[int] = set()                   # ARM: CD.HD set at allocation, DBM on at map
        self.ioas_of: dict[int, int] = {}                  # hwpt_paging -> its IOAS

    def forget(self, i: int) -> None:
        for table in (self.kind, self.refs, self.dirty, self.enabled, self.ioas_of):
            table.pop(i, None)
        self.auto.discard(i)
        self.always_on.discard(i)

    def pages_of(self, ioas: int) -> set[int]:
        return {p for iova, n in self.maps.get(ioas, []) for p in range(iova // PAGE, (iova + n) // PAGE)}

    def holders(self, i: int) -> set[int]:
        return {o for o, r in self.refs.items() if i in r} | {d for d, h in self.attached.items() if h == i}


def snapshot(ctx: IommufdContext):
    ioases, dirty = [], []
    for info in ctx.objects():
        if info.type is ObjType.IOAS:
            ioas = ctx.ioas(info.id)
            ioases.append((info.id, ioas.iova_ranges(), ioas.iova_alignment, len(ioas.history),
                           tuple((a.iova, a.length) for a in ioas.areas)))
        tracker = getattr(ctx[info.id], "tracker", None)
        if tracker is not None:
            dirty.append((info.id, tracker.enabled, tuple(tracker.dirty_leaves())))
    return ctx.objects(), ctx.attachments(), ioases, dirty


class GraphMachine(RuleBasedStateMachine):
    tracking = Bundle("tracking")

    def __init__(self) -> None:
        super().__init__()
        self.ctx = IommufdContext()
        self.ref = Reference()
        i = self.ctx.ioas_alloc()
        self.ref.kind[i] = "IOAS"
        self.ref.refs[i] = set()

    def _do(self, call, *args, **kwargs):
        before = snapshot(self.ctx)
        try:
            return call(*args, **kwargs)
        except IommuError:
            assert snapshot(self.ctx) == before, "a failed operation changed the model"
            return None

    @rule(platform=st.sampled_from(PLATFORMS))
    def bind(self, platform):
        d = self.ctx.bind(platform)
        self.ref.kind[d] = "DEVICE"
        self.ref.refs[d] = set()

    @rule()
    def ioas_alloc(self):
        i = self.ctx.ioas_alloc()
        self.ref.kind[i] = "IOAS"
        self.ref.refs[i] = set()

    @rule(dev=IDS, pt=IDS, flags=st.sampled_from([0, "NEST_PARENT", "DIRTY_TRACKING", "PASID", 0x40]),
          nested=st.booleans())
    def hwpt_alloc(self, dev, pt, flags, nested):
        kw = {"data_type": "VTD_S1"} if nested else {}
        h = self._do(self.ctx.hwpt_alloc, dev, pt, flags, **kw)
        if h is not None:
            assert self.ref.kind.get(dev) == "DEVICE" and self.ref.kind.get(pt) in ("IOAS", "HWPT_PAGING", "VIOMMU")
            self.ref.kind[h] = self.ctx[h].type.value
            self.ref.refs[h] = {pt}
            if self.ref.kind[pt] == "IOAS":
                self.ref.ioas_of[h] = pt
            if flags == "DIRTY_TRACKING":
                assert self.ctx[dev].platform.dirty_tracking, "a device without dirty tracking got a tracking HWPT"
                self.ref.enabled[h] = False
                arm = self.ctx[dev].platform.name.startswith("arm")
                # A writable ARM stage-1 leaf is mapped with DBM, so it reads dirty until cleared.
                self.ref.dirty[h] = self.ref.pages_of(pt) if arm else set()
                if arm:
                    self.ref.always_on.add(h)

    @initialize(target=tracking, platform=st.sampled_from(["intel-vtd-48", "arm-smmuv3-48", "amd-v1"]),
                length=st.sampled_from([0x4000, 0x20_0000, 0x40_0000]))
    def first_tracking_hwpt(self, platform, length):
        """Every run starts with a tracking HWPT attached to its device and one mapping."""
        h = self.tracking_hwpt(platform, True)
        self.map(1, length, 0x20_0000)
        return h

    @rule(target=tracking, platform=st.sampled_from(["intel-vtd-48", "arm-smmuv3-48", "amd-v1"]), attach=st.booleans())
    def tracking_hwpt(self, platform, attach):
        """A device and a DIRTY_TRACKING HWPT for it on the first live IOAS (attached or not)."""
        ioas = min((i for i, k in self.ref.kind.items() if k == "IOAS"), default=None)
        if ioas is None:
            return 0
        self.bind(platform)
        dev = max(i for i, k in self.ref.kind.items() if k == "DEVICE")
        h = self._do(self.ctx.hwpt_alloc, dev, ioas, "DIRTY_TRACKING")
        if h is None:
            return 0
        self.ref.kind[h], self.ref.refs[h], self.ref.ioas_of[h] = "HWPT_PAGING", {ioas}, ioas
        self.ref.enabled[h] = False
        arm = platform.startswith("arm")
        self.ref.dirty[h] = self.ref.pages_of(ioas) if arm else set()
        if arm:
            self.ref.always_on.add(h)
        if attach and self._do(self.ctx.attach, dev, h) is not None:
            self.ref.attached[dev] = h
        return h

    @rule(dev=IDS, pt=IDS, replace=st.booleans())
    def attach(self, dev, pt, replace):
        call = self.ctx.replace if replace else self.ctx.attach
        old = self.ref.attached.get(dev)
        h = self._do(call, dev, pt)
        if h is None:
            return
        assert self.ref.kind.get(dev) == "DEVICE"
        assert (old is not None) == replace or (not replace and old is None)
        if h not in self.ref.kind:
            self.ref.kind[h] = "HWPT_PAGING"
            self.ref.refs[h] = {pt}
            self.ref.auto.add(h)
            self.ref.ioas_of[h] = pt
        self.ref.attached[dev] = h
        self._drop_auto(old, h)

    def _drop_auto(self, old, new):
        if old is not None and old != new and old in self.ref.auto and not self.ref.holders(old):
            self.ref.forget(old)

    @rule(dev=IDS)
    def detach(self, dev):
        if self.ref.kind.get(dev) != "DEVICE":
            return
        self.ctx.detach(dev)
        old = self.ref.attached.pop(dev, None)
        self._drop_auto(old, None)

    @rule(obj=IDS)
    def destroy(self, obj):
        expect_ok = obj in self.ref.kind and self.ref.kind[obj] != "DEVICE" and not self.ref.holders(obj)
        before = snapshot(self.ctx)
        try:
            self.ctx.destroy(obj)
        except IommuError as e:
            assert not expect_ok, f"destroy {obj} refused: {e}"
            assert snapshot(self.ctx) == before
            return
        assert expect_ok
        self.ref.forget(obj)

    @rule(ioas=st.one_of(IDS, st.just(1), st.just(1)), length=st.sampled_from([0x1000, 0x2000, 0x20_0000]), iova=st.sampled_from([None, 0x10_0000, 0xFEE0_0000]))
    def map(self, ioas, length, iova):
        if self.ref.kind.get(ioas) != "IOAS":
            return
        area = self._do(self.ctx.ioas(ioas).map, length, iova)
        if area is None:
            return
        self.ref.maps.setdefault(ioas, []).append((area.iova, area.length))
        fresh = set(range(area.iova // PAGE, (area.iova + area.length) // PAGE))
        for h in self.ref.always_on:
            if self.ref.ioas_of.get(h) == ioas:
                self.ref.dirty[h] |= fresh

    @rule(ioas=IDS)
    def unmap_all(self, ioas):
        if self.ref.kind.get(ioas) == "IOAS":
            self.ctx.ioas(ioas).unmap_all()
            self.ref.maps.pop(ioas, None)
            for h in self.ref.dirty:
                if self.ref.ioas_of.get(h) == ioas:
                    self.ref.dirty[h] = set()

    # -- dirty tracking ------------------------------------------------------------------------
    def _target_hwpt(self, target):
        """The HWPT_PAGING a write by ``target`` (a HWPT or a device) lands in, per the reference."""
        if self.ref.kind.get(target) == "DEVICE":
            target = self.ref.attached.get(target)
        if self.ref.kind.get(target) == "HWPT_NESTED":
            target = next(iter(self.ref.refs[target]))
        return target if self.ref.kind.get(target) == "HWPT_PAGING" else None

    def _refused(self, call, *args, **kwargs):
        """The errno ``call`` was refused with (the model unchanged), or None when it succeeded."""
        before = snapshot(self.ctx)
        try:
            call(*args, **kwargs)
        except IommuError as e:
            assert snapshot(self.ctx) == before, "a failed operation changed the model"
            return e.errno
        return None

    def _expected_refusal(self, hwpt):
        if hwpt in self.ref.dirty:
            return None
        return "EOPNOTSUPP" if self.ref.kind.get(hwpt) == "HWPT_PAGING" else "ENOENT"

    @rule(hwpt=st.one_of(IDS, tracking), enable=st.booleans())
    def set_dirty_tracking(self, hwpt, enable):
        errno = self._refused(self.ctx.hwpt_set_dirty_tracking, hwpt, enable)
        assert errno == self._expected_refusal(hwpt)
        if errno is None:
            self.ref.enabled[hwpt] = enable
            if enable:
                self.ref.dirty[hwpt] = set()

    @rule(who=st.one_of(tracking, tracking, IDS), page=st.sampled_from([0x10_0000, 0x10_1000, 0x20_0000, 0x2F_F000, 0x7000_0000]),
          mapped=st.booleans(), pick=st.integers(0, 4095))
    def dma_write(self, who, page, mapped, pick):
        target = who
        pages = sorted(self.ref.pages_of(self.ref.ioas_of.get(self._target_hwpt(target))))
        if mapped and pages:
            page = pages[pick % len(pages)] * PAGE
        kind = self.ref.kind.get(target)
        if kind not in ("DEVICE", "HWPT_PAGING", "HWPT_NESTED"):
            with pytest.raises(IommuError):
                self.ctx.dma_write(target, [page])
            return
        before = snapshot(self.ctx)[:3]
        landed = bool(self.ctx.dma_write(target, [page])[0])
        assert snapshot(self.ctx)[:3] == before, "a DMA write changed the object graph or an IOAS"
        h = self._target_hwpt(target)
        ioas = self.ref.ioas_of.get(h)
        assert landed == (h is not None and page // PAGE in self.ref.pages_of(ioas))
        if landed and h in self.ref.dirty and (self.ref.enabled[h] or h in self.ref.always_on):
            leaf = self.ctx.ioas(ioas).domain(self.ctx[h].pseudo).walk(page).page_size
            base = page & ~(leaf - 1)
            self.ref.dirty[h] |= set(range(base // PAGE, (base + leaf) // PAGE))

    @rule(hwpt=st.one_of(IDS, tracking), no_clear=st.booleans())
    def read_dirty_bitmap(self, hwpt, no_clear):
        if hwpt not in self.ref.dirty:
            errno = self._refused(self.ctx.hwpt_get_dirty_bitmap, hwpt, 0, 0x20_0000, PAGE, flags=int(no_clear))
            assert errno == self._expected_refusal(hwpt)
            return
        for iova, length in self.ref.maps.get(self.ref.ioas_of[hwpt], []):
            bitmap = self.ctx.hwpt_get_dirty_bitmap(hwpt, iova, length, PAGE, flags=int(no_clear))
            got = {p // PAGE for p in bitmap.pages()}
            want = {p for p in self.ref.dirty[hwpt] if iova // PAGE <= p < (iova + length) // PAGE}
            assert got == want, f"HWPT {hwpt} [{iova:#x} + {length:#x}]: bitmap {sorted(got)[:8]} != {sorted(want)[:8]}"
            if not no_clear:
                self.ref.dirty[hwpt] -= want

    @invariant()
    def graph_agrees(self):
        assert {i.id: i.type.value for i in self.ctx.objects()} == self.ref.kind
        assert {a.dev_id: a.hwpt_id for a in self.ctx.attachments()} == self.ref.attached
        for info in self.ctx.objects():
            assert set(info.refs) <= set(self.ref.kind), f"{info.label} refers to a destroyed object"
        tracking = {i.id: self.ctx[i.id].dirty_enabled for i in self.ctx.objects()
                    if i.type is ObjType.HWPT_PAGING and self.ctx[i.id].flags & HwptFlag.DIRTY_TRACKING}
        assert tracking == self.ref.enabled


GraphMachine.TestCase.settings = settings(max_examples=50, stateful_step_count=30, deadline=None)
test_object_graph_agrees_with_a_naive_reference = GraphMachine.TestCase
