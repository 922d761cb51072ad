"""Inclusion proofs over the ledger's tree, as RFC 9162 defines them."""

from __future__ import annotations

import pytest

from ivr.evidence import bundle_verifier
from storage import merkle
from storage.merkle import (
    Levels,
    consistency_proof,
    inclusion_proof,
    leaf_hash,
    root_of,
)


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


# The service's implementation, and the one every bundle's stdlib-only verify.py carries.
INCLUDED_BY = [merkle.root_from_inclusion, bundle_verifier.root_from_inclusion]
CONSISTENT_BY = [merkle.consistent, bundle_verifier.consistent]


@pytest.mark.parametrize("root_from_inclusion", INCLUDED_BY)
@pytest.mark.parametrize("size", [*range(1, 40), 64, 65, 100])
def test_every_leaf_proves_into_the_root_by_the_rfc_path(size: int, root_from_inclusion) -> None:
    leaves = leaves_of(size)
    tree = Levels(leaves)
    assert tree.root() == root_of(leaves)
    for index in range(size):
        proof = inclusion_proof(tree, index)
        assert proof == rfc_path(index, leaves)
        assert root_from_inclusion(leaves[index], index, size, proof) == tree.root()


@pytest.mark.parametrize("root_from_inclusion", INCLUDED_BY)
def test_a_changed_leaf_sibling_or_index_leads_elsewhere(root_from_inclusion) -> None:
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


def rfc_subproof(m: int, leaves: list[bytes], whole: bool) -> list[bytes]:
    """RFC 9162 §2.1.4.1's SUBPROOF, by its recursive definition."""
    if m == len(leaves):
        return [] if whole else [root_of(leaves)]
    split = 1 << ((len(leaves) - 1).bit_length() - 1)
    if m <= split:
        return rfc_subproof(m, leaves[:split], whole) + [root_of(leaves[split:])]
    return rfc_subproof(m - split, leaves[split:], False) + [root_of(leaves[:split])]


@pytest.mark.parametrize("consistent", CONSISTENT_BY)
@pytest.mark.parametrize("new_size", [*range(1, 34), 64, 100])
def test_every_earlier_tree_is_proved_a_prefix_of_the_later(new_size: int, consistent) -> None:
    leaves = leaves_of(new_size)
    tree = Levels(leaves)
    for old_size in range(1, new_size + 1):
        proof = consistency_proof(tree, old_size)
        assert proof == rfc_subproof(old_size, leaves, True)
        assert consistent(old_size, root_of(leaves[:old_size]), new_size, tree.root(), proof)


@pytest.mark.parametrize("consistent", CONSISTENT_BY)
def test_a_rewritten_or_cut_history_is_not_consistent(consistent) -> None:
    leaves = leaves_of(40)
    tree = Levels(leaves)
    proof = consistency_proof(tree, 13)
    old_root = root_of(leaves[:13])
    forked = root_of([*leaves[:12], leaf_hash(b"rewritten")])
    assert not consistent(13, forked, 40, tree.root(), proof)  # the old tree was not this one's prefix
    assert not consistent(13, old_root, 40, root_of(leaves[:39]), proof)  # the new root is another tree
    assert not consistent(13, old_root, 40, tree.root(), proof[:-1])
    assert not consistent(41, old_root, 40, tree.root(), proof)  # the ledger shrank
