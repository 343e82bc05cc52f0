#!/usr/bin/env python3
"""Sends N concurrent POST /v1/signals of SIZE bytes each to an ARK API, the way a careless
producer (or an attacker within the rate limits) would: a batch of small signals padded
with JSON whitespace to SIZE. Each sender stops sending as soon as an answer arrives (a
server may refuse before reading the body). Prints one JSON line per request: index,
status, Retry-After, and the trace ids the answer accepted.

    large_bodies.py HOST PORT TOKEN1,TOKEN2 N SIZE SIGNALS_PER_BODY
"""
import json, select, socket, sys, threading

def body_head(i, signals):
    items = []
    for j in range(signals):
        items.append(json.dumps({"trace_id": f"mem-{i}-{j}", "symbol": "AAPL", "price": 101.5, "volume": 100, "source": "memory-test",
                                 "action": "buy", "position_size_pct": 0.001, "leverage": 1.0, "stop_loss": 99.0, "risk_reward_ratio": 2.0}))
    return ("[" + ",".join(items)).encode()

def send(host, port, token, i, size, signals, padding, out):
    head = body_head(i, signals)
    total = len(head) + (size - len(head) - 1) + 1
    request = (f"POST /v1/signals HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {token}\r\nContent-Type: application/json\r\n"
               f"Content-Length: {total}\r\nConnection: close\r\n\r\n").encode()
    s = socket.create_connection((host, port), timeout=120)
    answer = b""
    try:
        s.sendall(request + head)
        left = size - len(head) - 1
        view = memoryview(padding)
        while left > 0:
            readable, _, _ = select.select([s], [], [], 0)
            if readable: break  # answered before the body was sent
            n = s.send(view[:min(left, len(padding))])
            left -= n
        else:
            s.sendall(b"]")
    except (BrokenPipeError, ConnectionResetError):
        pass
    try:
        s.settimeout(120)
        while True:
            chunk = s.recv(65536)
            if not chunk: break
            answer += chunk
            if b"\r\n\r\n" in answer:
                head_end = answer.index(b"\r\n\r\n")
                headers = answer[:head_end].decode(errors="replace").split("\r\n")
                length = next((int(h.split(":", 1)[1]) for h in headers if h.lower().startswith("content-length:")), None)
                if length is not None and len(answer) - head_end - 4 >= length: break
    except (ConnectionResetError, socket.timeout):
        pass
    finally:
        s.close()
    result = {"index": i, "status": 0, "retry_after": None, "accepted": []}
    if b"\r\n\r\n" in answer:
        head_end = answer.index(b"\r\n\r\n")
        lines = answer[:head_end].decode(errors="replace").split("\r\n")
        result["status"] = int(lines[0].split()[1])
        for h in lines[1:]:
            if h.lower().startswith("retry-after:"): result["retry_after"] = h.split(":", 1)[1].strip()
        try:
            doc = json.loads(answer[head_end + 4:])
            result["accepted"] = [x["trace_id"] for x in doc.get("signals", []) if x.get("status") == "accepted"]
        except ValueError:
            pass
    out[i] = result

def main(host, port, tokens, n, size, signals):
    padding = b" " * (1 << 20)
    out = [None] * n
    threads = [threading.Thread(target=send, args=(host, port, tokens[i % len(tokens)], i, size, signals, padding, out)) for i in range(n)]
    for t in threads: t.start()
    for t in threads: t.join()
    for r in out: print(json.dumps(r))

if __name__ == "__main__":
    if len(sys.argv) != 7: sys.exit(__doc__)
    main(sys.argv[1], int(sys.argv[2]), sys.argv[3].split(","), int(sys.argv[4]), int(sys.argv[5]), int(sys.argv[6]))
