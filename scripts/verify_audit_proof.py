#!/usr/bin/env python3
"""Checks an ARK audit proof by hand: Python's standard library plus `cryptography`.

    curl -s -H "Authorization: Bearer $TOKEN" $API/v1/traces/$TRACE/proof > proof.json
    python3 scripts/verify_audit_proof.py proof.json audit_ed25519.pem.pub

Exit 0 and "proof verified" when the record is a leaf of the tree whose head the key
signed; exit 1 naming the step that fails. Nothing of ARK's code is used.
"""
import hashlib, json, sys
from cryptography.hazmat.primitives.serialization import load_pem_public_key

def h(b): return hashlib.sha256(b).digest()

def main(proof_path, key_path):
    p = json.load(open(proof_path))
    c = p["checkpoint"]
    if c is None: sys.exit("no signed checkpoint covers this leaf yet: ask again in a second")
    # 1. The leaf: SHA-256(0x00 || record), RFC 9162 2.1.1.
    leaf = h(b"\x00" + p["record"].encode())
    if leaf.hex() != p["leaf_hash"]: sys.exit("the record does not hash to leaf_hash")
    # 2. The audit path up to the root, RFC 9162 2.1.3.2.
    fn, sn, r = p["leaf_index"], p["tree_size"] - 1, leaf
    for sibling in map(bytes.fromhex, p["audit_path"]):
        if sn == 0: sys.exit("the audit path is too long")
        if fn & 1 or fn == sn:
            r = h(b"\x01" + sibling + r)
            while fn and not fn & 1: fn, sn = fn >> 1, sn >> 1
        else:
            r = h(b"\x01" + r + sibling)
        fn, sn = fn >> 1, sn >> 1
    if sn != 0: sys.exit("the audit path is too short")
    if p["tree_size"] != c["size"] or r.hex() != c["root"]: sys.exit("the path does not lead to the signed root")
    # 3. The checkpoint: its text holds that size and root, and the key signed that text.
    text = c["signed_text"].encode()
    if f"size {c['size']}\nroot {c['root']}\n".encode() not in text: sys.exit("signed_text does not state this size and root")
    key = load_pem_public_key(open(key_path, "rb").read())
    key.verify(bytes.fromhex(c["signature"]), text)  # raises InvalidSignature
    print(f"proof verified: {p['trace_id']} is leaf {p['leaf_index']} of {c['size']}, signed at time_ns {c['time_ns']} by key {c['key_id']}")

if __name__ == "__main__":
    if len(sys.argv) != 3: sys.exit(__doc__)
    try:
        main(sys.argv[1], sys.argv[2])
    except Exception as e:  # InvalidSignature and unreadable files alike
        sys.exit(f"proof NOT verified: {type(e).__name__}: {e}")
