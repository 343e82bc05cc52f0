#!/usr/bin/env python3
"""Checks an ARK audit proof by hand: Python's standard library plus `cryptography`.

    curl -s -H "Authorization: Bearer $TOKEN" $API/v1/traces/$TRACE/proof > proof.json
    python3 scripts/verify_audit_proof.py proof.json audit_ed25519.pem.pub

    curl -s -H "Authorization: Bearer $TOKEN" "$API/v1/traces/$TRACE/proof?cosigned=true" > proof.json
    python3 scripts/verify_audit_proof.py proof.json audit_ed25519.pem.pub --witness-key witness.pem

Exit 0 and "proof verified" when the record is a leaf of the tree whose head the key
signed (and, with --witness-key, repeatable, that each witness cosigned that head); exit 1
naming the step that fails. Nothing of ARK's code is used.
"""
import hashlib, json, sys
from cryptography.hazmat.primitives.serialization import load_pem_public_key

def h(b): return hashlib.sha256(b).digest()

def main(proof_path, key_path, witness_paths=()):
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
    # 4. Each witness cosigned that very head: its text ends with the checkpoint's signed text.
    witnessed = []
    for path in witness_paths:
        wkey = load_pem_public_key(open(path, "rb").read())
        raw = wkey.public_bytes_raw() if hasattr(wkey, "public_bytes_raw") else None
        kid = hashlib.sha256(raw).hexdigest()[:16] if raw else None
        mine = [s for s in p.get("cosignatures", []) if s["witness_key_id"] == kid]
        if not mine: sys.exit(f"no cosignature of witness {kid} ({path}) over this head")
        s = mine[0]
        stext = s["signed_text"].encode()
        if (not stext.startswith(f"ark-audit-cosignature/v1\nwitness {kid}\n".encode()) or not stext.endswith(text)
                or f"\nlog_signature {c['signature']}\n".encode() not in stext):
            sys.exit(f"the cosignature of witness {kid} is not over this checkpoint and its signature")
        wkey.verify(bytes.fromhex(s["cosignature"]), stext)  # raises InvalidSignature
        witnessed.append(kid)
    print(f"proof verified: {p['trace_id']} is leaf {p['leaf_index']} of {c['size']}, signed at time_ns {c['time_ns']} by key {c['key_id']}"
          + (f", cosigned by witness {', '.join(witnessed)}" if witnessed else ""))

if __name__ == "__main__":
    args = sys.argv[1:]
    witnesses = []
    while "--witness-key" in args:
        i = args.index("--witness-key")
        if i + 1 >= len(args): sys.exit(__doc__)
        witnesses.append(args[i + 1])
        del args[i:i + 2]
    if len(args) != 2: sys.exit(__doc__)
    try:
        main(args[0], args[1], witnesses)
    except Exception as e:  # InvalidSignature and unreadable files alike
        sys.exit(f"proof NOT verified: {type(e).__name__}: {e}")
