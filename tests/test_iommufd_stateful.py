"""Random alloc / attach / replace / detach / destroy / map / unmap sequences against a naive
reference of the object graph: every answer agrees, and a failed operation changes nothing."""

from __future__ import annotations

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from iommu_lab.core.errors import IommuError
from iommu_lab.iommufd import IommufdContext, ObjType

PLATFORMS = ["intel-vtd-48", "arm-smmuv3-48", "riscv-sv39"]
IDS = st.integers(min_value=0, max_value=12)


class Reference:
    """The naive graph: who refers to whom, who is attached where; no rules but reachability."""

    def __init__(self) -> None:
        self.kind: dict[int, str] = {}
        self.refs: dict[int, set[int]] = {}
        self.attached: dict[int, int] = {}   # device -> hwpt (RID only)
        self.auto: set[int] = set()

    def holders(self, i: int) -> set[int]:
        return {o for o, r in self.refs.items() if i in r} | {d for d, h in self.attached.items() if h == i}


def snapshot(ctx: IommufdContext):
    ioases = []
    for info in ctx.objects():
        if info.type is ObjType.IOAS:
            ioas = ctx.ioas(info.id)
            ioases.append((info.id, ioas.iova_ranges(), ioas.iova_alignment, len(ioas.history),
                           tuple((a.iova, a.length) for a in ioas.areas)))
    return ctx.objects(), ctx.attachments(), ioases


class GraphMachine(RuleBasedStateMachine):
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
        self.ref.attached[dev] = h
        self._drop_auto(old, h)

    def _drop_auto(self, old, new):
        if old is not None and old != new and old in self.ref.auto and not self.ref.holders(old):
            del self.ref.kind[old], self.ref.refs[old]
            self.ref.auto.discard(old)

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
        del self.ref.kind[obj], self.ref.refs[obj]
        self.ref.auto.discard(obj)

    @rule(ioas=IDS, length=st.sampled_from([0x1000, 0x2000, 0x20_0000]), iova=st.sampled_from([None, 0x10_0000, 0xFEE0_0000]))
    def map(self, ioas, length, iova):
        if self.ref.kind.get(ioas) != "IOAS":
            return
        self._do(self.ctx.ioas(ioas).map, length, iova)

    @rule(ioas=IDS)
    def unmap_all(self, ioas):
        if self.ref.kind.get(ioas) == "IOAS":
            self.ctx.ioas(ioas).unmap_all()

    @invariant()
    def graph_agrees(self):
        assert {i.id: i.type.value for i in self.ctx.objects()} == self.ref.kind
        assert {a.dev_id: a.hwpt_id for a in self.ctx.attachments()} == self.ref.attached
        for info in self.ctx.objects():
            assert set(info.refs) <= set(self.ref.kind), f"{info.label} refers to a destroyed object"


GraphMachine.TestCase.settings = settings(max_examples=60, stateful_step_count=25, deadline=None)
test_object_graph_agrees_with_a_naive_reference = GraphMachine.TestCase
