"""Inclusion proofs over the ledger's tree, as RFC 9162 defines them."""

from __future__ import annotations

import pytest

from storage.merkle import Levels, inclusion_proof, leaf_hash, root_from_inclusion, root_of


def rfc_path(index: int, leaves: list[bytes]) -> list[bytes]:
    """RFC 9162 §2.1.3.1's PATH(m, D[n]), by its recursive definition."""
    if len(leaves) <= 1:
        return []
    split = 1 << ((len(leaves) - 1).bit_length() - 1)
    if index < split:
        return rfc_path(index, leaves[:split]) + [root_of(leaves[split:])]
    return rfc_path(index - split, leaves[split:]) + [root_of(leaves[:split])]


def leaves_of(size: int) -> list[bytes]:
    return [leaf_hash(f"entry {i}".encode()) for i in range(size)]


@pytest.mark.parametrize("size", [*range(1, 40), 64, 65, 100])
def test_every_leaf_proves_into_the_root_by_the_rfc_path(size: int) -> None:
    leaves = leaves_of(size)
    tree = Levels(leaves)
    assert tree.root() == root_of(leaves)
    for index in range(size):
        proof = inclusion_proof(tree, index)
        assert proof == rfc_path(index, leaves)
        assert root_from_inclusion(leaves[index], index, size, proof) == tree.root()


def test_a_changed_leaf_sibling_or_index_leads_elsewhere() -> None:
    leaves = leaves_of(21)
    tree = Levels(leaves)
    proof = inclusion_proof(tree, 13)
    assert root_from_inclusion(leaf_hash(b"forged"), 13, 21, proof) != tree.root()
    assert root_from_inclusion(leaves[13], 12, 21, proof) != tree.root()
    for i in range(len(proof)):
        bent = [*proof[:i], bytes(32), *proof[i + 1 :]]
        assert root_from_inclusion(leaves[13], 13, 21, bent) != tree.root()
    assert root_from_inclusion(leaves[13], 13, 21, [*proof, bytes(32)]) is None  # too long
    assert root_from_inclusion(leaves[13], 21, 21, proof) is None  # beyond the tree
