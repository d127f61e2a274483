#!/usr/bin/env python3
"""
Self-test of test/dalp_sim.py against docs/dalp-api-contract.md.

Starts the simulator on a free port, checks what it serves (auth, errors,
pagination, sorting, every filter of the contract's table, facets, holders
against an independent replay of the events, append and reorg, gzip, every
fault kind and setting, the request log), stops it. Prints "N passed, N failed" last and
exits non-zero on any failure. Python 3.11 standard library only.
"""
import gzip
import http.client
import json
import os
import re
import subprocess
import sys
import time
import traceback
from collections import Counter
from datetime import datetime, timedelta, timezone
from decimal import Decimal, getcontext
from urllib.parse import quote

HERE = os.path.dirname(os.path.abspath(__file__))
KEY = "sm_dalp_selftest_key"
getcontext().prec = 100          # uint256 amounts have up to 78 digits
ACCOUNT_NAMES = ("account", "from", "to", "user", "owner")


class Sim:
    """A simulator subprocess and a keep-alive connection to it."""

    def __init__(self, *args):
        self.proc = subprocess.Popen(
            [sys.executable, os.path.join(HERE, "dalp_sim.py"), "--port", "0", "--seed", "42",
             "--api-key", KEY, *args], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        line = self.proc.stdout.readline()
        m = re.fullmatch(r"dalp_sim ready on http://127\.0\.0\.1:(\d+)\n", line)
        if not m:
            self.proc.kill()
            raise RuntimeError("simulator did not start: %r" % line)
        self.port = int(m.group(1))
        self.conn = None

    def stop(self):
        self.proc.terminate()
        self.proc.wait(10)

    def request(self, method, path, body=None, headers=None):
        """(status, headers, body bytes); reconnects once if the connection died."""
        for attempt in (0, 1):
            if self.conn is None:
                self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
            try:
                self.conn.request(method, path, body=body, headers=headers or {})
                r = self.conn.getresponse()
                return r.status, r, r.read()
            except (ConnectionError, http.client.HTTPException):
                self.conn.close()
                self.conn = None
                if attempt:
                    raise

    def api(self, path, params=(), key=KEY, headers=None):
        """GET /api/v2 + path with (key, value) params, percent-encoded."""
        qs = "&".join("%s=%s" % (quote(k, safe=""), quote(str(v), safe="")) for k, v in params)
        h = dict(headers or {})
        if key is not None:
            h["X-Api-Key"] = key
        status, r, body = self.request("GET", "/api/v2" + path + ("?" + qs if qs else ""), headers=h)
        return status, r, body

    def ok(self, path, params=()):
        status, _, body = self.api(path, params)
        if status != 200:
            raise AssertionError("GET %s %s -> %d %s" % (path, params, status, body[:300]))
        return json.loads(body)

    def all_pages(self, path, params=(), limit=200):
        """Every item, paging by offset; checks totals and links on the way."""
        items, offset = [], 0
        while True:
            doc = self.ok(path, list(params) + [("page[offset]", offset), ("page[limit]", limit)])
            total = doc["meta"]["total"]
            items += doc["data"]
            offset += limit
            assert ("next" in doc["links"]) == (offset < total), doc["links"]
            if offset >= total:
                break
        assert len(items) == total, (len(items), total)
        return items, doc["meta"]

    def control(self, method, path, payload=None):
        status, _, body = self.request(method, "/_sim/" + path,
                                       body=None if payload is None else json.dumps(payload),
                                       headers={"Content-Type": "application/json"})
        assert status == 200, (path, status, body)
        return json.loads(body)


TESTS = []


def test(fn):
    TESTS.append(fn)
    return fn


def us(ts):
    return (datetime.fromisoformat(ts) - datetime(1970, 1, 1, tzinfo=timezone.utc)) // timedelta(microseconds=1)


def vals(e):
    return {v["name"]: v["value"] for v in e["values"]}


def replay(events):
    """Balances and frozen amounts per the contract's balance-effect table."""
    bal, frz = Counter(), Counter()
    for e in events:
        v, name = vals(e), e["eventName"]
        if name == "MintCompleted":
            bal[v["to"]] += int(v["amount"])
        elif name == "TransferCompleted":
            bal[v["from"]] -= int(v["amount"])
            bal[v["to"]] += int(v["amount"])
        elif name == "BurnCompleted":
            bal[v["from"]] -= int(v["amount"])
        elif name == "Redeemed":
            bal[v["owner"]] -= int(v["amount"])
        elif name == "TokensFrozen":
            frz[v["user"]] += int(v["amount"])
        elif name == "TokensUnfrozen":
            frz[v["user"]] -= int(v["amount"])
    return {a: b for a, b in bal.items() if b}, {a: f for a, f in frz.items() if f}


def assert_error(status, body, expect):
    assert status == expect, (status, body[:300])
    err = json.loads(body)["error"]
    assert set(err) == {"id", "category", "status", "retryable", "message", "why", "fix", "details"}, err
    assert err["status"] == expect and err["id"].startswith("DALP-") and isinstance(err["details"], dict), err
    return err


def chain_order(e):
    return (us(e["blockTimestamp"]), int(e["blockNumber"]), int(e["txIndex"]))


class Ctx:
    """Data fetched once and shared by the checks."""

    def __init__(self, sim):
        self.sim = sim
        self.tokens = sim.all_pages("/tokens")[0]
        self.by_symbol = {t["symbol"]: t for t in self.tokens}
        self.events = {}

    def events_of(self, token, order="blockTimestamp"):
        if (token, order) not in self.events:
            self.events[token, order] = self.sim.all_pages("/tokens/%s/events" % token, [("sort", order)])[0]
        return self.events[token, order]


# ---------------------------------------------------------------------------


@test
def auth_and_not_found(c):
    s = c.sim
    for key in (None, "wrong"):
        status, _, body = s.api("/tokens", key=key)
        assert_error(status, body, 401)
    status, _, body = s.api("/no-such-route")
    assert_error(status, body, 404)
    unknown = "/tokens/0x" + "ab" * 20
    for sub in ("", "/holders", "/events", "/features", "/metadata", "/compliance-modules",
                "/transfer-approvals"):
        status, _, body = s.api(unknown + sub)
        err = assert_error(status, body, 404)
        assert "0x" + "ab" * 20 in err["message"], err
    status, _, body = s.api(unknown + "/holder-balances", [("holderAddress", "0x" + "cd" * 20)])
    assert_error(status, body, 404)


@test
def validation_errors(c):
    t = c.by_symbol["HIF"]["id"]
    ev = "/tokens/%s/events" % t
    bad = [
        (ev, [("filter[foo]", "1")], "foo"),
        (ev, [("filter[eventName][gt]", "x")], "gt"),
        (ev, [("filter[eventName][bogus]", "x")], "bogus"),
        (ev, [("filter[eventName][isEmpty]", "")], "isEmpty"),
        (ev, [("filter[blockNumber][gte]", "1")], "blockNumber"),
        (ev, [("page[limit]", "201")], "page[limit]"),
        (ev, [("page[limit]", "0")], "page[limit]"),
        (ev, [("page[offset]", "-1")], "page[offset]"),
        (ev, [("page[limit]", "ten")], "page[limit]"),
        (ev, [("sort", "eventName")], "eventName"),
        (ev, [("sortBy", "blockNumber"), ("sortDirection", "up")], "sortDirection"),
        (ev, [("filter[blockTimestamp][gt]", "2026-13-01T00:00:00Z")], "blockTimestamp"),
        (ev, [("filter[blockTimestamp][gt]", "2026-05-01T00:00:00")], "blockTimestamp"),
        (ev, [("filter[senderAddress]", "0x1234")], "senderAddress"),
        (ev, [("filter[transactionHash]", "0xzz")], "transactionHash"),
        (ev, [("filter[eventName][inArray]", ",".join(["X"] * 101))], "100"),
        (ev, [("page[limit]", "5"), ("page[limit]", "6")], "repeated"),
        (ev, [("bogus", "1")], "bogus"),
        ("/tokens", [("filter[createdAt]", "2026-01-01T00:00:00Z")], "eq"),
        ("/tokens", [("filter[type][iLike]", "b%")], "iLike"),
        ("/tokens/%s/holders" % t, [("filter[value][gt]", "1e5")], "value"),
        ("/tokens/%s/holders" % t, [("filter[isFrozen]", "yes")], "isFrozen"),
        ("/system/factories", [("filter[hasTokens][ne]", "true")], "ne"),
        ("/tokens/%s/features" % t, [("filter[featureTypeId]", "x")], "featureTypeId"),
    ]
    for path, params, word in bad:
        status, _, body = c.sim.api(path, params)
        err = assert_error(status, body, 422)
        assert word in err["message"], (params, err["message"])


@test
def pagination_and_links(c):
    t = c.by_symbol["HIF"]["id"]
    path = "/tokens/%s/events" % t
    items, meta = c.sim.all_pages(path, [("filter[eventName]", "TransferCompleted")], limit=137)
    assert len({e["id"] for e in items}) == len(items) == meta["total"] > 400
    # following links.next (relative to the API root, without /api) gives the same items
    doc = c.sim.ok(path, [("filter[eventName]", "TransferCompleted"), ("page[limit]", 137)])
    assert doc["links"]["self"].startswith("/v2/tokens/%s/events?page%%5Boffset%%5D=0&page%%5Blimit%%5D=137" % t)
    assert "prev" not in doc["links"]
    seen = list(doc["data"])
    while "next" in doc["links"]:
        status, _, body = c.sim.request("GET", "/api" + doc["links"]["next"], headers={"X-Api-Key": KEY})
        doc = json.loads(body)
        assert "prev" in doc["links"]
        seen += doc["data"]
    assert [e["id"] for e in seen] == [e["id"] for e in items]
    # a last page that ends exactly at the total has no next link
    n = len(c.tokens)
    doc = c.sim.ok("/tokens", [("page[limit]", n)])
    assert len(doc["data"]) == n and "next" not in doc["links"]
    doc = c.sim.ok("/tokens", [("page[offset]", n // 2), ("page[limit]", n - n // 2)])
    assert "next" not in doc["links"] and doc["links"]["prev"].startswith("/v2/tokens?page%5Boffset%5D=0&")
    # default limit 50, past-the-end offset
    doc = c.sim.ok(path)
    assert len(doc["data"]) == 50 and doc["links"]["next"].endswith("page%5Boffset%5D=50&page%5Blimit%5D=50")
    doc = c.sim.ok(path, [("page[offset]", 10 ** 6)])
    assert doc["data"] == [] and "next" not in doc["links"] and "prev" in doc["links"]


@test
def sorting(c):
    s = c.sim
    for sym in ("HIF", "ACB30"):
        t = c.by_symbol[sym]["id"]
        path = "/tokens/%s/events" % t
        asc = c.events_of(t, "blockTimestamp")
        keys = [chain_order(e) for e in asc]
        assert keys == sorted(keys), "events not in (blockTimestamp, blockNumber, txIndex) order"
        assert any(keys[i][0] == keys[i + 1][0] and keys[i][1] != keys[i + 1][1] for i in range(len(keys) - 1)), \
            "no two blocks share a timestamp"
        assert any(keys[i][:2] == keys[i + 1][:2] and keys[i][2] != keys[i + 1][2] for i in range(len(keys) - 1)), \
            "no block holds two transactions"
        desc = c.events_of(t, "-blockTimestamp")
        assert [e["id"] for e in desc] == [e["id"] for e in asc[::-1]], "descending is not ascending reversed"
        for a, b in ([("sort", "blockNumber")], [("sortBy", "blockNumber"), ("sortDirection", "asc")]), \
                ([("sort", "-blockTimestamp")], [("sortBy", "blockTimestamp"), ("sortDirection", "desc")]), \
                ([], [("sort", "-blockNumber")]):
            pa = [e["id"] for e in s.ok(path, a + [("page[limit]", 200), ("page[offset]", 100)])["data"]]
            pb = [e["id"] for e in s.ok(path, b + [("page[limit]", 200), ("page[offset]", 100)])["data"]]
            assert pa == pb, (a, b)
    names = [t["name"] for t in s.ok("/tokens", [("sort", "name")])["data"]]
    assert names == sorted(names) == [t["name"] for t in s.ok("/tokens", [("sortBy", "name")])["data"]]
    syms = [t["symbol"] for t in s.ok("/tokens", [("sortBy", "symbol"), ("sortDirection", "desc")])["data"]]
    assert syms == sorted(syms, reverse=True)
    created = [t["createdAt"] for t in c.tokens]                       # default -createdAt
    assert created == sorted(created, reverse=True)
    fac = [f["name"] for f in s.ok("/system/factories", [("sort", "-name")])["data"]]
    assert fac == sorted(fac, reverse=True)
    t = c.by_symbol["HIF"]["id"]
    holders = s.all_pages("/tokens/%s/holders" % t)[0]
    keys = [(int(h["valueExact"]), h["account"]["id"]) for h in holders]
    assert keys == sorted(keys, reverse=True), "holders not by -value, then account"
    asc = s.all_pages("/tokens/%s/holders" % t, [("sort", "value")])[0]
    assert [h["account"]["id"] for h in asc] == [h["account"]["id"] for h in holders[::-1]]


@test
def token_filters(c):
    s, toks = c.sim, c.tokens

    def ids(params):
        items, meta = s.all_pages("/tokens", params)
        assert sum(f["count"] for f in meta["facets"]["type"]) == meta["total"]
        return sorted(t["id"] for t in items)

    def want(pred):
        return sorted(t["id"] for t in toks if pred(t))
    t0 = c.by_symbol["HIF"]
    cases = [
        ([("filter[q]", "hArBoR")], lambda t: "harbor" in t["name"].lower() or "harbor" in t["symbol"].lower()),
        ([("filter[q]", "vgo")], lambda t: "vgo" in t["symbol"].lower() or "vgo" in t["name"].lower()),
        ([("filter[name]", t0["name"])], lambda t: t["name"] == t0["name"]),
        ([("filter[name][ne]", t0["name"])], lambda t: t["name"] != t0["name"]),
        ([("filter[name][iLike]", "%BOND%")], lambda t: "bond" in t["name"].lower()),
        ([("filter[name][inArray]", "Vaulted Gold,Nope")], lambda t: t["name"] == "Vaulted Gold"),
        ([("filter[symbol]", "HIF")], lambda t: t["symbol"] == "HIF"),
        ([("filter[symbol][ne]", "HIF")], lambda t: t["symbol"] != "HIF"),
        ([("filter[symbol][iLike]", "_sl")], lambda t: t["symbol"].lower() == "csl"),
        ([("filter[symbol][inArray]", "HIF,CSL")], lambda t: t["symbol"] in ("HIF", "CSL")),
        ([("filter[type]", "bond")], lambda t: t["type"] == "bond"),
        ([("filter[type][ne]", "bond")], lambda t: t["type"] != "bond"),
        ([("filter[type][inArray]", "fund,deposit")], lambda t: t["type"] in ("fund", "deposit")),
        ([("filter[tokenFactory]", t0["tokenFactory"]["id"].upper().replace("0X", "0x"))],
         lambda t: t["tokenFactory"]["id"] == t0["tokenFactory"]["id"]),
        ([("filter[tokenFactory][inArray]", ",".join({t["tokenFactory"]["id"] for t in toks[:2]}))],
         lambda t: t["tokenFactory"]["id"] in {x["tokenFactory"]["id"] for x in toks[:2]}),
    ]
    for op, f in (("gt", lambda a, b: a > b), ("gte", lambda a, b: a >= b), ("lt", lambda a, b: a < b),
                  ("lte", lambda a, b: a <= b)):
        cases.append(([("filter[createdAt][%s]" % op, t0["createdAt"])],
                      lambda t, f=f: f(us(t["createdAt"]), us(t0["createdAt"]))))
    for params, pred in cases:
        assert ids(params) == want(pred), params


@test
def event_filters(c):
    s = c.sim
    t = c.by_symbol["HIF"]["id"]
    path = "/tokens/%s/events" % t
    evs = c.events_of(t)
    forced = next(e for e in evs if e["eventName"] == "ForcedTransfer")
    who = vals(forced)["from"]
    who2 = vals(evs[-1]).get("to") or vals(evs[-1]).get("owner") or who
    sender = forced["sender"]["id"]
    mid = evs[len(evs) // 2]["blockTimestamp"]
    mid_offset = datetime.fromisoformat(mid).astimezone(timezone(timedelta(hours=2))).isoformat()

    def involves(e, addrs):
        v = vals(e)
        return any(v.get(n) in addrs for n in ACCOUNT_NAMES)
    cases = [
        ([("filter[eventName]", "Approval")], lambda e: e["eventName"] == "Approval"),
        ([("filter[eventName][eq]", "Nope")], lambda e: False),
        ([("filter[eventName][ne]", "TransferCompleted")], lambda e: e["eventName"] != "TransferCompleted"),
        ([("filter[eventName][inArray]", "MintCompleted,BurnCompleted")],
         lambda e: e["eventName"] in ("MintCompleted", "BurnCompleted")),
        ([("filter[eventName][notInArray]", "MintCompleted,Approval")],
         lambda e: e["eventName"] not in ("MintCompleted", "Approval")),
        ([("filter[senderAddress]", sender.upper().replace("0X", "0x"))], lambda e: e["sender"]["id"] == sender),
        ([("filter[senderAddress][inArray]", "%s,%s" % (sender, who))],
         lambda e: e["sender"]["id"] in (sender, who)),
        ([("filter[accountAddress]", who)], lambda e: involves(e, {who})),
        ([("filter[accountAddress][inArray]", "%s,%s" % (who, who2))], lambda e: involves(e, {who, who2})),
        ([("filter[walletAddress]", who2)], lambda e: involves(e, {who2})),
        ([("filter[walletAddress][inArray]", who2)], lambda e: involves(e, {who2})),
        ([("filter[transactionHash]", forced["transactionHash"])],
         lambda e: e["transactionHash"] == forced["transactionHash"]),
        ([("filter[transactionHash]", "0x" + "0" * 64)], lambda e: False),
        ([("filter[blockTimestamp][gt]", mid)], lambda e: us(e["blockTimestamp"]) > us(mid)),
        ([("filter[blockTimestamp][gte]", mid_offset)], lambda e: us(e["blockTimestamp"]) >= us(mid)),
        ([("filter[blockTimestamp][lt]", mid)], lambda e: us(e["blockTimestamp"]) < us(mid)),
        ([("filter[blockTimestamp][lte]", mid)], lambda e: us(e["blockTimestamp"]) <= us(mid)),
        ([("filter[blockTimestamp][gte]", mid), ("filter[blockTimestamp][lt]", evs[-40]["blockTimestamp"]),
          ("filter[eventName]", "TransferCompleted"), ("filter[accountAddress]", who)],
         lambda e: us(mid) <= us(e["blockTimestamp"]) < us(evs[-40]["blockTimestamp"])
         and e["eventName"] == "TransferCompleted" and involves(e, {who})),
    ]
    for params, pred in cases:
        items, meta = s.all_pages(path, params + [("sort", "blockTimestamp")])
        expect = [e["id"] for e in evs if pred(e)]
        assert [e["id"] for e in items] == expect, params
        facets = meta["facets"]["eventName"]
        assert sum(f["count"] for f in facets) == meta["total"], params
        assert {f["value"]: f["count"] for f in facets} == dict(Counter(e["eventName"] for e in items)), params
    tx = [e for e in evs if e["transactionHash"] == forced["transactionHash"]]
    assert len(tx) >= 2 and len({(e["blockNumber"], e["txIndex"]) for e in tx}) == 1


@test
def holder_and_factory_filters(c):
    s = c.sim
    for sym in ("HIF", "NWEA"):
        t = c.by_symbol[sym]["id"]
        path = "/tokens/%s/holders" % t
        holders = s.all_pages(path)[0]
        pivot = holders[len(holders) // 2]["value"]
        d = Decimal(pivot)
        for params, pred in (
                ([("filter[isFrozen]", "true")], lambda h: h["isFrozen"]),
                ([("filter[isFrozen][eq]", "false")], lambda h: not h["isFrozen"]),
                ([("filter[value][gt]", pivot)], lambda h: Decimal(h["value"]) > d),
                ([("filter[value][gte]", pivot)], lambda h: Decimal(h["value"]) >= d),
                ([("filter[value][lt]", pivot)], lambda h: Decimal(h["value"]) < d),
                ([("filter[value][lte]", pivot)], lambda h: Decimal(h["value"]) <= d),
                ([("filter[value][gte]", "0.5"), ("filter[isFrozen]", "false")],
                 lambda h: Decimal(h["value"]) >= Decimal("0.5") and not h["isFrozen"])):
            got = s.all_pages(path, params)[0]
            assert got == [h for h in holders if pred(h)], (sym, params)
    facs = s.all_pages("/system/factories")[0]
    for params, pred in (
            ([("filter[name]", "Bond Factory")], lambda f: f["name"] == "Bond Factory"),
            ([("filter[name][iLike]", "%bond%")], lambda f: "bond" in f["name"].lower()),
            ([("filter[typeId]", "ATKBondFactory")], lambda f: f["typeId"] == "ATKBondFactory"),
            ([("filter[typeId][inArray]", "ATKFundFactory,ATKEquityFactory")],
             lambda f: f["typeId"] in ("ATKFundFactory", "ATKEquityFactory")),
            ([("filter[hasTokens]", "false")], lambda f: not f["hasTokens"]),
            ([("filter[hasTokens]", "true")], lambda f: f["hasTokens"])):
        got = s.all_pages("/system/factories", params)[0]
        assert sorted(f["id"] for f in got) == sorted(f["id"] for f in facs if pred(f)), params
    assert any(not f["hasTokens"] for f in facs)
    assert {t["tokenFactory"]["id"] for t in c.tokens} == {f["id"] for f in facs if f["hasTokens"]}


def check_ledger(c, token):
    """/holders == replay of /events; totalSupply == sum; row fields consistent."""
    s = c.sim
    events = s.all_pages("/tokens/%s/events" % token, [("sort", "blockTimestamp")])[0]
    bal, frz = replay(events)
    tok = s.ok("/tokens/" + token)["data"]
    d = tok["decimals"]
    holders = s.all_pages("/tokens/%s/holders" % token)[0]
    assert {h["account"]["id"]: int(h["valueExact"]) for h in holders} == bal, "holders != replay"
    assert all(int(h["frozenExact"]) == frz.get(h["account"]["id"], 0) for h in holders), "frozen != replay"
    assert not set(frz) - set(bal), "frozen tokens without a balance"
    assert sum(bal.values()) == int(tok["totalSupplyExact"])
    assert Decimal(tok["totalSupply"]) == Decimal(tok["totalSupplyExact"]).scaleb(-d)
    last = {}
    for e in events:
        v = vals(e)
        if e["eventName"] in ("MintCompleted", "TransferCompleted", "BurnCompleted", "Redeemed", "TokensFrozen",
                              "TokensUnfrozen", "AddressFrozen"):
            for n in ACCOUNT_NAMES:
                if n in v:
                    last[v[n]] = e["blockTimestamp"]
    for h in holders:
        b, f, a = int(h["valueExact"]), int(h["frozenExact"]), int(h["availableExact"])
        assert 0 <= f <= b and a == b - f, h
        for field in ("value", "available", "frozen"):
            txt = h[field]
            assert Decimal(txt) == Decimal(h[field + "Exact"]).scaleb(-d), h
            assert not ("." in txt and txt.endswith("0")) and not txt.endswith("."), h
        assert h["lastUpdatedAt"] == last[h["account"]["id"]], h
    for e in events:
        if e["eventName"] == "ForcedTransfer":
            v = vals(e)
            assert any(x["eventName"] == "TransferCompleted" and x["transactionHash"] == e["transactionHash"]
                       and x["blockNumber"] == e["blockNumber"] and x["txIndex"] == e["txIndex"]
                       and vals(x)["from"] == v["from"] and vals(x)["to"] == v["to"]
                       and vals(x)["amount"] == v["amount"] for x in events), e["id"]
    truth = s.control("GET", "truth/" + token)
    assert truth["events"] == len(events) and truth["holders"] == len(bal)
    assert truth["total_supply_exact"] == tok["totalSupplyExact"]
    assert truth["balances"] == {a: str(b) for a, b in bal.items()}
    return events, holders


@test
def holders_equal_replay(c):
    for t in c.tokens:
        events, holders = check_ledger(c, t["id"])
        c.events[t["id"], "blockTimestamp"] = events
        if holders:
            one = holders[-1]
            doc = c.sim.ok("/tokens/%s/holder-balances" % t["id"], [("holderAddress", one["account"]["id"].upper()
                                                                     .replace("0X", "0x"))])
            assert doc["data"] == one
    doc = c.sim.ok("/tokens/%s/holder-balances" % c.tokens[0]["id"], [("holderAddress", "0x" + "12" * 20)])
    assert doc["data"] is None


@test
def data_shape(c):
    toks = c.tokens
    assert {0, 2, 6, 18} <= {t["decimals"] for t in toks}
    assert {"bond", "equity", "fund", "stablecoin", "deposit", "real-estate", "precious-metal"} <= \
        {t["type"] for t in toks}
    assert sum(t["pausable"]["paused"] for t in toks) == 1
    counts = {t["symbol"]: c.sim.ok("/tokens/%s/events" % t["id"], [("page[limit]", 1)])["meta"]["total"]
              for t in toks}
    assert min(counts.values()) <= 10 and max(counts.values()) >= 2500 and sum(counts.values()) < 10_000, counts
    amounts, balances, ids, hexre = [], [], set(), re.compile(r"0x[0-9a-f]{40}")
    for t in toks:
        for e in c.events_of(t["id"]):
            ids.add(e["id"])
            assert e["id"].startswith("evt_") and e["emitter"]["id"] == t["id"]
            assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", e["blockTimestamp"])
            assert "2026-01-01" <= e["blockTimestamp"] < "2026-10-01", e["blockTimestamp"]
            assert re.fullmatch(r"0x[0-9a-f]{64}", e["transactionHash"]) and hexre.fullmatch(e["sender"]["id"])
            assert e["blockNumber"].isdigit() and e["txIndex"].isdigit()
            for v in e["values"]:
                assert v["id"] == e["id"] + "-" + v["name"] and isinstance(v["value"], str)
                if v["name"] == "amount":
                    amounts.append(int(v["value"]))
        balances += [int(h["valueExact"]) for h in c.sim.all_pages("/tokens/%s/holders" % t["id"])[0]]
    assert len(ids) == sum(counts.values()), "event ids are not unique"
    assert sum(a > 2 ** 64 for a in amounts) > 100 and max(balances) > 10 ** 30
    names = Counter(e["eventName"] for t in toks for e in c.events_of(t["id"]))
    assert set(names) == {"MintCompleted", "BurnCompleted", "TransferCompleted", "Redeemed", "TokensFrozen",
                          "TokensUnfrozen", "ForcedTransfer", "Approval", "Paused", "Unpaused", "RoleGranted",
                          "RoleRevoked", "AddressFrozen", "ComplianceModuleAdded", "CheckpointUpdated",
                          "UpdatedTokenInformation"}, names
    facets = c.sim.ok("/tokens")["meta"]["facets"]["type"]
    assert sum(f["count"] for f in facets) == len(toks)


@test
def other_collections(c):
    s = c.sim
    for t in c.tokens:
        tid, ext = t["id"], t["extensions"]
        feats = s.all_pages("/tokens/%s/features" % tid)[0]
        assert ("historical-balances" in {f["featureTypeId"] for f in feats}) == ("HISTORICAL_BALANCES" in ext)
        meta = s.all_pages("/tokens/%s/metadata" % tid)[0]
        assert "isin" in {m["key"] for m in meta}
        mods = s.all_pages("/tokens/%s/compliance-modules" % tid)[0]
        added = {vals(e)["module"] for e in c.events_of(tid) if e["eventName"] == "ComplianceModuleAdded"}
        assert {m["module"]["id"] for m in mods} == added and all(isinstance(m["parameters"], dict) for m in mods)
        apps = s.all_pages("/tokens/%s/transfer-approvals" % tid)[0]
        holders = {h["account"]["id"] for h in s.all_pages("/tokens/%s/holders" % tid)[0]}
        for a in apps:
            assert a["fromWallet"] in holders and a["toWallet"] in holders
            assert a["status"] in ("pending", "approved", "revoked", "executed")
            assert Decimal(a["amount"]) == Decimal(a["amountExact"]).scaleb(-t["decimals"])
    classes = s.all_pages("/settings/asset-class-definitions")[0]
    assert classes and all({"id", "slug", "name", "isSystem"} <= set(x) for x in classes)
    summary = s.ok("/blockchain-monitoring/health-metrics/summary")
    services = {x["serviceType"]: x for x in summary["data"]["services"]}
    assert services["indexer"]["status"] == services["chain-rpc"]["status"] == "healthy"
    snaps, meta = s.all_pages("/blockchain-monitoring/health-snapshots")
    assert snaps and all("eventType" in x and "createdAt" in x for x in snaps) and meta["facets"] == {}


@test
def health_switch(c):
    s = c.sim
    s.control("POST", "health", {"status": "reindexing"})
    ix = next(x for x in s.ok("/blockchain-monitoring/health-metrics/summary")["data"]["services"]
              if x["serviceType"] == "indexer")
    assert ix["status"] == "reindexing" and ix["reindexing"] is True
    snap = s.ok("/blockchain-monitoring/health-snapshots", [("page[limit]", 1)])["data"][0]
    assert snap["eventType"] == "status-change" and snap["status"] == "reindexing"
    s.control("POST", "health", {"status": "healthy"})
    ix = s.ok("/blockchain-monitoring/health-metrics/summary")["data"]["services"][0]
    assert ix["status"] == "healthy" and ix["reindexing"] is False


@test
def append_reorg_reset(c):
    s = c.sim
    tiny = min(c.tokens, key=lambda t: s.ok("/tokens/%s/events" % t["id"], [("page[limit]", 1)])["meta"]["total"])
    for t in (tiny, c.by_symbol["ACB30"]):
        tid = t["id"]
        before = s.all_pages("/tokens/%s/events" % tid, [("sort", "blockTimestamp")])[0]
        added = s.control("POST", "append", {"token": tid, "count": 25})["added"]
        assert len(added) == 25 and all(us(e["blockTimestamp"]) > us(before[-1]["blockTimestamp"]) for e in added)
        events, _ = check_ledger(c, tid)
        assert [e["id"] for e in events] == [e["id"] for e in before + added]
        out = s.control("POST", "reorg", {"token": tid, "rollback": 10, "replace": 7})
        assert len(out["removed"]) >= 10 and len(out["added"]) == 7
        events, _ = check_ledger(c, tid)
        ids = {e["id"] for e in events}
        assert not ids & set(out["removed"]) and {e["id"] for e in out["added"]} <= ids
        assert len(events) == len(before) + 25 - len(out["removed"]) + 7
        first_removed = next(e for e in before + added if e["id"] == out["removed"][0])
        assert out["added"][0]["blockNumber"] == first_removed["blockNumber"]
    s.control("POST", "reset")
    assert s.ok("/tokens", [("page[limit]", 200)])["data"] == c.tokens
    assert s.all_pages("/tokens/%s/events" % tiny["id"], [("sort", "blockTimestamp")])[0] == \
        c.events_of(tiny["id"])


@test
def mover(c):
    """Balances moved between the pages of a scan: each change a valid
    transfer (the ledger still replays), each recorded state the /holders
    of that moment, the first page never triggers one."""
    s = c.sim
    tid = c.by_symbol["ACB30"]["id"]
    path = "/tokens/%s/holders" % tid
    try:
        for kind in ("reorder", "leave", "join"):
            s.control("POST", "reset")
            before = {h["account"]["id"]: h["valueExact"] for h in s.all_pages(path)[0]}
            newest = s.ok("/tokens/%s/events" % tid, [("page[limit]", 1)])["data"][0]["id"]
            s.control("POST", "mover", {"token": tid, "kinds": [kind], "every": 2, "times": 2, "seed": 7})
            s.control("POST", "log/clear")
            for offset in (0, 0, 20, 40, 60, 80, 100):
                s.ok(path, [("page[limit]", 20), ("page[offset]", offset)])
            log = s.control("GET", "log")
            assert [e["moved"] for e in log] == [None, None, None, kind, None, kind, None], log
            out = s.control("GET", "mover")
            assert out["changes"] == 2 and out["kinds"] == {kind: 2} and len(out["states"]) == 3, out
            assert out["states"][0] == before
            after = {h["account"]["id"]: h["valueExact"] for h in s.all_pages(path)[0]}
            assert out["states"][-1] == after and after != before
            if kind == "leave":
                assert len(after) == len(before) - 2
            if kind == "join":
                assert len(after) == len(before) + 2
            assert s.ok("/tokens/%s/events" % tid, [("page[limit]", 1)])["data"][0]["id"] != newest
            check_ledger(c, tid)
        s.control("POST", "mover", {})
        assert s.control("GET", "mover") == {"changes": 0, "kinds": {}, "states": []}
        for bad in ({"token": tid, "kinds": ["teleport"]}, {"token": "0x" + "ab" * 20}, {"token": tid, "every": 0},
                    {"token": tid, "often": 1}):
            status, _, _ = s.request("POST", "/_sim/mover", body=json.dumps(bad))
            assert status == 400, bad
    finally:
        s.control("POST", "reset")


@test
def gzip_and_keepalive(c):
    s = c.sim
    path = "/tokens/%s/events" % c.by_symbol["HIF"]["id"]
    params = [("page[limit]", 200)]
    _, r1, plain = s.api(path, params)
    _, r2, packed = s.api(path, params, headers={"Accept-Encoding": "gzip, deflate"})
    assert r1.getheader("Content-Encoding") is None and r2.getheader("Content-Encoding") == "gzip"
    assert gzip.decompress(packed) == plain and len(packed) < len(plain) // 3
    assert r1.getheader("Content-Type") == "application/json; charset=utf-8"
    s.control("POST", "log/clear")
    for _ in range(3):
        s.api(path, params)
    log = s.control("GET", "log")
    assert len({e["conn"] for e in log}) == 1, "keep-alive: one connection expected"


@test
def faults(c):
    s = c.sim
    t = c.by_symbol["NWEA"]["id"]
    path = "/tokens/%s/events" % t
    prefix = "/api/v2" + path
    try:
        for kind, check in (
                ("503", lambda st, r, b: assert_error(st, b, 503)["retryable"]),
                ("500", lambda st, r, b: assert_error(st, b, 500)),
                ("502", lambda st, r, b: assert_error(st, b, 502)),
                ("504", lambda st, r, b: assert_error(st, b, 504)),
                ("429", lambda st, r, b: assert_error(st, b, 429)["retryable"] and r.getheader("Retry-After") == "7"),
                ("html", lambda st, r, b: st == 200 and r.getheader("Content-Type").startswith("text/html")),
                ("wrongshape", lambda st, r, b: st == 200 and "data" not in json.loads(b))):
            s.control("POST", "faults", {"every": {kind: 1}, "retry_after": 7, "path_prefix": prefix})
            st, r, body = s.api(path)
            assert check(st, r, body), kind
            assert s.ok("/tokens")["data"], "a request outside path_prefix was faulted"
        s.control("POST", "faults", {"every": {"malformed": 1}, "path_prefix": prefix})
        st, _, body = s.api(path)
        assert st == 200
        try:
            json.loads(body)
            raise AssertionError("malformed body parsed")
        except ValueError:
            pass
        s.control("POST", "faults", {"every": {"slow": 1}, "slow_ms": 400, "path_prefix": prefix})
        t0 = time.monotonic()
        st, _, _ = s.api(path)
        assert st == 200 and time.monotonic() - t0 >= 0.4
        s.control("POST", "faults", {"every": {"reset": 1}, "path_prefix": prefix})
        try:
            s.conn = http.client.HTTPConnection("127.0.0.1", s.port, timeout=10)
            s.conn.request("GET", prefix, headers={"X-Api-Key": KEY})
            s.conn.getresponse().read()
            raise AssertionError("reset fault answered")
        except (ConnectionError, http.client.HTTPException):
            s.conn.close()
            s.conn = None
        s.control("POST", "faults", {"latency_ms": 150})
        t0 = time.monotonic()
        s.ok("/tokens")
        assert time.monotonic() - t0 >= 0.15
        # every Nth: with 503 every 3 and 429 every 2, request 6 gets 429 (checked first)
        s.control("POST", "faults", {"every": {"503": 3, "429": 2}, "path_prefix": prefix})
        s.control("POST", "log/clear")
        got = [s.api(path)[0] for _ in range(6)]
        assert got == [200, 429, 503, 429, 200, 429], got
        log = s.control("GET", "log")
        assert [e["fault"] for e in log] == [None, "429", "503", "429", None, "429"], log
        # max_faults: the first two, then none
        s.control("POST", "faults", {"every": {"429": 1}, "max_faults": 2, "path_prefix": prefix})
        got = [s.api(path)[0] for _ in range(4)]
        assert got == [429, 429, 200, 200], got
        # spare_ms: a target faulted lately is neither faulted nor counted, whatever came in between
        s.control("POST", "faults", {"every": {"503": 2}, "spare_ms": 60000, "path_prefix": prefix})
        other = [("page[limit]", 3)]
        got = [s.api(path)[0], s.api(path)[0], s.api(path, other)[0], s.api(path)[0], s.api(path, other)[0],
               s.api(path, other)[0], s.api(path)[0]]
        assert got == [200, 503, 200, 200, 503, 200, 200], got
        s.control("POST", "faults", {"every": {"503": 1}, "spare_ms": 300, "path_prefix": prefix})
        assert [s.api(path)[0] for _ in range(2)] == [503, 200]
        time.sleep(0.35)
        assert s.api(path)[0] == 503, "spared past spare_ms"
    finally:
        s.control("POST", "faults", {})
    assert s.api(path)[0] == 200


@test
def faults_for_the_client(c):
    """stall, redirect, patch, echo_key and the log's auth field."""
    s = c.sim
    t = c.by_symbol["NWEA"]["id"]
    path = "/tokens/%s/events" % t
    prefix = "/api/v2" + path
    params = [("page[limit]", 5)]
    try:
        plain = s.ok(path, params)
        # stall: the headers promise the whole body, half of it comes, then nothing
        s.control("POST", "faults", {"every": {"stall": 1}, "slow_ms": 600, "path_prefix": prefix})
        conn = http.client.HTTPConnection("127.0.0.1", s.port, timeout=0.3)
        conn.request("GET", prefix + "?page%5Blimit%5D=5", headers={"X-Api-Key": KEY})
        r = conn.getresponse()
        assert r.status == 200 and int(r.getheader("Content-Length")) == len(json.dumps(plain, separators=(",", ":")))
        t0 = time.monotonic()
        try:
            r.read()
            raise AssertionError("stalled body read in full")
        except (TimeoutError, OSError, http.client.IncompleteRead):
            pass
        assert time.monotonic() - t0 >= 0.25
        conn.close()
        # the stalled request is logged when the simulator notices the hang-up:
        # wait for it, so that it cannot land after the log is cleared below
        deadline = time.monotonic() + 10
        while not any(e["fault"] == "stall" for e in s.control("GET", "log")):
            assert time.monotonic() < deadline, "the stalled request was never logged"
            time.sleep(0.02)
        # redirect: to redirect_to + the path and query as sent
        s.control("POST", "faults", {"every": {"redirect": 1}, "redirect_to": "http://127.0.0.9:1",
                                     "path_prefix": prefix})
        st, r, _ = s.api(path, params)
        assert st == 302 and r.getheader("Location") == "http://127.0.0.9:1" + prefix + "?page%5Blimit%5D=5", \
            r.getheader("Location")
        # patch: raw JSON text set verbatim in every item, null removes a field
        s.control("POST", "faults", {"every": {"patch": 1}, "path_prefix": prefix,
                                     "patch": {"blockNumber": "1e400000", "txIndex": None, "extra": '{"a":[1]}'}})
        st, _, body = s.api(path, params)
        assert st == 200 and body.count(b'"blockNumber":1e400000') == 5, body[:300]
        doc = json.loads(body)
        assert all("txIndex" not in e and e["extra"] == {"a": [1]} for e in doc["data"])
        assert [e["id"] for e in doc["data"]] == [e["id"] for e in plain["data"]] and doc["meta"] == plain["meta"]
        # echo_key: error bodies quote the key the request carried
        s.control("POST", "faults", {"every": {"503": 1}, "echo_key": True, "path_prefix": prefix})
        st, _, body = s.api(path, params)
        assert st == 503 and body.count(KEY.encode()) == 3, body
        st, _, body = s.api("/tokens/0x0000000000000000000000000000000000000001", key="sm_dalp_wrong")
        assert st == 401 and b"sm_dalp_wrong" in body
        s.control("POST", "faults", {})
        assert KEY.encode() not in s.api("/tokens/0x0000000000000000000000000000000000000001")[2]
        # the log says whether a request carried the right key, never the key
        s.control("POST", "log/clear")
        s.api("/tokens", key=None)
        s.api("/tokens", key="sm_dalp_wrong")
        s.api("/tokens")
        # (the stalled request above may be logged only now, once its thread saw the hang-up)
        log = [e for e in s.control("GET", "log") if e["path"] == "/api/v2/tokens"]
        assert [e["auth"] for e in log] == ["none", "invalid", "valid"], log
        assert KEY not in json.dumps(log) and "sm_dalp_wrong" not in json.dumps(log)
    finally:
        s.control("POST", "faults", {})
    assert s.ok(path, params) == plain


@test
def request_log(c):
    s = c.sim
    t = c.by_symbol["HIF"]["id"]
    s.control("POST", "log/clear")
    s.api("/tokens/%s/events" % t, [("page[limit]", 200), ("filter[eventName][inArray]", "Approval,Paused")])
    s.api("/tokens/%s/events" % t, [("page[limit]", 999)])
    s.api("/tokens", key=None)
    log = s.control("GET", "log")
    assert [e["seq"] for e in log] == [1, 2, 3]
    assert s.control("GET", "log?count=1&path_prefix=/api/v2/tokens/")["count"] == 2
    assert s.control("GET", "log?since=2")[0]["seq"] == 3
    e = log[0]
    assert e["method"] == "GET" and e["path"] == "/api/v2/tokens/%s/events" % t and e["status"] == 200
    assert e["query"] == {"page[limit]": "200", "filter[eventName][inArray]": "Approval,Paused"}, e["query"]
    total = s.ok("/tokens/%s/events" % t, [("filter[eventName][inArray]", "Approval,Paused")])["meta"]["total"]
    assert e["rows"] == min(200, total), (e["rows"], total)
    assert (log[1]["status"], log[1]["rows"]) == (422, 0) and log[2]["status"] == 401
    assert KEY not in json.dumps(log)


@test
def determinism(c):
    other = Sim()
    try:
        assert other.ok("/tokens", [("page[limit]", 200)])["data"] == c.sim.ok("/tokens", [("page[limit]", 200)])[
            "data"]
        t = c.by_symbol["HIF"]["id"]
        assert other.ok("/tokens/%s/events" % t)["data"] == c.sim.ok("/tokens/%s/events" % t)["data"]
    finally:
        other.stop()


def main():
    started = time.monotonic()
    sim = Sim()
    passed = failed = 0
    try:
        ctx = Ctx(sim)
        for fn in TESTS:
            t0 = time.monotonic()
            try:
                fn(ctx)
                passed += 1
                print("PASS %s (%.1fs)" % (fn.__name__, time.monotonic() - t0), flush=True)
            except Exception:
                failed += 1
                print("FAIL %s" % fn.__name__, flush=True)
                traceback.print_exc(file=sys.stdout)
    finally:
        sim.stop()
    print("took %.1fs" % (time.monotonic() - started))
    print("%d passed, %d failed" % (passed, failed))
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
