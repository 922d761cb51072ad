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

__all__ = ["EMPTY_ROOT", "Frontier", "leaf_data", "leaf_hash", "node_hash", "root_of"]

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
