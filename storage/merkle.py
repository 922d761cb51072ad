"""The Merkle tree over the ledger, hashed as RFC 9162 (Certificate Transparency v2) says.

Every ledger entry is a leaf, in ledger order: its leaf hash is SHA-256(0x00 || data),
an interior node's SHA-256(0x01 || left || right) — the domain separation that keeps a
leaf from passing for a node. The tree of the first ``n`` entries has one root (RFC
9162 §2.1.1); a checkpoint signs it, so entries it covered cannot later be removed,
reordered or rewritten without the root changing.

The tree is kept as a ``Frontier`` — the roots of the perfect subtrees its size is made
of, at most one per bit of the size — so adding a leaf costs O(1) hashes amortised and
the root O(log n), whatever the size; nothing is rebuilt.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass, field

__all__ = [
    "EMPTY_ROOT",
    "Frontier",
    "Levels",
    "consistency_proof",
    "consistent",
    "inclusion_proof",
    "leaf_data",
    "leaf_hash",
    "node_hash",
    "root_from_inclusion",
    "root_of",
]

_LEAF, _NODE = b"\x00", b"\x01"
EMPTY_ROOT = hashlib.sha256(b"").digest()  # RFC 9162: the hash of an empty tree


def leaf_data(seq: int, kind: str, ref_id: int, entry_hash: str) -> bytes:
    """What a ledger entry contributes as a leaf: its place, what it chains, and its hash."""
    return f"{seq}:{kind}:{ref_id}:{entry_hash}".encode()


def leaf_hash(data: bytes) -> bytes:
    return hashlib.sha256(_LEAF + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(_NODE + left + right).digest()


def root_of(leaves: list[bytes]) -> bytes:
    """The root of the tree over ``leaves`` (leaf hashes), by the recursive definition.

    O(n): for tests and small trees; the ``Frontier`` gives the same root incrementally.
    """
    if not leaves:
        return EMPTY_ROOT
    if len(leaves) == 1:
        return leaves[0]
    split = 1 << ((len(leaves) - 1).bit_length() - 1)  # the largest power of two below n
    return node_hash(root_of(leaves[:split]), root_of(leaves[split:]))


@dataclass
class Frontier:
    """The tree of the first ``size`` leaves, as the roots of its perfect subtrees, largest first."""

    size: int = 0
    subtrees: list[bytes] = field(default_factory=list)

    def append(self, leaf: bytes) -> None:
        """Add a leaf hash; equal-height subtrees merge, as a binary counter carries."""
        self.subtrees.append(leaf)
        self.size += 1
        carries = (self.size & -self.size).bit_length() - 1  # trailing zero bits: merges owed
        for _ in range(carries):
            right = self.subtrees.pop()
            left = self.subtrees.pop()
            self.subtrees.append(node_hash(left, right))

    def extend(self, leaves: Iterable[bytes]) -> None:
        for leaf in leaves:
            self.append(leaf)

    def root(self) -> bytes:
        if not self.subtrees:
            return EMPTY_ROOT
        root = self.subtrees[-1]
        for left in reversed(self.subtrees[:-1]):
            root = node_hash(left, root)
        return root

    def to_hex(self) -> list[str]:
        return [subtree.hex() for subtree in self.subtrees]

    @classmethod
    def from_hex(cls, size: int, subtrees: list[str]) -> Frontier:
        """A frontier as stored; ``ValueError`` unless it has one subtree per set bit of ``size``."""
        if len(subtrees) != bin(size).count("1"):
            raise ValueError(f"a tree of {size} leaves has {bin(size).count('1')} subtrees, not {len(subtrees)}")
        return cls(size, [bytes.fromhex(subtree) for subtree in subtrees])


class Levels:
    """The whole tree over ``leaves``, level by level, to cut inclusion proofs from.

    Built bottom-up, pairing neighbours and carrying a level's odd last node up as it
    is: the same tree, and the same root, as RFC 9162's recursive split (its left
    subtrees are always perfect). One hash per node, so n leaves cost n - 1 hashes.
    """

    def __init__(self, leaves: list[bytes]) -> None:
        self.size = len(leaves)
        self._levels = [leaves]
        while len(self._levels[-1]) > 1:
            below = self._levels[-1]
            above = [node_hash(below[i], below[i + 1]) for i in range(0, len(below) - 1, 2)]
            if len(below) % 2:
                above.append(below[-1])
            self._levels.append(above)

    def root(self) -> bytes:
        return self._levels[-1][0] if self.size else EMPTY_ROOT

    def range_hash(self, start: int, end: int) -> bytes:
        """The root of the subtree over leaves [start, end), as RFC 9162's split makes it."""
        width = end - start
        height = width.bit_length() - 1
        if width == 1 << height and start % width == 0:
            return self._levels[height][start >> height]  # a perfect subtree, kept whole
        split = 1 << ((width - 1).bit_length() - 1)
        return node_hash(self.range_hash(start, start + split), self.range_hash(start + split, end))


def consistency_proof(tree: Levels, old_size: int) -> list[bytes]:
    """RFC 9162 §2.1.4.1: proof that the tree of ``old_size`` leaves is a prefix of ``tree``."""
    if not 0 < old_size <= tree.size:
        raise ValueError(f"no consistency proof from {old_size} to {tree.size} leaves")

    def subproof(m: int, start: int, end: int, whole: bool) -> list[bytes]:
        if m == end - start:
            return [] if whole else [tree.range_hash(start, end)]
        split = 1 << ((end - start - 1).bit_length() - 1)
        if m <= split:
            return subproof(m, start, start + split, whole) + [tree.range_hash(start + split, end)]
        return subproof(m - split, start + split, end, False) + [tree.range_hash(start, start + split)]

    return subproof(old_size, 0, tree.size, True)


def consistent(old_size: int, old_root: bytes, new_size: int, new_root: bytes, proof: list[bytes]) -> bool:
    """RFC 9162 §2.1.4.2: does ``proof`` show the old tree is the first ``old_size`` leaves of the new?"""
    if not 0 < old_size <= new_size:
        return False
    if old_size == new_size:
        return not proof and old_root == new_root
    path = [old_root, *proof] if old_size & (old_size - 1) == 0 else list(proof)
    if not path:
        return False
    fn, sn = old_size - 1, new_size - 1
    while fn & 1:
        fn, sn = fn >> 1, sn >> 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            fr, sr = node_hash(c, fr), node_hash(c, sr)
            while not fn & 1 and fn != 0:
                fn, sn = fn >> 1, sn >> 1
        else:
            sr = node_hash(sr, c)
        fn, sn = fn >> 1, sn >> 1
    return fr == old_root and sr == new_root and sn == 0


def inclusion_proof(tree: Levels, index: int) -> list[bytes]:
    """RFC 9162 §2.1.3.1: the sibling hashes from leaf ``index`` up to the root, nearest first."""
    if not 0 <= index < tree.size:
        raise IndexError(f"leaf {index} is not in a tree of {tree.size}")
    proof = []
    for level in tree._levels[:-1]:
        sibling = index ^ 1
        if sibling < len(level):  # a carried odd node has no sibling at this level
            proof.append(level[sibling])
        index >>= 1
    return proof


def root_from_inclusion(leaf: bytes, index: int, size: int, proof: list[bytes]) -> bytes | None:
    """RFC 9162 §2.1.3.2: the root ``proof`` leads ``leaf`` to, or None if it cannot be a
    proof for leaf ``index`` of a tree of ``size`` (wrong length, index out of range)."""
    if not 0 <= index < size:
        return None
    fn, sn, root = index, size - 1, leaf
    for sibling in proof:
        if sn == 0:
            return None
        if fn & 1 or fn == sn:
            root = node_hash(sibling, root)
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            root = node_hash(root, sibling)
        fn >>= 1
        sn >>= 1
    return root if sn == 0 else None
