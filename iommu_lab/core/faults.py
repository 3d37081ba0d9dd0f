"""The one fault vocabulary: why a translation stopped, as an enum every layer shares.

A walk (single stage, either stage of a nested walk, or a PASID / context-structure fetch)
reports a :class:`FaultReason`. Its coarse :attr:`FaultReason.kind` is the class every vendor
code table starts from: SMMUv3 ``F_TRANSLATION`` / ``F_PERMISSION`` / ``F_ADDR_SIZE``, VT-d's
fault reasons, AMD's ``IO_PAGE_FAULT`` flags. The per-vendor tables live in the hardware
layer; nothing matches on message text.
"""

from __future__ import annotations

import enum


class FaultKind(enum.Enum):
    """What went wrong with the entry, in vendor-neutral words (the vendor tables' key)."""

    TRANSLATION = "translation"  #: entry not present / invalid
    PERMISSION = "permission"  #: present, but the access is not allowed
    RESERVED = "reserved"  #: reserved (must-be-zero) bits set
    ADDRESS_SIZE = "address-size"  #: input, table or output address beyond the stage's width
    NON_CANONICAL = "non-canonical"  #: x86-64 sign-extension rule broken


class FaultReason(enum.Enum):
    """Why a walk stopped without a translation (the hardware's fault reasons, generalised)."""

    NOT_PRESENT = "not present"
    PERMISSION = "permission"
    OUT_OF_RANGE = "out of range"
    NON_CANONICAL = "non-canonical"
    RESERVED_BITS = "reserved bits set"
    INVALID_ENTRY = "invalid entry type for this level"
    LEVEL_SKIP = "level skipping (unsupported NextLevel)"
    MISALIGNED_SUPERPAGE = "misaligned superpage"
    TABLE_ADDRESS = "table address outside memory"
    TABLE_TRANSLATION = "table fetch did not translate (stage 2)"

    @property
    def kind(self) -> FaultKind:
        """The vendor-neutral class of this reason."""
        return _KIND[self]


_KIND = {
    FaultReason.NOT_PRESENT: FaultKind.TRANSLATION,
    FaultReason.PERMISSION: FaultKind.PERMISSION,
    FaultReason.OUT_OF_RANGE: FaultKind.ADDRESS_SIZE,
    FaultReason.NON_CANONICAL: FaultKind.NON_CANONICAL,
    FaultReason.RESERVED_BITS: FaultKind.RESERVED,
    FaultReason.INVALID_ENTRY: FaultKind.TRANSLATION,
    FaultReason.LEVEL_SKIP: FaultKind.TRANSLATION,
    FaultReason.MISALIGNED_SUPERPAGE: FaultKind.RESERVED,
    FaultReason.TABLE_ADDRESS: FaultKind.ADDRESS_SIZE,
    FaultReason.TABLE_TRANSLATION: FaultKind.TRANSLATION,
}
