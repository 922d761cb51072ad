#!/usr/bin/env python3
"""Verify a Consent IVR evidence bundle, with nothing but Python 3's standard library.

    python3 verify.py                       # the bundle this file sits in (unzipped)
    python3 verify.py evidence-CA….zip      # or a bundle still zipped
    python3 verify.py --public-key KEY …    # the ledger's public key as you kept it (base64)
    python3 verify.py --consistency F.json  # a later checkpoint extends one you kept (`ivr prove consistency`)

It checks everything the bundle states, in this order, and trusts nothing it has not
checked:

1. every file against the bundle's manifest (proofs.json "files"), this script included;
2. the checkpoint's Ed25519 signature with the public key (yours, given with
   --public-key, or else the one in the bundle — which proves only that the bundle is
   consistent: keep the key from the service, not from a bundle);
3. the RFC 3161 time-stamp token, if any: that it is granted and states the SHA-256 of
   the checkpoint's signed text (its signature is the TSA's: check it with
   ``openssl ts -verify -data checkpoint-signed.txt -in checkpoint.tsr -CAfile TSA.pem``);
4. each record: its row rehashes to its ledger entry, the entry to its Merkle leaf, and
   the leaf through its inclusion proof to the checkpoint's signed root;
5. evidence.json shows exactly the proven rows; each recording's bytes hash to the
   SHA-256 its proven record states.

Exit 0 with one "verified" line; 1 naming each failure; 2 when the bundle cannot be read.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import sys
import zipfile
from pathlib import Path
from typing import Any

FORMAT = "consent-ivr bundle proofs v1"
CONSISTENCY_FORMAT = "consent-ivr consistency proof v1"
SIGNED_HEADER = "consent-ivr ledger checkpoint v1"
CHECKPOINT_FIELDS = {"origin", "tree_size", "root_hash", "time", "key_id", "signature"}
PROVEN_ELSEWHERE = {"proofs.json"}  # the manifest itself: every claim in it is checked

# ---------------------------------------------------------------- Ed25519 (RFC 8032 §5.1.7)

_P = 2**255 - 19
_Q = 2**252 + 27742317777372353535851937790883648493
_D = -121665 * pow(121666, _P - 2, _P) % _P
_SQRT_M1 = pow(2, (_P - 1) // 4, _P)
_Point = tuple[int, int, int, int]  # extended coordinates (X, Y, Z, T)


def _add(a: _Point, b: _Point) -> _Point:
    x1, y1, z1, t1 = a
    x2, y2, z2, t2 = b
    aa, bb = (y1 - x1) * (y2 - x2) % _P, (y1 + x1) * (y2 + x2) % _P
    cc, dd = 2 * t1 * t2 * _D % _P, 2 * z1 * z2 % _P
    e, f, g, h = bb - aa, dd - cc, dd + cc, bb + aa
    return (e * f % _P, g * h % _P, f * g % _P, e * h % _P)


def _mul(scalar: int, point: _Point) -> _Point:
    result: _Point = (0, 1, 1, 0)
    while scalar:
        if scalar & 1:
            result = _add(result, point)
        point = _add(point, point)
        scalar >>= 1
    return result


def _same(a: _Point, b: _Point) -> bool:
    return (a[0] * b[2] - b[0] * a[2]) % _P == 0 and (a[1] * b[2] - b[1] * a[2]) % _P == 0


def _x_of(y: int, sign: int) -> int | None:
    if y >= _P:
        return None
    x2 = (y * y - 1) * pow(_D * y * y + 1, _P - 2, _P) % _P
    if x2 == 0:
        return None if sign else 0
    x = pow(x2, (_P + 3) // 8, _P)
    if (x * x - x2) % _P:
        x = x * _SQRT_M1 % _P
    if (x * x - x2) % _P:
        return None
    return _P - x if (x & 1) != sign else x


def _point(encoded: bytes) -> _Point | None:
    y = int.from_bytes(encoded, "little")
    sign, y = y >> 255, y & ((1 << 255) - 1)
    x = _x_of(y, sign)
    return None if x is None else (x, y, 1, x * y % _P)


_GY = 4 * pow(5, _P - 2, _P) % _P
_GX = _x_of(_GY, 0)
assert _GX is not None
_BASE: _Point = (_GX, _GY, 1, _GX * _GY % _P)


def ed25519_verify(public: bytes, message: bytes, signature: bytes) -> bool:
    if len(public) != 32 or len(signature) != 64:
        return False
    a, r = _point(public), _point(signature[:32])
    s = int.from_bytes(signature[32:], "little")
    if a is None or r is None or s >= _Q:
        return False
    h = int.from_bytes(hashlib.sha512(signature[:32] + public + message).digest(), "little") % _Q
    return _same(_mul(s, _BASE), _add(r, _mul(h, a)))


# ---------------------------------------------------------------- the ledger's hashing
# The same as storage/ledger.py and storage/merkle.py (this file may import nothing of
# the project); tests/test_inclusion_proofs.py runs both through the same cases.


def canonical_json(row: Any) -> str:
    return json.dumps(row, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def entry_hash(row: Any, prev_hash: str) -> str:
    return hashlib.sha256((canonical_json(row) + prev_hash).encode("utf-8")).hexdigest()


def leaf_hash(seq: int, kind: str, ref_id: int, entry: str) -> bytes:
    return hashlib.sha256(b"\x00" + f"{seq}:{kind}:{ref_id}:{entry}".encode()).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def root_from_inclusion(leaf: bytes, index: int, size: int, proof: list[bytes]) -> bytes | None:
    """RFC 9162 §2.1.3.2."""
    if not 0 <= index < size:
        return None
    fn, sn, root = index, size - 1, leaf
    for sibling in proof:
        if sn == 0:
            return None
        if fn & 1 or fn == sn:
            root = node_hash(sibling, root)
            while not fn & 1 and fn != 0:
                fn, sn = fn >> 1, sn >> 1
        else:
            root = node_hash(root, sibling)
        fn, sn = fn >> 1, sn >> 1
    return root if sn == 0 else None


def consistent(old_size: int, old_root: bytes, new_size: int, new_root: bytes, proof: list[bytes]) -> bool:
    """RFC 9162 §2.1.4.2."""
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


def signed_text(checkpoint: dict[str, Any]) -> bytes:
    fields = (checkpoint["origin"], checkpoint["tree_size"], checkpoint["root_hash"], checkpoint["time"])
    return (SIGNED_HEADER + "\n" + "\n".join(str(f) for f in fields) + "\n").encode()


# ---------------------------------------------------------------- RFC 3161 (just enough DER)

_SHA256_OID = bytes.fromhex("608648016503040201")
_TST_INFO_OID = bytes.fromhex("2a864886f70d0109100104")


def _tlv(data: bytes, at: int) -> tuple[int, int, int]:
    """(tag, start of value, end of value) of the DER element at ``at``."""
    tag, length = data[at], data[at + 1]
    at += 2
    if length & 0x80:
        octets = length & 0x7F
        length = int.from_bytes(data[at : at + octets], "big")
        at += octets
    if at + length > len(data):
        raise ValueError("truncated DER")
    return tag, at, at + length


def _children(data: bytes, start: int, end: int) -> list[tuple[int, int, int]]:
    found, at = [], start
    while at < end:
        element = _tlv(data, at)
        found.append(element)
        at = element[2]
    return found


def timestamp_imprint(reply: bytes) -> tuple[bytes, str]:
    """(SHA-256 the token states, its genTime) from a granted TimeStampResp; ValueError otherwise."""
    _, start, end = _tlv(reply, 0)
    status_info, token = _children(reply, start, end)[:2]
    status = _children(reply, status_info[1], status_info[2])[0]
    if int.from_bytes(reply[status[1] : status[2]], "big") not in (0, 1):
        raise ValueError("the TSA did not grant the time-stamp")
    signed_data = _children(reply, token[1], token[2])[1]  # [0] EXPLICIT SignedData
    signed = _children(reply, signed_data[1], signed_data[2])[0]
    encap = _children(reply, signed[1], signed[2])[2]
    content_type, explicit = _children(reply, encap[1], encap[2])[:2]
    if reply[content_type[1] : content_type[2]] != _TST_INFO_OID:
        raise ValueError("the token does not hold a TSTInfo")
    octets = _children(reply, explicit[1], explicit[2])[0]
    tst = reply[octets[1] : octets[2]]
    _, tst_start, tst_end = _tlv(tst, 0)
    fields = _children(tst, tst_start, tst_end)
    imprint = _children(tst, fields[2][1], fields[2][2])
    algorithm = _children(tst, imprint[0][1], imprint[0][2])[0]
    if tst[algorithm[1] : algorithm[2]] != _SHA256_OID:
        raise ValueError("the token's digest is not SHA-256")
    gen_time = tst[fields[4][1] : fields[4][2]].decode("ascii")
    return tst[imprint[1][1] : imprint[1][2]], gen_time


# ---------------------------------------------------------------- the bundle


class Bundle:
    """The bundle's files by name, from a directory or a zip."""

    def __init__(self, where: Path) -> None:
        self.files: dict[str, bytes] = {}
        if where.is_dir():
            for path in sorted(where.rglob("*")):
                if path.is_file():
                    self.files[path.relative_to(where).as_posix()] = path.read_bytes()
        else:
            with zipfile.ZipFile(where) as archive:
                for name in archive.namelist():
                    if not name.endswith("/"):
                        self.files[name] = archive.read(name)

    def json(self, name: str) -> Any:
        if name not in self.files:
            raise ValueError(f"{name} is missing")
        try:
            return json.loads(self.files[name].decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ValueError(f"{name} is not valid JSON ({exc})") from None


def check(bundle: Bundle, public_key: str | None) -> tuple[list[str], str]:
    """(every failure found, the summary of what was verified)."""
    proofs = bundle.json("proofs.json")
    if proofs.get("format") != FORMAT:
        return [f"proofs.json is not {FORMAT!r}"], ""
    failures = _check_manifest(bundle, proofs["files"])
    checkpoint = bundle.json("checkpoint.json")
    if set(checkpoint) != CHECKPOINT_FIELDS:
        return [*failures, f"checkpoint.json: fields {sorted(checkpoint)} are not {sorted(CHECKPOINT_FIELDS)}"], ""
    signed, stamped = _check_checkpoint(bundle, checkpoint, public_key)
    failures += signed
    proven = _check_entries(proofs, checkpoint)
    failures += proven.failures
    failures += _shown_as_proven(bundle.json("evidence.json"), proven.rows)
    media = [row for kind, row in proven.rows.values() if kind == "recording_media"]
    failures += _check_media(bundle, media)
    summary = (
        f"verified: {len(proven.rows)} records of call {proofs['call_sid']} are entries of ledger "
        f"{checkpoint['origin']} under its checkpoint of {checkpoint['time']} ({checkpoint['tree_size']:,} "
        f"entries, key {checkpoint['key_id']}{' as given' if public_key else ' from the bundle'}){stamped}; "
        f"{len(media)} recording(s) match their chained SHA-256; {len(proofs['files'])} files match the manifest"
    )
    return failures, summary


def _check_manifest(bundle: Bundle, manifest: dict[str, str]) -> list[str]:
    failures = []
    for name, data in bundle.files.items():
        if name in PROVEN_ELSEWHERE:
            continue
        if name not in manifest:
            failures.append(f"{name}: not in the bundle's manifest (added?)")
        elif hashlib.sha256(data).hexdigest() != manifest[name]:
            failures.append(f"{name}: its bytes differ from the manifest (changed)")
    return failures + [f"{name}: listed in the manifest but missing" for name in manifest if name not in bundle.files]


def _check_checkpoint(bundle: Bundle, checkpoint: dict[str, Any], public_key: str | None) -> tuple[list[str], str]:
    """(failures, a note of the time-stamp): the signature, the signed text, the TSA's token."""
    failures = []
    key = base64.b64decode(public_key or bundle.files["ledger-public-key.txt"].decode().strip(), validate=True)
    if hashlib.sha256(key).hexdigest()[:16] != checkpoint["key_id"]:
        failures.append(f"checkpoint.json: signed by key {checkpoint['key_id']}, not by the key given")
    text = signed_text(checkpoint)
    if not ed25519_verify(key, text, base64.b64decode(checkpoint["signature"], validate=True)):
        failures.append("checkpoint.json: the signature does not verify")
    if bundle.files.get("checkpoint-signed.txt") != text:
        failures.append("checkpoint-signed.txt: not the checkpoint's signed text")
    if "checkpoint.tsr" not in bundle.files:
        return failures, ""
    try:
        digest, gen_time = timestamp_imprint(bundle.files["checkpoint.tsr"])
    except (ValueError, IndexError) as exc:
        return [*failures, f"checkpoint.tsr: not a granted RFC 3161 time-stamp ({exc})"], ""
    if digest != hashlib.sha256(text).digest():
        failures.append("checkpoint.tsr: the time-stamp is about other data")
    return failures, f", time-stamped by a TSA at {gen_time}"


class _Proven:
    def __init__(self) -> None:
        self.rows: dict[int, tuple[str, dict[str, Any]]] = {}
        self.failures: list[str] = []


def _check_entries(proofs: dict[str, Any], checkpoint: dict[str, Any]) -> _Proven:
    """Each row → its entry's hash → its leaf → through its proof → the signed root."""
    root, size = bytes.fromhex(checkpoint["root_hash"]), int(checkpoint["tree_size"])
    call_sid, proven = proofs["call_sid"], _Proven()
    previous: dict[str, Any] | None = None
    for entry in proofs["entries"]:
        seq, kind, ref_id, row = entry["seq"], entry["kind"], entry["ref_id"], entry["row"]
        where = f"entry #{seq} ({kind} id {ref_id})"
        if row.get("id") != ref_id:
            proven.failures.append(f"{where}: the row is not the one the entry names")
        if row.get("call_sid", call_sid) != call_sid:
            proven.failures.append(f"{where}: the row is of another call")
        if entry_hash(row, entry["prev_hash"]) != entry["hash"]:
            proven.failures.append(f"{where}: the row does not hash to its ledger entry (edited)")
        if previous is not None and previous["seq"] + 1 == seq and previous["hash"] != entry["prev_hash"]:
            proven.failures.append(f"{where}: does not link to entry #{previous['seq']}")
        proof = [bytes.fromhex(h) for h in entry["proof"]]
        if root_from_inclusion(leaf_hash(seq, kind, ref_id, entry["hash"]), seq - 1, size, proof) != root:
            proven.failures.append(f"{where}: its inclusion proof does not lead to the signed root")
        proven.rows[seq] = (kind, row)
        previous = entry
    proven.failures += _belonging(proven.rows)
    return proven


def _belonging(rows: dict[int, tuple[str, dict[str, Any]]]) -> list[str]:
    """Rows without a CallSid of their own must hang off one of the call's proven rows."""
    of_kind: dict[str, list[dict[str, Any]]] = {}
    for kind, row in rows.values():
        of_kind.setdefault(kind, []).append(row)
    parents = {
        "request_events": ("request_id", {r.get("id") for r in of_kind.get("requests", [])}),
        "transfer_events": ("transfer_id", {r.get("transfer_id") for r in of_kind.get("transfers", [])}),
        "flow_versions": (
            "version",
            {
                r.get("flow_version")
                for kind in ("calls", "keypresses", "consent_events")
                for r in of_kind.get(kind, [])
            },
        ),
    }
    failures = []
    for kind, (field, known) in parents.items():
        for row in of_kind.get(kind, []):
            if row.get(field) not in known:
                failures.append(f"{kind} id {row.get('id')}: belongs to no proven record of this call")
    return failures


def _check_media(bundle: Bundle, media: list[dict[str, Any]]) -> list[str]:
    failures = []
    for row in media:
        name = f"recordings/{row['recording_sid']}.wav"
        if name not in bundle.files:
            failures.append(f"{name}: a proven recording is not in the bundle")
        elif hashlib.sha256(bundle.files[name]).hexdigest() != row["sha256"]:
            failures.append(f"{name}: its bytes do not hash to the SHA-256 its record states")
    return failures


def _shown_as_proven(story: dict[str, Any], proven: dict[int, tuple[str, dict[str, Any]]]) -> list[str]:
    """evidence.json's chained records must be exactly the proven rows (no more, none changed)."""
    failures = []
    for value in story.values():
        for record in value if isinstance(value, list) else [value]:
            if not isinstance(record, dict) or not isinstance(record.get("ledger"), dict):
                continue
            seq = record["ledger"].get("seq")
            if seq is None:
                failures.append("evidence.json: shows a row that was never chained")
            elif seq not in proven or proven[seq][1] != record.get("row"):
                failures.append(f"evidence.json: entry #{seq} is not shown as proven")
    return failures


def check_consistency(statement: dict[str, Any], public_key: str | None) -> tuple[list[str], str]:
    """A proof (``ivr prove consistency``) that one signed checkpoint's tree begins the other's."""
    if statement.get("format") != CONSISTENCY_FORMAT:
        return [f"not a {CONSISTENCY_FORMAT!r}"], ""
    key_b64 = public_key or statement["public_key"]
    key = base64.b64decode(key_b64, validate=True)
    failures = []
    old, new = statement["old"], statement["new"]
    for name, checkpoint in (("old", old), ("new", new)):
        if set(checkpoint) != CHECKPOINT_FIELDS:
            return [f"{name} checkpoint: fields {sorted(checkpoint)} are not {sorted(CHECKPOINT_FIELDS)}"], ""
        signature = base64.b64decode(checkpoint["signature"], validate=True)
        if not ed25519_verify(key, signed_text(checkpoint), signature):
            failures.append(f"{name} checkpoint ({checkpoint['tree_size']:,} entries): the signature does not verify")
    if old["origin"] != new["origin"]:
        failures.append(f"the checkpoints are of two ledgers ({old['origin']}, {new['origin']})")
    proof = [bytes.fromhex(h) for h in statement["proof"]]
    old_size, new_size = int(old["tree_size"]), int(new["tree_size"])
    if not consistent(old_size, bytes.fromhex(old["root_hash"]), new_size, bytes.fromhex(new["root_hash"]), proof):
        failures.append(
            f"the ledger at {new_size:,} entries does not begin with the one at {old_size:,} (cut or rewritten)"
        )
    summary = (
        f"verified: ledger {new['origin']}'s {new_size:,} entries of {new['time']} begin with the "
        f"{old_size:,} of {old['time']} (key {'as given' if public_key else 'from the file'})"
    )
    return failures, summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Verify a Consent IVR evidence bundle (standard library only).")
    parser.add_argument("bundle", nargs="?", type=Path, default=Path(__file__).resolve().parent)
    parser.add_argument("--public-key", help="the ledger's Ed25519 public key (base64), as you kept it")
    parser.add_argument("--consistency", type=Path, help="check this `ivr prove consistency` file instead")
    args = parser.parse_args(argv)
    try:
        if args.consistency is not None:
            failures, summary = check_consistency(json.loads(args.consistency.read_text()), args.public_key)
        else:
            failures, summary = check(Bundle(args.bundle), args.public_key)
    except FileNotFoundError as exc:
        print(f"cannot read the bundle: {exc}", file=sys.stderr)
        return 2
    except (KeyError, TypeError, ValueError, AttributeError, zipfile.BadZipFile) as exc:
        print(
            f"FAILED: the bundle is malformed: {exc}"
            if isinstance(exc, ValueError)
            else f"FAILED: the bundle is malformed ({type(exc).__name__}: {exc})"
        )
        return 1
    for failure in failures:
        print(f"FAILED: {failure}")
    if failures:
        print(f"{len(failures)} problem(s): not proven")
        return 1
    print(summary)
    return 0


if __name__ == "__main__":
    sys.exit(main())
