#!/usr/bin/env python3
"""
simctl: the DALP simulator's control API (/_sim/) from the shell, for test scripts.

  simctl.py [--url URL] log [--count] [--path-prefix P] [--since SEQ]
  simctl.py [--url URL] clear                    empty the request log
  simctl.py [--url URL] faults JSON              e.g. '{"every": {"503": 3}}'; '{}' clears;
                                                 - reads the JSON from stdin
  simctl.py [--url URL] append TOKEN N           append N events
  simctl.py [--url URL] reorg TOKEN N M          roll back N events, write M new ones
  simctl.py [--url URL] health STATUS            healthy|degraded|critical|unknown|reindexing
  simctl.py [--url URL] truth TOKEN [--at ISO]   replayed balances, supply, counts
  simctl.py [--url URL] mover [JSON]             report, or set: '{"token": ..., "every": 2}'; '{}' stops
  simctl.py [--url URL] reset                    back to the seeded state
  simctl.py [--url URL] tokens                   "ADDRESS SYMBOL EVENTS" per line

--url defaults to $DALP_SIM_URL. `tokens` reads the API itself, with the key in
$DALP_API_KEY, so its requests appear in the log. Output is JSON except for
`log --count` and `tokens`. A failed call prints the answer to stderr and
exits 1.
"""
import argparse
import json
import os
import signal
import sys
import urllib.error
import urllib.request
from urllib.parse import urlencode


def call(url, method, path, payload=None, headers=None):
    data = None if payload is None else json.dumps(payload).encode()
    req = urllib.request.Request(url + path, data=data, method=method, headers=dict(headers or {}))
    if data is not None:
        req.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=120) as r:
            return json.load(r)
    except urllib.error.HTTPError as e:
        sys.exit("simctl: %s %s -> %d %s" % (method, path, e.code, e.read().decode(errors="replace")))
    except urllib.error.URLError as e:
        sys.exit("simctl: cannot reach %s: %s" % (url, e.reason))


def tokens(url):
    key = os.environ.get("DALP_API_KEY")
    if not key:
        sys.exit("simctl: tokens needs DALP_API_KEY")
    headers = {"X-Api-Key": key}
    offset = 0
    while True:
        doc = call(url, "GET", "/api/v2/tokens?" + urlencode({"page[offset]": offset, "page[limit]": 200}),
                   headers=headers)
        for t in doc["data"]:
            n = call(url, "GET", "/api/v2/tokens/%s/events?%s" % (t["id"], urlencode({"page[limit]": 1})),
                     headers=headers)["meta"]["total"]
            print(t["id"], t["symbol"], n)
        offset += 200
        if offset >= doc["meta"]["total"]:
            return


def main():
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)     # `simctl.py log | head` ends quietly
    ap = argparse.ArgumentParser(description="control the DALP simulator")
    ap.add_argument("--url", default=os.environ.get("DALP_SIM_URL"), help="default: $DALP_SIM_URL")
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("log")
    p.add_argument("--count", action="store_true", help="print only how many entries")
    p.add_argument("--path-prefix", default="")
    p.add_argument("--since", type=int, default=0, help="only entries after this seq")
    sub.add_parser("clear")
    p = sub.add_parser("faults")
    p.add_argument("json")
    p = sub.add_parser("append")
    p.add_argument("token")
    p.add_argument("n", type=int)
    p = sub.add_parser("reorg")
    p.add_argument("token")
    p.add_argument("n", type=int)
    p.add_argument("m", type=int)
    p = sub.add_parser("health")
    p.add_argument("status")
    p = sub.add_parser("truth")
    p.add_argument("token")
    p.add_argument("--at", help="replay only events at or before this ISO 8601 time")
    p = sub.add_parser("mover")
    p.add_argument("json", nargs="?")
    sub.add_parser("reset")
    sub.add_parser("tokens")
    a = ap.parse_args()
    if not a.url:
        sys.exit("simctl: no --url and no DALP_SIM_URL")
    url = a.url.rstrip("/")

    if a.cmd == "log":
        q = {"since": a.since, "path_prefix": a.path_prefix}
        if a.count:
            q["count"] = 1
        out = call(url, "GET", "/_sim/log?" + urlencode(q))
        print(out["count"] if a.count else json.dumps(out))
        return
    if a.cmd == "tokens":
        tokens(url)
        return
    if a.cmd == "clear":
        out = call(url, "POST", "/_sim/log/clear", {})
    elif a.cmd in ("faults", "mover") and a.json is not None:
        try:
            conf = json.loads(sys.stdin.read() if a.json == "-" else a.json)
        except ValueError as e:
            sys.exit("simctl: %s: not JSON: %s" % (a.cmd, e))
        out = call(url, "POST", "/_sim/" + a.cmd, conf)
    elif a.cmd == "mover":
        out = call(url, "GET", "/_sim/mover")
    elif a.cmd == "append":
        out = call(url, "POST", "/_sim/append", {"token": a.token, "count": a.n})
    elif a.cmd == "reorg":
        out = call(url, "POST", "/_sim/reorg", {"token": a.token, "rollback": a.n, "replace": a.m})
    elif a.cmd == "health":
        out = call(url, "POST", "/_sim/health", {"status": a.status})
    elif a.cmd == "truth":
        out = call(url, "GET", "/_sim/truth/" + a.token + ("?" + urlencode({"at": a.at}) if a.at else ""))
    else:
        out = call(url, "POST", "/_sim/reset", {})
    print(json.dumps(out))


if __name__ == "__main__":
    main()
