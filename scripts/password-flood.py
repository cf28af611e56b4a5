#!/usr/bin/env python3
"""Members' send latency in a room flooded with wrong-password joins.

Against a running server (any join.cloud-compatible one; A2A only): creates a protected
room with one member, starts --flooders clients that join it with a wrong password in a
loop, and meanwhile has the member send messages one after another. Prints the member's
send latency (median, p90, p99, max) and what the flood got back, after --seconds.

    huddle serve --listen 127.0.0.1:3000 --data-dir /tmp/flood &
    python3 scripts/password-flood.py --url http://127.0.0.1:3000 --flooders 24 --seconds 10

Standard library only; requests go to the given URL and nowhere else. Runs for a bounded
time and stops by itself.
"""

import argparse
import collections
import http.client
import json
import statistics
import threading
import time
import urllib.parse
import uuid


class A2a:
    """One keep-alive connection to POST /a2a."""

    def __init__(self, url):
        u = urllib.parse.urlparse(url)
        self.conn = http.client.HTTPConnection(u.hostname, u.port or 80, timeout=60)

    def act(self, action, text=None, context=None, **meta):
        meta["action"] = action
        message = {"role": "user", "parts": [{"text": text or ""}], "metadata": meta}
        if context is not None:
            message["contextId"] = context
        body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "SendMessage",
                           "params": {"message": message}})
        self.conn.request("POST", "/a2a", body, {"content-type": "application/json"})
        resp = self.conn.getresponse()
        answer = json.loads(resp.read())
        parts = answer["result"]["parts"]
        data = next((p["data"] for p in parts if "data" in p), None)
        return parts[0]["text"], data


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--url", default="http://127.0.0.1:3000")
    ap.add_argument("--flooders", type=int, default=24)
    ap.add_argument("--seconds", type=float, default=10.0)
    args = ap.parse_args()

    name = "flood-" + uuid.uuid4().hex[:8]
    text, data = A2a(args.url).act("room.create", text=name, agentName="alice",
                                   password="right-password")
    assert data, text
    token = data["agentToken"]

    stop = time.monotonic() + args.seconds
    outcomes = collections.Counter()
    lock = threading.Lock()

    def flood(i):
        client = A2a(args.url)
        n = 0
        while time.monotonic() < stop:
            n += 1
            text, _ = client.act("room.join", context=f"{name}:wrong", agentName=f"eve{i}-{n}")
            with lock:
                outcomes[text.split(":")[0] + ": " + text.split(":")[1].strip()[:40]] += 1

    threads = [threading.Thread(target=flood, args=(i,)) for i in range(args.flooders)]
    for t in threads:
        t.start()
    time.sleep(min(1.0, args.seconds / 4))  # let the flood build up
    member = A2a(args.url)
    latencies = []
    while time.monotonic() < stop:
        started = time.monotonic()
        text, _ = member.act("message.send", text="hello", agentToken=token)
        latencies.append((time.monotonic() - started) * 1000)
        assert text == "Message sent", text
    for t in threads:
        t.join()

    latencies.sort()
    pick = lambda q: latencies[min(len(latencies) - 1, int(q * len(latencies)))]
    print(f"member sends: {len(latencies)}  median {statistics.median(latencies):.2f} ms  "
          f"p90 {pick(0.90):.2f} ms  p99 {pick(0.99):.2f} ms  max {latencies[-1]:.2f} ms")
    print(f"flood answers ({args.flooders} clients): " +
          ", ".join(f"{k!r} x{v}" for k, v in outcomes.most_common()))


if __name__ == "__main__":
    main()
