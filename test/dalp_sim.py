#!/usr/bin/env python3
"""
dalp_sim: a deterministic simulator of the DALP v2 REST API, for dalp_fdw tests.

It serves /api/v2/... exactly as docs/dalp-api-contract.md describes. The data
comes from ledgers simulated from --seed: every token's events are generated
transaction by transaction against the balances they imply, so that /holders,
totalSupply and /events always agree. Events are kept as compact columns and
rendered on demand, so a token with a million events costs tens of megabytes.

Control API (no key needed, JSON in and out), for the tests:
  GET  /_sim/log[?since=SEQ&path_prefix=P&count=1]   request log (or its count)
  POST /_sim/log/clear                                empty the log, seq restarts at 1
  GET  /_sim/faults, POST /_sim/faults {...}          fault injection ({} clears; see below)
  POST /_sim/append {"token","count"}                 append events
  POST /_sim/reorg {"token","rollback","replace"}     roll back and replace events
  POST /_sim/health {"status"}                        indexer status
  GET  /_sim/truth/<token>[?at=ISO]                   replay of the events, independently
  GET  /_sim/mover, POST /_sim/mover {...}            balances moved during scans ({} stops; see Mover)
  POST /_sim/reset                                    back to the seeded state

Faults: POST /_sim/faults {"every": {KIND: N, ...}, ...} gives every Nth /api
request (counted from this POST, only those under "path_prefix" if set) fault
KIND; when several fall on one request the first of FAULT_ORDER wins. Kinds:
  400 403 422 429 500 502 503 504   that status with the contract's error body
                                   (429 with "Retry-After: <retry_after>")
  reset       close the connection with a TCP reset, answering nothing
  slow        answer after "slow_ms" (or never, if the client hangs up first)
  stall       send the headers and half the body, then stall for "slow_ms"
              and close: a response that stops mid-body
  malformed   200 with the body cut in half
  html        200 with a proxy's HTML error page
  wrongshape  200 with JSON that has no "data"
  bare_meta   the answer with meta.total removed and meta.facets {}
  patch       200 with every item of "data" changed by "patch": {FIELD: RAW}
              sets FIELD to the JSON text RAW verbatim ("1e400000", "\"x\""),
              {FIELD: null} removes it
  patch_meta  the answer with its "meta" changed likewise by "patch_meta"
              ({"total": "-1"}, {"facets": "{...}"})
  redirect    302 to "redirect_to" + the request's path and query
Other settings: "latency_ms" (added to every /api request), "retry_after" (s,
default 1), "slow_ms" (default 10000), "max_faults" (no more faults after
that many, default: no limit), "path_prefix", "redirect_to" (an
origin such as http://127.0.0.1:9999, default "": the same origin),
"echo_key" (true: every error body quotes the X-Api-Key the request carried,
as a careless server might), "spare_ms" (default 0): a request whose
target (path and query) was faulted less than spare_ms ago is neither faulted
nor counted, so that the retry of a faulted request succeeds however many
other clients' requests took the slots in between (the count is global),
"error_message" (a text that replaces error.message in every error body: a
hostile server's), and "listing" (a huge GET /tokens, see Listing). Each
request log entry has "auth": "valid", "invalid" or "none", for the key it
carried (never the key itself), and "headers", the names of the headers the
request carried, in order.

Usage: dalp_sim.py --port PORT --api-key KEY [--host H] [--seed N]
                   [--big-token-events N] [--small-tokens N] [--pidfile F]
Python 3.11 standard library only.
"""
import argparse
import bisect
import copy
import functools
import gzip
import hashlib
import itertools
import json
import os
import random
import re
import select
import signal
import socket
import struct
import sys
import threading
import time
from array import array
from collections import Counter, OrderedDict
from datetime import datetime, timedelta, timezone
from fractions import Fraction
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import quote, unquote, unquote_plus, urlsplit

# ---------------------------------------------------------------------------
# The simulated chain
# ---------------------------------------------------------------------------

T0 = 1767225600                 # 2026-01-01T00:00:00Z, the timestamp of block B0
B0 = 8_000_000
CHAIN_ID = 1
NETWORK_NAME = "dalp-sim"
NOW_S = 1790812800              # 2026-10-01T00:00:00Z: the simulated chain head's time


def ts_ms(block):
    """Block timestamp in ms: 5 s apart, except that of every three blocks two
    share a timestamp, so equal timestamps across blocks are common.  The
    milliseconds follow from the second, so readers must keep them."""
    sec = T0 + 5 * ((block - B0) * 2 // 3)
    return sec * 1000 + (sec * 7919) % 1000


def block_at(seconds):
    """The first block whose timestamp is at or after `seconds`."""
    return B0 + ((max(0, seconds - T0) + 4) // 5 * 3 + 1) // 2


@functools.lru_cache(maxsize=1 << 16)   # a page's events share few blocks
def iso(ms):
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ms // 1000)) + ".%03dZ" % (ms % 1000)


_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


def parse_instant_us(text):
    """ISO 8601 with a time zone -> microseconds since the epoch, or None."""
    try:
        dt = datetime.fromisoformat(text)
    except ValueError:
        return None
    if dt.tzinfo is None:
        return None
    return (dt - _EPOCH) // timedelta(microseconds=1)


def shift(raw, decimals):
    """Raw base units as a decimal string: 1000500000 at 6 -> "1000.5"."""
    if decimals == 0:
        return str(raw)
    s = str(raw).rjust(decimals + 1, "0")
    frac = s[-decimals:].rstrip("0")
    return s[:-decimals] + ("." + frac if frac else "")


def hexid(*parts, n=40):
    return hashlib.sha256("|".join(map(str, parts)).encode()).hexdigest()[:n]


# ---------------------------------------------------------------------------
# Events
# ---------------------------------------------------------------------------

(MINT, BURN, TRANSFER, REDEEMED, TFROZEN, TUNFROZEN, FORCED, APPROVAL, PAUSED,
 UNPAUSED, ROLE_GRANTED, ROLE_REVOKED, ADDR_FROZEN, MODULE_ADDED, CHECKPOINT,
 TOKEN_INFO) = range(16)

# Name and `values` of each kind. A source says where a value comes from: the
# sender (s), account columns a and b, the amount column (amt), or, for
# non-balance events, a reading of the amount column (role, flag) or of the
# token (module, params, token*).
KINDS = (
    ("MintCompleted", (("sender", "s"), ("to", "b"), ("amount", "amt"))),
    ("BurnCompleted", (("sender", "s"), ("from", "a"), ("amount", "amt"))),
    ("TransferCompleted", (("sender", "s"), ("from", "a"), ("to", "b"), ("amount", "amt"))),
    ("Redeemed", (("sender", "s"), ("owner", "a"), ("amount", "amt"))),
    ("TokensFrozen", (("sender", "s"), ("user", "a"), ("amount", "amt"))),
    ("TokensUnfrozen", (("sender", "s"), ("user", "a"), ("amount", "amt"))),
    ("ForcedTransfer", (("sender", "s"), ("from", "a"), ("to", "b"), ("amount", "amt"))),
    ("Approval", (("owner", "a"), ("spender", "b"), ("value", "amt"))),
    ("Paused", (("sender", "s"),)),
    ("Unpaused", (("sender", "s"),)),
    ("RoleGranted", (("role", "role"), ("account", "a"), ("sender", "s"))),
    ("RoleRevoked", (("role", "role"), ("account", "a"), ("sender", "s"))),
    ("AddressFrozen", (("sender", "s"), ("user", "a"), ("isFrozen", "flag"))),
    ("ComplianceModuleAdded", (("sender", "s"), ("module", "module"), ("params", "params"))),
    ("CheckpointUpdated", (("sender", "s"), ("account", "a"), ("newBalance", "amt"))),
    ("UpdatedTokenInformation", (("sender", "s"), ("newName", "tokenName"),
                                 ("newSymbol", "tokenSymbol"), ("newDecimals", "tokenDecimals"),
                                 ("newVersion", "tokenVersion"))),
)
KIND_NAMES = tuple(k[0] for k in KINDS)
KIND_CODE = {name: code for code, name in enumerate(KIND_NAMES)}
# Values under these names make an event match accountAddress / walletAddress.
ACCOUNT_VALUE_NAMES = frozenset(("account", "from", "to", "user", "owner"))
ACCT_A = tuple(any(n in ACCOUNT_VALUE_NAMES and src == "a" for n, src in p) for _, p in KINDS)
ACCT_B = tuple(any(n in ACCOUNT_VALUE_NAMES and src == "b" for n, src in p) for _, p in KINDS)
ROLES = tuple("0x" + hashlib.sha256(r.encode()).hexdigest() for r in
              ("SUPPLY_MANAGEMENT_ROLE", "CUSTODIAN_ROLE", "EMERGENCY_ROLE", "GOVERNANCE_ROLE"))
M64 = (1 << 64) - 1


class Ledger:
    """One token's events as compact columns in chain order, and the holder
    state they imply. Chain order is also the API's sort order: timestamps
    grow with blocks, and within a block txIndex grows, so no sort is needed.

    A holder row's lastUpdatedAt is the block of the last event that changed
    the row (balance, frozen amount or AddressFrozen)."""

    def __init__(self):
        self.kind = bytearray()
        self.s = array("i")
        self.a = array("i")          # from / owner / user / account, or -1
        self.b = array("i")          # to / spender / module index, or -1
        self.lo = array("Q")         # amount, low and high 64 bits
        self.hi = array("Q")
        self.block = array("I")
        self.txi = array("H")
        self.txno = array("I")       # per-token transaction serial, never reused
        self.next_txno = 0
        self._reset_state()

    def _reset_state(self):
        self.bal = {}
        self.frz = {}
        self.afz = set()
        self.last = {}
        self.paused = False
        self.supply = 0
        self.counts = [0] * len(KINDS)

    def __len__(self):
        return len(self.kind)

    def amount(self, i):
        return self.hi[i] << 64 | self.lo[i]

    def append(self, k, s, a, b, amt, block, txi, txno):
        self.kind.append(k)
        self.s.append(s)
        self.a.append(a)
        self.b.append(b)
        self.lo.append(amt & M64)
        self.hi.append(amt >> 64)
        self.block.append(block)
        self.txi.append(txi)
        self.txno.append(txno)
        self._apply(k, a, b, amt, block)

    COLUMNS = ("kind", "s", "a", "b", "lo", "hi", "block", "txi", "txno")

    def columns_copy(self):
        """The events without the state: enough to render them outside the data lock."""
        c = copy.copy(self)
        for name in self.COLUMNS:
            setattr(c, name, getattr(self, name)[:])
        return c

    def truncate(self, n):
        for name in self.COLUMNS:
            del getattr(self, name)[n:]
        # Replaying is simpler than undoing, and lastUpdatedAt cannot be undone.
        self._reset_state()
        for i in range(n):
            self._apply(self.kind[i], self.a[i], self.b[i], self.amount(i), self.block[i])

    def _apply(self, k, a, b, amt, block):
        """The contract's balance-effect table; every other kind changes no balance."""
        self.counts[k] += 1
        if k == MINT:
            self._move(b, amt, block)
        elif k == TRANSFER:
            self._move(a, -amt, block)
            self._move(b, amt, block)
        elif k == BURN or k == REDEEMED:
            self._move(a, -amt, block)
        elif k == TFROZEN or k == TUNFROZEN:
            left = self.frz.get(a, 0) + (amt if k == TFROZEN else -amt)
            if left:
                self.frz[a] = left
            else:
                self.frz.pop(a, None)
            self.last[a] = block
        elif k == ADDR_FROZEN:
            if amt:
                self.afz.add(a)
            else:
                self.afz.discard(a)
            self.last[a] = block
        elif k == PAUSED or k == UNPAUSED:
            self.paused = k == PAUSED

    def _move(self, acct, delta, block):
        left = self.bal.get(acct, 0) + delta
        if left:
            self.bal[acct] = left
        else:
            del self.bal[acct]       # holders at zero disappear from /holders
        self.supply += delta
        self.last[acct] = block


class Bag:
    """A set with O(1) add, remove and random pick: the generator's holder pools."""

    def __init__(self):
        self.items = []
        self.pos = {}

    def __len__(self):
        return len(self.items)

    def add(self, x):
        if x not in self.pos:
            self.pos[x] = len(self.items)
            self.items.append(x)

    def discard(self, x):
        i = self.pos.pop(x, None)
        if i is not None:
            last = self.items.pop()
            if i < len(self.items):
                self.items[i] = last
                self.pos[last] = i

    def pick(self, rng):
        return self.items[int(rng.random() * len(self.items))]


class Generator:
    """Writes consistent transactions into a token's ledger: amounts never
    exceed what the sender has available, frozen never exceeds balance, a
    ForcedTransfer always rides with its TransferCompleted (and a
    TokensUnfrozen first when it takes frozen tokens), and tokens with
    historical balances log a CheckpointUpdated for every balance change."""

    def __init__(self, tok, rng, start_block=None, end_block=None):
        self.tok = tok
        self.L = tok.ledger
        self.rng = rng
        self.gap_mean = APPEND_GAP
        self.start_block = start_block
        self.end_block = end_block
        self.ckpt = "HISTORICAL_BALANCES" in tok.extensions
        self.avail = Bag()           # accounts with something available to send
        self.frozen = Bag()          # accounts with frozen tokens
        for acct in self.L.bal:
            self._sync(acct)
        ext = tok.extensions
        plan = [(self._mint, 14), (self._batch_mint, 3), (self._transfer, 45),
                (self._approval, 5), (self._admin, 6)]
        if "BURNABLE" in ext:
            plan.append((self._burn, 4))
        if "REDEEMABLE" in ext:
            plan.append((self._redeem, 3))
        if "CUSTODIAN" in ext:
            plan += [(self._freeze, 4), (self._unfreeze, 3), (self._forced, 3)]
        self.builders = [p[0] for p in plan]
        self.cum = list(itertools.accumulate(p[1] for p in plan))

    def run(self, count):
        """Append exactly `count` events, as whole transactions, spread up to
        end_block if there is one."""
        events, txs_done = 0, 0
        while count > 0:
            if self.end_block is not None and len(self.L):
                per_tx = (events + 1.8) / (txs_done + 1)      # events per transaction so far
                self.gap_mean = max(0, self.end_block - self.L.block[-1]) / max(1.0, count / per_tx)
            txs = self.rng.choices(self.builders, cum_weights=self.cum)[0]() or self._mint()
            size = sum(map(len, txs))
            if size > count:
                txs = self._approval()       # one event: always fits
                size = 1
            for tx in txs:
                self.commit(tx)
            count -= size
            events += size
            txs_done += len(txs)

    def commit(self, events):
        L, rng = self.L, self.rng
        r = rng.random()
        if self.start_block is not None:
            block, txi = self.start_block, rng.randrange(40)
            self.start_block = None
        elif r < 0.12:
            block, txi = L.block[-1], L.txi[-1] + 1      # another tx in the same block
        elif r < 0.2:
            # the next block, which often has the same timestamp (see ts_ms)
            block, txi = L.block[-1] + 1, rng.randrange(40)
        else:
            block = L.block[-1] + 1 + int(rng.random() * 2 * self.gap_mean)
            if self.end_block is not None:
                block = min(block, max(self.end_block, L.block[-1] + 1))
            txi = rng.randrange(40)      # other contracts' transactions come first
        txno = L.next_txno
        L.next_txno += 1
        for k, s, a, b, amt in events:
            L.append(k, s, a, b, amt, block, txi, txno)
            if a >= 0:
                self._sync(a)
            if b >= 0 and k != MODULE_ADDED:     # there b is a module, not an account
                self._sync(b)

    def _sync(self, acct):
        bal = self.L.bal.get(acct, 0)
        fr = self.L.frz.get(acct, 0)
        if bal > fr and acct not in self.tok.locked:
            self.avail.add(acct)
        else:
            self.avail.discard(acct)
        if fr:
            self.frozen.add(acct)
        else:
            self.frozen.discard(acct)

    # -- amounts and accounts --

    def _fresh(self):
        """A new amount: 1 to a million whole tokens, any base-unit digits."""
        unit = self.tok.unit
        return self.rng.randrange(unit, unit * 10 ** self.rng.randint(1, 6))

    def _part(self, x):
        """Some of x; now and then all of it, so holders also drop to zero."""
        if self.rng.random() < 0.12:
            return x
        return max(1, x * self.rng.randrange(1, 1 << 20) >> 21)

    def _recipient(self, exclude=-1):
        pool, rng = self.tok.pool, self.rng
        for _ in range(8):           # compliance: frozen addresses receive nothing
            acct = pool[int(rng.random() * len(pool))]
            if acct != exclude and acct not in self.L.afz:
                return acct
        return acct

    def _checkpoint(self, acct, delta):
        if not self.ckpt:
            return []
        return [(CHECKPOINT, self.tok.agent, acct, -1, self.L.bal.get(acct, 0) + delta)]

    # -- transaction builders: a list of transactions, or None when impossible --

    def _mint(self):
        to = self._recipient()
        amt = self._fresh()
        return [[(MINT, self.tok.agent, -1, to, amt)] + self._checkpoint(to, amt)]

    def _batch_mint(self):
        tx, seen = [], set()
        for _ in range(self.rng.randint(2, 4)):
            to = self._recipient()
            if to in seen:
                continue
            seen.add(to)
            amt = self._fresh()
            tx += [(MINT, self.tok.agent, -1, to, amt)] + self._checkpoint(to, amt)
        return [tx]

    def _transfer(self):
        if not self.avail:
            return None
        frm = self.avail.pick(self.rng)
        if self.L.paused or frm in self.L.afz:
            # holders cannot move tokens now; only an agent's forced transfer can
            return self._forced() if "CUSTODIAN" in self.tok.extensions else None
        to = self._recipient(frm)
        amt = self._part(self.L.bal[frm] - self.L.frz.get(frm, 0))
        tx, sender = [], frm
        if self.rng.random() < 0.2:  # transferFrom: the allowance update comes first
            sender = self._recipient(frm)
            tx.append((APPROVAL, frm, frm, sender, self._fresh()))
        tx.append((TRANSFER, sender, frm, to, amt))
        return [tx + self._checkpoint(frm, -amt) + self._checkpoint(to, amt)]

    def _burn(self):
        return self._debit(BURN, self.tok.agent)

    def _redeem(self):
        return self._debit(REDEEMED, None)

    def _debit(self, kind, sender):
        if not self.avail:
            return None
        frm = self.avail.pick(self.rng)
        amt = self._part(self.L.bal[frm] - self.L.frz.get(frm, 0))
        return [[(kind, frm if sender is None else sender, frm, -1, amt)]
                + self._checkpoint(frm, -amt)]

    def _freeze(self):
        if not self.avail:
            return None
        acct = self.avail.pick(self.rng)
        amt = self._part(self.L.bal[acct] - self.L.frz.get(acct, 0))
        return [[(TFROZEN, self.tok.agent, acct, -1, amt)]]

    def _unfreeze(self):
        if not self.frozen:
            return None
        acct = self.frozen.pick(self.rng)
        return [[(TUNFROZEN, self.tok.agent, acct, -1, self._part(self.L.frz[acct]))]]

    def _forced(self):
        bag = self.frozen if self.frozen and self.rng.random() < 0.4 else self.avail
        if not bag:
            return None
        frm = bag.pick(self.rng)
        bal = self.L.bal[frm]
        amt = self._part(bal)
        available = bal - self.L.frz.get(frm, 0)
        agent = self.tok.agent
        tx = []
        if amt > available:          # as ERC-3643: unfreeze what the transfer needs
            tx.append((TUNFROZEN, agent, frm, -1, amt - available))
        to = self._recipient(frm)
        tx += [(TRANSFER, agent, frm, to, amt), (FORCED, agent, frm, to, amt)]
        return [tx + self._checkpoint(frm, -amt) + self._checkpoint(to, amt)]

    def _approval(self):
        owner = self._recipient()
        return [[(APPROVAL, owner, owner, self._recipient(owner), self._fresh())]]

    def _admin(self):
        agent, r = self.tok.agent, self.rng.random()
        if r < 0.35:
            kind = ROLE_GRANTED if self.rng.random() < 0.7 else ROLE_REVOKED
            return [[(kind, agent, self._recipient(), -1, self.rng.randrange(len(ROLES)))]]
        if r < 0.6:
            acct = self.tok.pool[int(self.rng.random() * len(self.tok.pool))]
            return [[(ADDR_FROZEN, agent, acct, -1, int(acct not in self.L.afz))]]
        if r < 0.8 and "PAUSABLE" in self.tok.extensions and not self.L.paused:
            return [[(PAUSED, agent, -1, -1, 0)], [(UNPAUSED, agent, -1, -1, 0)]]
        return [[(TOKEN_INFO, agent, -1, -1, 0)]]


# ---------------------------------------------------------------------------
# The seeded world: factories, tokens, accounts
# ---------------------------------------------------------------------------

N_AGENTS = 9                     # accounts 0..8 are issuers' agents
WHALE = 9                        # the treasury that holds more than 10^30 base units
N_INVESTORS = 5000
DAY = 86400

# name, typeId, tokenExtensions; the last factory was never used (hasTokens false)
FACTORIES = (
    ("Bond Factory", "ATKBondFactory",
     ("ACCESS_MANAGED", "BURNABLE", "CAPPED", "CUSTODIAN", "HISTORICAL_BALANCES", "PAUSABLE", "REDEEMABLE", "YIELD")),
    ("Equity Factory", "ATKEquityFactory",
     ("ACCESS_MANAGED", "BURNABLE", "CUSTODIAN", "HISTORICAL_BALANCES", "PAUSABLE")),
    ("Fund Factory", "ATKFundFactory", ("ACCESS_MANAGED", "BURNABLE", "CUSTODIAN", "PAUSABLE", "REDEEMABLE")),
    ("StableCoin Factory", "ATKStableCoinFactory",
     ("ACCESS_MANAGED", "BURNABLE", "COLLATERAL", "CUSTODIAN", "PAUSABLE")),
    ("Deposit Factory", "ATKDepositFactory", ("ACCESS_MANAGED", "BURNABLE", "COLLATERAL", "CUSTODIAN", "PAUSABLE")),
    ("Real Estate Factory", "ATKRealEstateFactory", ("ACCESS_MANAGED", "BURNABLE", "CUSTODIAN", "PAUSABLE")),
    ("Precious Metal Factory", "ATKPreciousMetalFactory",
     ("ACCESS_MANAGED", "BURNABLE", "CUSTODIAN", "HISTORICAL_BALANCES", "PAUSABLE")),
    ("Legacy Bond Factory", "ATKBondFactory", ("ACCESS_MANAGED", "BURNABLE", "CUSTODIAN", "PAUSABLE")),
)

# name, symbol, type, decimals, factory, extensions, (min, max) events,
# investors, day of creation in 2026, role
DEFAULT_TOKENS = (
    ("Acme Bond 2030", "ACB30", "bond", 18, 0, FACTORIES[0][2], (380, 460), 120, 1, "whale"),
    ("Northwind Equity A", "NWEA", "equity", 0, 1, FACTORIES[1][2], (300, 380), 90, 12, ""),
    ("Harbor Income Fund", "HIF", "fund", 6, 2, FACTORIES[2][2], (2900, 3100), 250, 20, ""),
    ("Euro Settlement Coin", "EURSC", "stablecoin", 6, 3, FACTORIES[3][2], (350, 450), 150, 33, ""),
    ("Riverside Deposit", "RDEP", "deposit", 2, 4, FACTORIES[4][2], (250, 330), 80, 45, ""),
    ("Canal Street Lofts", "CSL", "real-estate", 18, 5, FACTORIES[5][2], (220, 300), 60, 60, "paused"),
    ("Vaulted Gold", "VGOLD", "precious-metal", 18, 6, FACTORIES[6][2], (280, 360), 100, 75, ""),
    ("Pilot Note 2026", "PN26", "bond", 2, 0, ("ACCESS_MANAGED", "BURNABLE"), (6, 8), 3, 150, ""),
)
BIG_TOKEN = ("Big Volume Coin", "BIG", "stablecoin", 18, 3, FACTORIES[3][2], None, N_INVESTORS, 2, "")


def small_token(i):
    """Token i of --small-tokens: a deposit of some 30 events and a dozen
    holders, one page of anything, for benchmarks over many tokens."""
    return ("Small Deposit %03d" % i, "SML%03d" % i, "deposit", 2, 4, FACTORIES[4][2], (25, 35), 12,
            100 + i % 150, "")
HISTORY_END_DAY = 257            # 2026-09-15: generated history stops about here
APPEND_GAP = 3                   # blocks between appended transactions, on average

FEATURES = {"HISTORICAL_BALANCES": "historical-balances", "YIELD": "fixed-treasury-yield",
            "REDEEMABLE": "maturity-redemption"}
MODULE_TYPES = (
    ("CountryAllowList", {"countries": [56, 250, 276, 528]}),
    ("IdentityVerification", {"requiredClaimTopics": ["KYC", "AML"]}),
    ("InvestorCount", {"maxInvestors": 500, "global": False}),
    ("TokenSupplyLimit", {"maxSupply": "1000000000", "periodDays": 0}),
    ("TransferApproval", {"approvalExpirySeconds": 86400}),
)
ASSET_CLASSES = (
    ("fixed-income", "Fixed income", True), ("equity", "Equity", True), ("funds", "Funds", True),
    ("cash-equivalents", "Cash equivalents", True), ("real-assets", "Real assets", True),
    ("private-credit", "Private credit", False),
)
SERVICE_STATUSES = ("healthy", "degraded", "critical", "unknown", "reindexing")


class Token:
    def __init__(self, world, index, spec, n_events):
        (self.name, self.symbol, self.type, self.decimals, factory, extensions, count_range,
         investors, day, role) = spec
        seed = world.seed
        rng = random.Random("%s:token:%d" % (seed, index))
        self.world = world
        self.unit = 10 ** self.decimals
        self.address = "0x" + hexid(seed, "token", index)
        self.factory = world.factories[factory]["id"]
        self.extensions = list(extensions)
        self.agent = index % N_AGENTS
        self.pool = rng.sample(range(N_AGENTS + 1, N_AGENTS + 1 + max(1000, investors)), investors)
        self.locked = {WHALE} if role == "whale" else set()
        self._idhash = hashlib.sha256(("%s|%s|" % (seed, self.address)).encode())
        self._txmask = int(hexid(seed, self.address, "txmask", n=16), 16)
        self.created_block = block_at(T0 + day * DAY + rng.randrange(DAY))
        self.created_ms = ts_ms(self.created_block)
        self.modules = [{"module": {"id": "0x" + hexid(seed, self.address, "module", m)},
                         "typeId": MODULE_TYPES[m][0], "parameters": MODULE_TYPES[m][1],
                         "encoded": "0x" + hexid(seed, self.address, "params", m, n=64)}
                        for m in sorted(rng.sample(range(len(MODULE_TYPES)),
                                                   1 if investors < 10 else rng.randint(2, 3)))]
        self._strings = {"tokenName": json.dumps(self.name)[1:-1], "tokenSymbol": json.dumps(self.symbol)[1:-1],
                         "tokenDecimals": str(self.decimals), "tokenVersion": "2"}
        self.ledger = Ledger()
        if n_events is None:
            n_events = rng.randint(*count_range)
        gen = Generator(self, rng, start_block=self.created_block + rng.randrange(50, 500),
                        end_block=block_at(T0 + HISTORY_END_DAY * DAY))
        budget = n_events - (1 if role == "paused" else 0)
        opening = [[(MODULE_ADDED, self.agent, -1, m, 0)] for m in range(len(self.modules))]
        opening.append([(ROLE_GRANTED, self.agent, self.agent, -1, 0)])
        if role == "whale":
            amt = self.unit * 10 ** 13 + rng.randrange(self.unit * 10 ** 12)
            opening.append([(MINT, self.agent, -1, WHALE, amt)] + gen._checkpoint(WHALE, amt))
        for tx in opening:
            if budget >= len(tx):
                gen.commit(tx)
                budget -= len(tx)
        gen.run(budget)
        if role == "paused":
            gen.commit([(PAUSED, self.agent, -1, -1, 0)])
        self._static_collections(rng)

    def _static_collections(self, rng):
        seed, addr, created = self.world.seed, self.address, self.created_ms
        self.features = [{"featureTypeId": FEATURES[e], "address": "0x" + hexid(seed, addr, "feature", e),
                          "attachedAt": iso(created + 60_000)}
                         for e in self.extensions if e in FEATURES]
        isin = ("US" if self.type in ("equity", "fund") else "XS") + "%010d" % rng.randrange(10 ** 10)
        meta = [("isin", isin), ("currency", "EUR" if self.type in ("stablecoin", "deposit") else "USD"),
                ("issuer", "Sim Issuer %d" % (self.agent + 1))]
        if self.type == "bond":
            meta.append(("maturityDate", "2030-06-30"))
        self.metadata = [{"key": k, "value": v, "updatedAt": iso(created + DAY * 1000)} for k, v in meta]
        holders = sorted(self.ledger.bal)       # approvals are between real holders
        self.approvals = []
        for n in range(min(12, len(holders) // 2)):
            frm, to = rng.sample(holders, 2)
            amount = rng.randrange(1, self.unit * 1000)
            self.approvals.append({
                "id": "ta_" + hexid(seed, addr, "approval", n, n=24),
                "fromWallet": self.world.accounts[frm], "toWallet": self.world.accounts[to],
                "amount": shift(amount, self.decimals), "amountExact": str(amount),
                "status": rng.choice(("pending", "approved", "revoked", "executed")),
                "createdAt": iso(rng.randrange(created, (T0 + HISTORY_END_DAY * DAY) * 1000, 1000))})

    # -- rendering --

    def item(self):
        L = self.ledger
        return {"id": self.address, "name": self.name, "symbol": self.symbol, "decimals": self.decimals,
                "type": self.type, "tokenFactory": {"id": self.factory},
                "totalSupply": shift(L.supply, self.decimals), "totalSupplyExact": str(L.supply),
                "pausable": {"paused": L.paused}, "createdAt": iso(self.created_ms),
                "createdBy": {"id": self.world.accounts[self.agent]}, "extensions": self.extensions}

    def holder(self, acct):
        L, d = self.ledger, self.decimals
        bal, fr = L.bal[acct], L.frz.get(acct, 0)
        return {"account": {"id": self.world.accounts[acct]},
                "value": shift(bal, d), "valueExact": str(bal),
                "available": shift(bal - fr, d), "availableExact": str(bal - fr),
                "frozen": shift(fr, d), "frozenExact": str(fr),
                "isFrozen": acct in L.afz, "lastUpdatedAt": iso(ts_ms(L.last[acct]))}

    def tx_hash(self, txno):
        # The last 16 digits encode the serial (masked), so a transactionHash
        # filter finds its events by binary search instead of a hash table.
        h = self._idhash.copy()
        h.update(b"%d" % txno)
        return "0x" + h.hexdigest()[:48] + "%016x" % (txno ^ self._txmask)

    def txno_of(self, tx_hash):
        txno = int(tx_hash[-16:], 16) ^ self._txmask
        if txno < self.ledger.next_txno and self.tx_hash(txno) == tx_hash:
            return txno
        return None

    def event_id(self, i):
        """Unique per (transaction, position in it): a reorg's new transactions get new ids."""
        L = self.ledger
        txno, j = L.txno[i], i
        while j and L.txno[j - 1] == txno:
            j -= 1
        h = self._idhash.copy()
        h.update(b"%d|%d" % (txno, i - j))
        return "evt_" + h.hexdigest()[:24]

    def events_json(self, positions):
        """Events as JSON text, written directly: pages are the hot path, and
        this is about three times faster than dicts through json.dumps. Every
        value is hex, digits or a string escaped once (token strings)."""
        L, accounts, out = self.ledger, self.world.accounts, []
        last_txno = tx_hash = None
        for i in positions:
            k, block, txno = L.kind[i], L.block[i], L.txno[i]
            if txno != last_txno:
                last_txno, tx_hash = txno, self.tx_hash(txno)
            eid = self.event_id(i)
            values = []
            for name, src in KINDS[k][1]:
                if src == "s":
                    v = accounts[L.s[i]]
                elif src == "a":
                    v = accounts[L.a[i]]
                elif src == "b":
                    v = accounts[L.b[i]]
                elif src == "amt":
                    v = str(L.amount(i))
                elif src == "role":
                    v = ROLES[L.lo[i]]
                elif src == "flag":
                    v = "true" if L.lo[i] else "false"
                elif src == "module":
                    v = self.modules[L.b[i]]["module"]["id"]
                elif src == "params":
                    v = self.modules[L.b[i]]["encoded"]
                else:
                    v = self._strings[src]
                values.append('{"id":"%s-%s","name":"%s","value":"%s"}' % (eid, name, name, v))
            out.append('{"id":"%s","eventName":"%s","blockNumber":"%d","blockTimestamp":"%s",'
                       '"transactionHash":"%s","txIndex":"%d","emitter":{"id":"%s"},"sender":{"id":"%s"},'
                       '"values":[%s]}' % (eid, KIND_NAMES[k], block, iso(ts_ms(block)), tx_hash, L.txi[i],
                                           self.address, accounts[L.s[i]], ",".join(values)))
        return out

    def event(self, i):
        return json.loads(self.events_json((i,))[0])


class World:
    """Everything the API serves."""

    def __init__(self, seed, big_events, small_tokens=0):
        self.seed = seed
        self.accounts = ["0x" + hexid(seed, "account", i) for i in range(N_AGENTS + 1 + N_INVESTORS)]
        self.account_index = {a: i for i, a in enumerate(self.accounts)}
        self.factories = [{"id": "0x" + hexid(seed, "factory", i), "name": n, "typeId": t,
                           "hasTokens": False, "tokenExtensions": list(ext)}
                          for i, (n, t, ext) in enumerate(FACTORIES)]
        specs = [(s, None) for s in DEFAULT_TOKENS]
        if big_events:
            specs.append((BIG_TOKEN, big_events))
        specs += [(small_token(i), None) for i in range(1, small_tokens + 1)]
        self.tokens = {}
        for index, (spec, n) in enumerate(specs):
            tok = Token(self, index, spec, n)
            self.tokens[tok.address] = tok
        for tok in self.tokens.values():
            next(f for f in self.factories if f["id"] == tok.factory)["hasTokens"] = True
        self.asset_classes = [{"id": "acd_" + hexid(seed, "asset-class", slug, n=20), "slug": slug,
                               "name": name, "isSystem": system} for slug, name, system in ASSET_CLASSES]
        self.indexer_status = "healthy"
        self.snapshots = []
        head_ms = ts_ms(self.head_block())
        for h in range(24, 0, -1):   # a day of hourly snapshots before the head
            for row in self.services(head_ms - h * 3_600_000):
                self._snapshot(row, "snapshot", head_ms - h * 3_600_000)

    def head_block(self):
        return max([block_at(NOW_S)] + [t.ledger.block[-1] for t in self.tokens.values() if len(t.ledger)])

    def services(self, at_ms=None):
        head = self.head_block()
        updated = iso(at_ms if at_ms is not None else ts_ms(head))
        status = self.indexer_status
        lag = 3 if status == "healthy" else 4800

        def row(service, status, lag, stall):
            return {"serviceType": service, "chainId": CHAIN_ID, "networkName": NETWORK_NAME, "status": status,
                    "blockHeight": str(head - lag), "chainHeadBlock": str(head), "syncLag": lag,
                    "finalityLagBlocks": 12, "blockAgeSeconds": 4, "stallSeconds": stall,
                    "reindexing": status == "reindexing", "updatedAt": updated}
        return [row("indexer", status, lag, 0 if status in ("healthy", "reindexing") else 900),
                row("chain-rpc", "healthy", 0, 0)]

    def _snapshot(self, row, event_type, at_ms):
        self.snapshots.append(dict(row, id="hs_" + hexid(self.seed, "snapshot", len(self.snapshots), n=20),
                                   eventType=event_type, createdAt=iso(at_ms)))

    def set_indexer_status(self, status):
        self.indexer_status = status
        last = max(parse_instant_us(s["createdAt"]) for s in self.snapshots) // 1000
        self._snapshot(self.services()[0], "status-change", last + 1000)

    # -- ledger mutations for the tests --

    def append(self, tok, count):
        L = tok.ledger
        start = len(L)
        rng = random.Random("%s:%s:append:%d" % (self.seed, tok.address, L.next_txno))
        last = L.block[-1] if len(L) else tok.created_block
        block = last + 1
        while ts_ms(block) <= ts_ms(last):      # strictly later than the last event
            block += 1
        Generator(tok, rng, start_block=block).run(count)
        return [tok.event(i) for i in range(start, len(L))]

    def reorg(self, tok, rollback, replace):
        """Drop the last `rollback` events, widened to whole blocks as a chain
        reorganization drops blocks, then write `replace` new events from the
        first dropped block on (so with the same timestamps, but new ids)."""
        L = tok.ledger
        cut = max(0, len(L) - rollback)
        start_block = None
        if cut < len(L):
            start_block = L.block[cut]
            while cut and L.block[cut - 1] == start_block:
                cut -= 1
        removed = [tok.event_id(i) for i in range(cut, len(L))]
        L.truncate(cut)
        rng = random.Random("%s:%s:reorg:%d" % (self.seed, tok.address, L.next_txno))
        if start_block is None and not len(L):
            start_block = tok.created_block + 1
        Generator(tok, rng, start_block=start_block).run(replace)
        return {"removed": removed, "added": [tok.event(i) for i in range(cut, len(L))]}


def truth(tok, at_us=None):
    """Balances by replaying the rendered events by name, per the contract's
    table: a check on the ledger that shares none of its bookkeeping."""
    bal, sums, n = Counter(), Counter(), 0
    for i in range(len(tok.ledger)):
        e = tok.event(i)
        if at_us is not None and parse_instant_us(e["blockTimestamp"]) > at_us:
            break                    # the ledger is in time order
        n += 1
        v = {x["name"]: x["value"] for x in e["values"]}
        name = e["eventName"]
        if "amount" not in v:
            continue
        amt = int(v["amount"])
        sums[name] += amt
        if name == "MintCompleted":
            bal[v["to"]] += amt
        elif name == "TransferCompleted":
            bal[v["from"]] -= amt
            bal[v["to"]] += amt
        elif name == "BurnCompleted":
            bal[v["from"]] -= amt
        elif name == "Redeemed":
            bal[v["owner"]] -= amt
    holders = {a: str(b) for a, b in sorted(bal.items()) if b}
    return {"events": n, "holders": len(holders), "total_supply_exact": str(sum(bal.values())),
            "sum_amount_by_event": {k: str(v) for k, v in sorted(sums.items())}, "balances": holders}


# ---------------------------------------------------------------------------
# Query parsing: pagination, sorting, filtering
# ---------------------------------------------------------------------------

class ApiError(Exception):
    KINDS = {400: ("DALP-0400", "validation", False), 401: ("DALP-0001", "authentication", False),
             403: ("DALP-0006", "permission", False), 404: ("DALP-0004", "not-found", False),
             405: ("DALP-0005", "validation", False), 422: ("DALP-0022", "validation", False),
             429: ("DALP-0029", "rate-limit", True), 500: ("DALP-0500", "internal", True),
             502: ("DALP-0502", "upstream", True), 503: ("DALP-0503", "unavailable", True),
             504: ("DALP-0504", "timeout", True)}

    def __init__(self, status, message, why, fix, details=None):
        super().__init__(message)
        self.status = status
        eid, category, retryable = self.KINDS[status]
        self.body = {"error": {"id": eid, "category": category, "status": status, "retryable": retryable,
                               "message": message, "why": why, "fix": fix, "details": details or {}}}


def invalid(message, **details):
    return ApiError(422, message, "The query does not match what this collection accepts.",
                    "Correct the parameter and send the request again.", details)


OPERATORS = ("eq", "ne", "gt", "gte", "lt", "lte", "iLike", "inArray", "notInArray", "isEmpty", "isNotEmpty")
RANGE = frozenset(("gt", "gte", "lt", "lte"))
ADDRESS_RE = re.compile(r"0x[0-9a-fA-F]{40}")
HASH_RE = re.compile(r"0x[0-9a-fA-F]{64}")
DECIMAL_RE = re.compile(r"-?[0-9]+(\.[0-9]+)?")
UINT_RE = re.compile(r"[0-9]+")
FILTER_KEY_RE = re.compile(r"filter\[([^\[\]]+)\](?:\[([^\[\]]+)\])?")
MAX_LIMIT = 200
MAX_IN_VALUES = 100


def like_regex(pattern):
    """SQL LIKE (% and _, backslash escapes) as a case-insensitive regex."""
    out, escaped = [], False
    for ch in pattern:
        if escaped:
            out.append(re.escape(ch))
            escaped = False
        elif ch == "\\":
            escaped = True
        else:
            out.append(".*" if ch == "%" else "." if ch == "_" else re.escape(ch))
    if escaped:
        out.append(re.escape("\\"))
    return re.compile("".join(out), re.I | re.S)


def parse_value(kind, text, key):
    """One filter value, typed; a malformed one is a 422 naming the parameter."""
    if kind == "addr" or kind == "hash":
        if not (ADDRESS_RE if kind == "addr" else HASH_RE).fullmatch(text):
            raise invalid("%s: '%s' is not a valid %s" % (key, text, "address" if kind == "addr" else
                                                          "transaction hash"), parameter=key, value=text)
        return text.lower()
    if kind == "bool":
        if text not in ("true", "false"):
            raise invalid("%s: '%s' is not true or false" % (key, text), parameter=key, value=text)
        return text == "true"
    if kind == "ts":
        us = parse_instant_us(text)
        if us is None:
            raise invalid("%s: '%s' is not an ISO 8601 timestamp with a time zone" % (key, text),
                          parameter=key, value=text)
        return us
    if kind == "dec":
        if not DECIMAL_RE.fullmatch(text):
            raise invalid("%s: '%s' is not a decimal number" % (key, text), parameter=key, value=text)
        return Fraction(text)
    if kind == "q":
        return text.lower()
    return text


class Spec:
    """What a collection accepts: filter fields (value kind, operators, getter
    on an item), sort fields (key on an item), default sort, tie-breaker (same
    direction), facet fields."""

    def __init__(self, filters, sorts, default, tie, facets=()):
        self.filters, self.sorts, self.default, self.tie, self.facets = filters, sorts, default, tie, facets


def _ts_key(field):
    return lambda it: parse_instant_us(it[field])


STR_OPS = frozenset(("eq", "ne", "iLike", "inArray"))
SPECS = {
    "tokens": Spec(
        {"q": ("q", {"eq"}, lambda t: (t["name"].lower(), t["symbol"].lower())),
         "name": ("str", STR_OPS, lambda t: t["name"]),
         "symbol": ("str", STR_OPS, lambda t: t["symbol"]),
         "type": ("str", {"eq", "ne", "inArray"}, lambda t: t["type"]),
         "tokenFactory": ("addr", {"eq", "inArray"}, lambda t: t["tokenFactory"]["id"]),
         "createdAt": ("ts", RANGE, _ts_key("createdAt"))},
        {"name": lambda t: t["name"], "symbol": lambda t: t["symbol"], "createdAt": _ts_key("createdAt")},
        ("createdAt", True), lambda t: t["id"], ("type",)),
    "events": Spec(
        {"eventName": ("str", {"eq", "ne", "inArray", "notInArray"}, None),
         "senderAddress": ("addr", {"eq", "inArray"}, None),
         "accountAddress": ("addr", {"eq", "inArray"}, None),
         "walletAddress": ("addr", {"eq", "inArray"}, None),
         "transactionHash": ("hash", {"eq"}, None),
         "blockTimestamp": ("ts", RANGE, None)},
        {"blockTimestamp": None, "blockNumber": None}, ("blockTimestamp", True), None, ("eventName",)),
    # holder getters see (item, exact balance as a Fraction of whole tokens)
    "holders": Spec(
        {"isFrozen": ("bool", {"eq"}, lambda h: h[0]["isFrozen"]),
         "value": ("dec", RANGE, lambda h: h[1])},
        {"value": lambda h: h[1]}, ("value", True), lambda h: h[0]["account"]["id"]),
    "factories": Spec(
        {"name": ("str", {"eq", "iLike"}, lambda f: f["name"]),
         "typeId": ("str", {"eq", "inArray"}, lambda f: f["typeId"]),
         "hasTokens": ("bool", {"eq"}, lambda f: f["hasTokens"])},
        {"name": lambda f: f["name"]}, ("name", False), lambda f: f["id"]),
    "features": Spec({}, {"featureTypeId": lambda f: f["featureTypeId"], "attachedAt": _ts_key("attachedAt")},
                     ("featureTypeId", False), lambda f: f["address"]),
    "metadata": Spec({}, {"key": lambda m: m["key"], "updatedAt": _ts_key("updatedAt")},
                     ("key", False), lambda m: m["key"]),
    "compliance-modules": Spec({}, {"typeId": lambda m: m["typeId"]}, ("typeId", False),
                               lambda m: m["module"]["id"]),
    "transfer-approvals": Spec({}, {"createdAt": _ts_key("createdAt")}, ("createdAt", False), lambda a: a["id"]),
    "asset-class-definitions": Spec({}, {"name": lambda a: a["name"], "slug": lambda a: a["slug"]},
                                    ("name", False), lambda a: a["id"]),
    "health-snapshots": Spec({}, {"createdAt": _ts_key("createdAt")}, ("createdAt", True), lambda s: s["id"]),
}


class Query:
    """A collection request's parsed parameters, validated against its Spec."""

    def __init__(self, spec, pairs):
        self.offset, self.limit = 0, 50
        self.filters = []            # (field, op, parsed value)
        sort = sort_by = direction = None
        for key, value in pairs:
            if key == "page[offset]" or key == "page[limit]":
                if not UINT_RE.fullmatch(value):
                    raise invalid("%s must be a non-negative integer, got '%s'" % (key, value),
                                  parameter=key, value=value)
                n = int(value)
                if key == "page[offset]":
                    self.offset = n
                elif not 1 <= n <= MAX_LIMIT:
                    raise invalid("page[limit] must be between 1 and %d, got %d" % (MAX_LIMIT, n),
                                  parameter=key, value=value, maximum=MAX_LIMIT)
                else:
                    self.limit = n
            elif key == "sort":
                sort = value
            elif key == "sortBy":
                sort_by = value
            elif key == "sortDirection":
                if value not in ("asc", "desc"):
                    raise invalid("sortDirection must be asc or desc, got '%s'" % value,
                                  parameter=key, value=value)
                direction = value
            elif key.startswith("filter["):
                self.filters.append(self._filter(spec, key, value))
            else:
                raise invalid("unknown query parameter '%s'" % key, parameter=key)
        if sort is not None and (sort_by is not None or direction is not None):
            raise invalid("use either sort or sortBy/sortDirection, not both", parameter="sort")
        if direction is not None and sort_by is None:
            raise invalid("sortDirection needs sortBy", parameter="sortDirection")
        if sort is not None:
            field, desc = (sort[1:], True) if sort.startswith("-") else (sort, False)
        elif sort_by is not None:
            field, desc = sort_by, direction == "desc"
        else:
            field, desc = spec.default
        if field not in spec.sorts:
            raise invalid("cannot sort by '%s'; sortable fields: %s" % (field, ", ".join(sorted(spec.sorts)) or
                                                                       "none"),
                          parameter="sort", value=field, allowed=sorted(spec.sorts))
        self.sort, self.desc = field, desc

    @staticmethod
    def _filter(spec, key, value):
        m = FILTER_KEY_RE.fullmatch(key)
        if not m:
            raise invalid("malformed filter parameter '%s'" % key, parameter=key)
        field, op = m.group(1), m.group(2) or "eq"
        if field not in spec.filters:
            raise invalid("unknown filter field '%s'; filterable fields: %s" % (field, ", ".join(spec.filters)
                                                                                 or "none"),
                          parameter=key, allowed=list(spec.filters))
        if op not in OPERATORS:
            raise invalid("unknown filter operator '%s' in %s" % (op, key), parameter=key, allowed=list(OPERATORS))
        kind, ops, _ = spec.filters[field]
        if op not in ops:
            raise invalid("operator '%s' is not supported on field '%s'; supported: %s"
                          % (op, field, ", ".join(o for o in OPERATORS if o in ops)),
                          parameter=key, allowed=[o for o in OPERATORS if o in ops])
        if op in ("inArray", "notInArray"):
            items = value.split(",")
            if len(items) > MAX_IN_VALUES:
                raise invalid("%s takes at most %d values, got %d" % (key, MAX_IN_VALUES, len(items)),
                              parameter=key, maximum=MAX_IN_VALUES)
            return field, op, frozenset(parse_value(kind, v, key) for v in items)
        if op == "iLike":
            return field, op, like_regex(value)
        return field, op, parse_value(kind, value, key)


def compare(op, x, v):
    if op == "eq":
        return x == v
    if op == "ne":
        return x != v
    if op == "gt":
        return x > v
    if op == "gte":
        return x >= v
    if op == "lt":
        return x < v
    if op == "lte":
        return x <= v
    if op == "iLike":
        return v.fullmatch(x) is not None
    if op == "inArray":
        return x in v
    return x not in v                # notInArray


def select_items(spec, items, query):
    """Filter and sort plain items (everything but events)."""
    preds = []
    for field, op, v in query.filters:
        kind, _, get = spec.filters[field]
        if kind == "q":
            preds.append(lambda it, get=get, v=v: any(v in s for s in get(it)))
        elif kind == "addr":
            preds.append(lambda it, get=get, op=op, v=v: compare(op, get(it).lower(), v))
        else:
            preds.append(lambda it, get=get, op=op, v=v: compare(op, get(it), v))
    rows = [it for it in items if all(p(it) for p in preds)]
    key, tie = spec.sorts[query.sort], spec.tie
    rows.sort(key=lambda it: (key(it), tie(it)), reverse=query.desc)
    return rows


def facet_list(counter):
    return [{"value": v, "count": c} for v, c in sorted(counter.items(), key=lambda vc: (-vc[1], vc[0]))]


# ---------------------------------------------------------------------------
# The API
# ---------------------------------------------------------------------------

def dumps(obj):
    return json.dumps(obj, separators=(",", ":"))


class Resp:
    """A response body, with its gzip form made once when first asked for."""
    __slots__ = ("status", "body", "ctype", "headers", "rows", "_gz")

    def __init__(self, status, body, rows=0, ctype="application/json; charset=utf-8", headers=()):
        self.status, self.body, self.rows, self.ctype, self.headers = status, body, rows, ctype, headers
        self._gz = None

    @classmethod
    def json(cls, status, obj, rows=0, headers=()):
        return cls(status, dumps(obj).encode(), rows, headers=headers)

    def gzipped(self):
        if self._gz is None:
            self._gz = gzip.compress(self.body, 1, mtime=0)    # fastest: loopback bytes are cheap
        return self._gz


class LRU:
    def __init__(self, max_items, max_bytes=None):
        self.max_items, self.max_bytes = max_items, max_bytes
        self.d = OrderedDict()
        self.bytes = 0
        self.lock = threading.Lock()

    def get(self, key):
        with self.lock:
            v = self.d.get(key)
            if v is None:
                return None
            self.d.move_to_end(key)
            return v[0]

    def put(self, key, value, size=0):
        with self.lock:
            old = self.d.pop(key, None)
            if old is not None:
                self.bytes -= old[1]
            self.d[key] = (value, size)
            self.bytes += size
            while len(self.d) > self.max_items or (self.max_bytes and self.bytes > self.max_bytes):
                self.bytes -= self.d.popitem(last=False)[1][1]

    def clear(self):
        with self.lock:
            self.d.clear()
            self.bytes = 0


ROUTE_RE = re.compile(r"/api/v2/(?:(tokens)(?:/([^/]+)(?:/(holders|events|features|metadata|compliance-modules|"
                      r"transfer-approvals|holder-balances))?)?|(system/factories|settings/asset-class-definitions|"
                      r"blockchain-monitoring/health-metrics/summary|blockchain-monitoring/health-snapshots))")
PER_TOKEN_STATIC = {"features": "features", "metadata": "metadata", "compliance-modules": "modules",
                    "transfer-approvals": "approvals"}


class Api:
    """GET /api/v2/...: auth, routing, and the response cache (bodies keyed by
    path and decoded query, dropped whenever the data changes)."""

    def __init__(self, world, api_key):
        self.world = world
        self.api_key = api_key
        self.lock = threading.Lock()         # one reader or writer of the data at a time
        self.cache = LRU(4096, 256 << 20)
        self.selections = LRU(32)            # filtered, sorted row sets, for paging through them

    def invalidate(self):
        """Call with self.lock held, after any change to the data."""
        self.cache.clear()
        self.selections.clear()

    def get(self, method, path, pairs, key):
        try:
            if not path.startswith("/api/v2/"):
                raise ApiError(404, "No route for %s" % path, "The path is not part of the DALP v2 API.",
                               "Check the path; every route starts with /api/v2/.", {"path": path})
            if key != self.api_key:
                raise ApiError(401, "Missing or invalid API key.",
                               "The X-Api-Key header is missing or does not match an active key.",
                               "Send a valid key in the X-Api-Key header.")
            if method != "GET":
                raise ApiError(405, "Method %s is not allowed here." % method, "This API is read-only here.",
                               "Use GET.", {"method": method})
            cache_key = (path, tuple(pairs))
            hit = self.cache.get(cache_key)
            if hit is not None:
                return hit
            seen = set()
            for k, _ in pairs:
                if k in seen:
                    raise invalid("query parameter '%s' is repeated" % k, parameter=k)
                seen.add(k)
            with self.lock:
                resp = self._route(path, pairs)
                self.cache.put(cache_key, resp, len(resp.body) * 5 // 4)    # gzip adds about a fifth
            return resp
        except ApiError as e:
            return Resp.json(e.status, e.body)

    def _route(self, path, pairs):
        m = ROUTE_RE.fullmatch(path)
        if not m:
            raise ApiError(404, "No route for %s" % path, "The path is not part of the DALP v2 API.",
                           "Check the path against the API reference.", {"path": path})
        _, addr, sub, other = m.groups()
        w = self.world
        link = "/v2" + path[len("/api/v2"):]
        if other == "system/factories":
            return self._collection(link, "factories", w.factories, pairs)
        if other == "settings/asset-class-definitions":
            return self._collection(link, "asset-class-definitions", w.asset_classes, pairs)
        if other == "blockchain-monitoring/health-snapshots":
            return self._collection(link, "health-snapshots", w.snapshots, pairs)
        if other:
            self._no_params(pairs)
            return self._single(link, {"services": w.services()})
        if addr is None:
            return self._collection(link, "tokens", [t.item() for t in w.tokens.values()], pairs)
        tok = w.tokens.get(addr.lower())
        if tok is None:
            raise ApiError(404, "Token %s not found." % addr, "No token with this address is indexed.",
                           "Check the address; a token deployed moments ago may not be indexed yet.",
                           {"tokenAddress": addr})
        if sub is None:
            self._no_params(pairs)
            return self._single(link, tok.item())
        if sub == "events":
            return self._events(link, tok, pairs)
        if sub == "holders":
            return self._holders(link, tok, pairs)
        if sub == "holder-balances":
            return self._holder_balance(link, tok, pairs)
        return self._collection(link, sub, getattr(tok, PER_TOKEN_STATIC[sub]), pairs)

    @staticmethod
    def _no_params(pairs):
        if pairs:
            raise invalid("unknown query parameter '%s'" % pairs[0][0], parameter=pairs[0][0])

    @staticmethod
    def _single(link, data):
        return Resp.json(200, {"data": data, "links": {"self": link}}, rows=int(data is not None))

    def _holder_balance(self, link, tok, pairs):
        extra = [k for k, _ in pairs if k != "holderAddress"]
        if extra:
            raise invalid("unknown query parameter '%s'" % extra[0], parameter=extra[0])
        if not pairs:
            raise invalid("holderAddress is required", parameter="holderAddress")
        holder = parse_value("addr", pairs[0][1], "holderAddress")
        acct = self.world.account_index.get(holder)
        row = tok.holder(acct) if acct in tok.ledger.bal else None
        return self._single(link + "?holderAddress=" + holder, row)

    def _collection(self, link, name, items, pairs):
        spec = SPECS[name]
        q = Query(spec, pairs)
        rows = select_items(spec, items, q)
        facets = {f: facet_list(Counter(r[f] for r in rows)) for f in spec.facets}
        return self._page(link, pairs, q, len(rows), [dumps(r) for r in rows[q.offset:q.offset + q.limit]], facets)

    def _holders(self, link, tok, pairs):
        spec = SPECS["holders"]
        q = Query(spec, pairs)
        key = (tok.address, "holders", tuple(p for p in pairs if not p[0].startswith("page[")))
        rows = self.selections.get(key)
        if rows is None:
            scale = tok.unit
            items = [(tok.holder(a), Fraction(b, scale)) for a, b in tok.ledger.bal.items()]
            rows = [h for h, _ in select_items(spec, items, q)]
            self.selections.put(key, rows)
        return self._page(link, pairs, q, len(rows), [dumps(r) for r in rows[q.offset:q.offset + q.limit]], {})

    def _events(self, link, tok, pairs):
        q = Query(SPECS["events"], pairs)
        key = (tok.address, "events", tuple(sorted(p for p in pairs if p[0].startswith("filter["))))
        hit = self.selections.get(key)
        if hit is None:
            hit = self._select_events(tok, q.filters)
            self.selections.put(key, hit)
        positions, facets = hit
        total = len(positions)
        # Both sort fields give chain order (see Ledger), ties included.
        end = min(total, q.offset + q.limit)
        if q.desc:
            page = tok.events_json([positions[total - 1 - j] for j in range(q.offset, end)])
        else:
            page = tok.events_json([positions[j] for j in range(q.offset, end)])
        return self._page(link, pairs, q, total, page, facets)

    def _select_events(self, tok, filters):
        """Positions of the matching events in chain order, and their facets.
        Time windows and transaction hashes narrow a range by binary search;
        the other filters test the compact columns."""
        L = tok.ledger
        lo, hi = 0, len(L)
        preds = []
        for field, op, v in filters:
            if field == "blockTimestamp":
                key = lambda blk: ts_ms(blk) * 1000
                if op == "gt":
                    lo = max(lo, bisect.bisect_right(L.block, v, key=key))
                elif op == "gte":
                    lo = max(lo, bisect.bisect_left(L.block, v, key=key))
                elif op == "lt":
                    hi = min(hi, bisect.bisect_left(L.block, v, key=key))
                else:
                    hi = min(hi, bisect.bisect_right(L.block, v, key=key))
            elif field == "transactionHash":
                txno = tok.txno_of(v)
                if txno is None:
                    hi = lo
                else:
                    lo = max(lo, bisect.bisect_left(L.txno, txno))
                    hi = min(hi, bisect.bisect_right(L.txno, txno))
            elif field == "eventName":
                codes = {KIND_CODE[n] for n in (v if isinstance(v, frozenset) else (v,)) if n in KIND_CODE}
                if op in ("ne", "notInArray"):
                    codes = set(range(len(KINDS))) - codes
                preds.append(lambda i, c=codes: L.kind[i] in c)
            else:
                accts = {self.world.account_index.get(a, -2) for a in (v if isinstance(v, frozenset) else (v,))}
                if field == "senderAddress":
                    preds.append(lambda i, s=accts: L.s[i] in s)
                else:
                    preds.append(lambda i, s=accts: (ACCT_A[L.kind[i]] and L.a[i] in s)
                                 or (ACCT_B[L.kind[i]] and L.b[i] in s))
        if hi < lo:
            hi = lo
        if preds:
            positions = array("i", (i for i in range(lo, hi) if all(p(i) for p in preds)))
            counts = Counter(KIND_NAMES[L.kind[i]] for i in positions)
        else:
            positions = range(lo, hi)
            if lo == 0 and hi == len(L):
                counts = {KIND_NAMES[k]: c for k, c in enumerate(L.counts) if c}
            else:
                counts = {KIND_NAMES[k]: L.kind.count(k, lo, hi) for k in range(len(KINDS))}
                counts = {k: c for k, c in counts.items() if c}
        return positions, {"eventName": facet_list(Counter(counts))}

    @staticmethod
    def _page(link, pairs, q, total, data, facets):
        """The collection envelope around `data`, the page's items as JSON texts."""
        rest = "".join("&%s=%s" % (quote(k, safe=""), quote(v, safe="")) for k, v in pairs
                       if k not in ("page[offset]", "page[limit]"))

        def href(offset):
            return "%s?page%%5Boffset%%5D=%d&page%%5Blimit%%5D=%d%s" % (link, offset, q.limit, rest)
        links = {"self": href(q.offset)}
        if q.offset + q.limit < total:
            links["next"] = href(q.offset + q.limit)
        if q.offset > 0:
            links["prev"] = href(max(0, q.offset - q.limit))
        body = '{"data":[%s],"meta":%s,"links":%s}' % (",".join(data), dumps({"total": total, "facets": facets}),
                                                        dumps(links))
        return Resp(200, body.encode(), rows=len(data))


# ---------------------------------------------------------------------------
# Faults
# ---------------------------------------------------------------------------

# When several kinds fall on the same request, the first in this order wins.
FAULT_ORDER = ("reset", "slow", "stall", "redirect", "html", "malformed", "wrongshape", "patch", "patch_meta",
               "bare_meta", "400",
               "403", "422",
               "429", "500", "502", "503", "504")
FAULT_KEYS = {"latency_ms", "every", "retry_after", "slow_ms", "max_faults", "path_prefix", "patch", "patch_meta",
              "redirect_to", "echo_key", "spare_ms", "error_message", "listing"}
HTML_PAGE = (b"<!DOCTYPE html>\n<html><head><title>502 Bad Gateway</title></head>\n"
             b"<body><h1>Bad Gateway</h1><p>The proxy could not reach the upstream server.</p></body></html>\n")


class Faults:
    def __init__(self):
        self.lock = threading.Lock()
        self.set({})

    def set(self, conf):
        if set(conf) - FAULT_KEYS:
            raise ValueError("unknown fault settings %s; allowed: %s" % (sorted(set(conf) - FAULT_KEYS),
                                                                          sorted(FAULT_KEYS)))
        every = conf.get("every", {})
        if not isinstance(every, dict) or set(every) - set(FAULT_ORDER):
            raise ValueError("every: an object whose keys are among %s" % ", ".join(FAULT_ORDER))
        new = {"latency_ms": conf.get("latency_ms", 0), "every": {k: every[k] for k in FAULT_ORDER if every.get(k)},
               "retry_after": conf.get("retry_after", 1), "slow_ms": conf.get("slow_ms", 10000),
               "path_prefix": conf.get("path_prefix", ""), "spare_ms": conf.get("spare_ms", 0),
               "max_faults": conf.get("max_faults")}
        numbers = [new["latency_ms"], new["retry_after"], new["slow_ms"], new["spare_ms"]] + list(every.values())
        for v in numbers + ([] if new["max_faults"] is None else [new["max_faults"]]):
            if not isinstance(v, int) or v < 0:
                raise ValueError("fault numbers must be non-negative integers, got %r" % (v,))
        if not isinstance(new["path_prefix"], str):
            raise ValueError("path_prefix must be a string")
        for key in ("patch", "patch_meta"):
            new[key] = conf.get(key, {})
            if not isinstance(new[key], dict) or not all(v is None or isinstance(v, str)
                                                         for v in new[key].values()):
                raise ValueError("%s: an object of FIELD: raw JSON text (or null to remove the field)" % key)
        new["redirect_to"] = conf.get("redirect_to", "")
        if not isinstance(new["redirect_to"], str):
            raise ValueError("redirect_to must be a string")
        new["echo_key"] = conf.get("echo_key", False)
        if not isinstance(new["echo_key"], bool):
            raise ValueError("echo_key must be true or false")
        new["error_message"] = conf.get("error_message")
        if new["error_message"] is not None and not isinstance(new["error_message"], str):
            raise ValueError("error_message must be a string")
        new["listing"] = Listing.check(conf.get("listing"))
        with self.lock:
            self.conf = new
            self.count = 0
            self.injected = 0
            self.faulted_at = {}     # target -> when it was last faulted (spare_ms)
            self.prune_at = 1024

    def pick(self, path, target):
        """The fault for this /api request, if any, counting it first;
        `target` is its path and query as sent."""
        with self.lock:
            if not path.startswith(self.conf["path_prefix"]):
                return None
            now = time.monotonic()
            spare = self.conf["spare_ms"] / 1000
            if spare and now - self.faulted_at.get(target, float("-inf")) < spare:
                return None
            self.count += 1
            if self.conf["max_faults"] is not None and self.injected >= self.conf["max_faults"]:
                return None
            for kind, n in self.conf["every"].items():
                if self.count % n == 0:
                    self.injected += 1
                    if spare:
                        self.spare(target, now, spare)
                    return kind
            return None

    def spare(self, target, now, spare):
        """Remember that `target` was faulted now; forget, from time to time,
        what no longer counts (the dict is rebuilt when it has doubled)."""
        self.faulted_at[target] = now
        if len(self.faulted_at) >= self.prune_at:
            self.faulted_at = {t: at for t, at in self.faulted_at.items() if now - at < spare}
            self.prune_at = max(1024, 2 * len(self.faulted_at))

    def faulted(self, kind, resp, target):
        """The response that fault `kind` puts in place of `resp`; `target` is
        the request's path and query, as sent."""
        if kind == "malformed":      # cut short, as by a connection lost mid-body
            return Resp(200, resp.body[:len(resp.body) // 2])
        if kind == "redirect":
            return Resp(302, b"Moved\n", ctype="text/plain; charset=utf-8",
                        headers=(("Location", self.conf["redirect_to"] + target),))
        if kind == "patch":
            return Resp(resp.status, patch_items(resp.body, self.conf["patch"]), rows=resp.rows)
        if kind == "patch_meta":
            return Resp(resp.status, patch_meta(resp.body, self.conf["patch_meta"]), rows=resp.rows)
        if kind == "html":
            return Resp(200, HTML_PAGE, ctype="text/html; charset=utf-8")
        if kind == "wrongshape":
            return Resp.json(200, {"items": [], "count": 0})
        if kind == "bare_meta":      # the contract allows facets {} and no total
            doc = json.loads(resp.body)
            if isinstance(doc.get("meta"), dict):
                doc["meta"] = {"facets": {}}
            return Resp.json(resp.status, doc, rows=resp.rows)
        status = int(kind)
        err = ApiError(status, {400: "Bad request.", 403: "User does not have the required role to execute this action.",
                                422: "The query does not match what this collection accepts.",
                                429: "Rate limit exceeded.", 500: "Internal server error.",
                                502: "Bad gateway.", 503: "Service unavailable.", 504: "Gateway timeout."}[status],
                       "Injected by the simulator.", "Retry later.")
        headers = (("Retry-After", str(self.conf["retry_after"])),) if status == 429 else ()
        return Resp.json(status, err.body, headers=headers)


# ---------------------------------------------------------------------------
# The mover: balances that change between the pages of a scan
# ---------------------------------------------------------------------------

MOVE_KINDS = ("reorder", "leave", "join")


class Mover:
    """Transfers that settle while a client pages through a token's holders.

    POST /_sim/mover {"token": ADDR, "kinds": [KIND, ...], "every": N,
    "times": M, "seed": S}: every Nth request (default 1) for a page of that
    token's /holders other than the first (page[offset] > 0) first commits
    one transaction of a kind drawn from "kinds" (default all), until M
    (default 0: no limit) have been made.  Kinds, each a valid
    TransferCompleted (with its CheckpointUpdated events where the token
    keeps historical balances), so /events, /holders and the replay agree:
      reorder  the holder with the most available tokens sends 3/4 of them to
               a holder of the lower half, who moves up the list
      leave    a holder of the upper half sends its whole balance to another
               holder and is no longer listed
      join     the holder with the most available tokens sends an account
               that held nothing as much as the middle holder has: a new
               holder in the middle of the list
    GET /_sim/mover: {"changes": n, "kinds": {KIND: n}, "states": [...]},
    where states are the holder sets ({account: valueExact}) the token went
    through: the one when the mover was set, then one after each change.
    {} stops it.  Each log entry says which change it triggered ("moved")."""

    KEYS = {"token", "kinds", "every", "times", "seed"}

    def __init__(self):
        self.lock = threading.Lock()
        self.conf = None
        self.count = 0
        self.changes = Counter()
        self.states = []
        self.rng = None

    def set(self, api, conf):
        if set(conf) - self.KEYS:
            raise ValueError("unknown mover settings %s; allowed: %s" % (sorted(set(conf) - self.KEYS),
                                                                         sorted(self.KEYS)))
        with self.lock:
            self.conf, self.count, self.changes, self.states = None, 0, Counter(), []
            if not conf:
                return
            kinds = conf.get("kinds", list(MOVE_KINDS))
            if not isinstance(kinds, list) or not kinds or set(kinds) - set(MOVE_KINDS):
                raise ValueError("kinds: a non-empty list of %s" % ", ".join(MOVE_KINDS))
            for name in ("every", "times", "seed"):
                v = conf.get(name, 1 if name == "every" else 0)
                if not isinstance(v, int) or v < (1 if name == "every" else 0):
                    raise ValueError("%s must be an integer of at least %d" % (name, 1 if name == "every" else 0))
            with api.lock:
                tok = api.world.tokens.get(str(conf.get("token", "")).lower())
                if tok is None:
                    raise ValueError("unknown token %s" % conf.get("token"))
                self.states.append(self._state(tok))
            self.conf = dict(conf, token=tok.address, kinds=kinds, every=conf.get("every", 1),
                             times=conf.get("times", 0))
            self.rng = random.Random("%s:mover:%d" % (tok.address, conf.get("seed", 0)))

    def report(self):
        with self.lock:
            return {"changes": sum(self.changes.values()), "kinds": dict(self.changes), "states": self.states}

    def maybe_move(self, api, path, pairs):
        """Make the next change if this request is a holders page that triggers
        one; returns its kind, or None."""
        with self.lock:
            conf = self.conf
            if conf is None or path != "/api/v2/tokens/%s/holders" % conf["token"]:
                return None
            offset = dict(pairs).get("page[offset]", "0")
            if not UINT_RE.fullmatch(offset) or int(offset) == 0:
                return None
            self.count += 1
            if self.count % conf["every"] or (conf["times"] and sum(self.changes.values()) >= conf["times"]):
                return None
            kind = self.rng.choice(conf["kinds"])
            with api.lock:
                tok = api.world.tokens[conf["token"]]
                if not self._move(tok, kind):
                    return None
                api.invalidate()
                self.states.append(self._state(tok))
            self.changes[kind] += 1
            return kind

    @staticmethod
    def _state(tok):
        return {tok.world.accounts[a]: str(b) for a, b in tok.ledger.bal.items()}

    def _move(self, tok, kind):
        """Commit one change of this kind; False when the token has no holder
        able to send."""
        L, rng = tok.ledger, self.rng
        free = lambda a: L.bal[a] - L.frz.get(a, 0)
        # by value, largest first; frozen addresses neither send nor receive
        ranked = sorted(L.bal, key=lambda a: (-L.bal[a], a))
        senders = [a for a in ranked if a not in L.afz and a not in tok.locked and free(a) > 1]
        if not senders or L.paused:
            return False
        top = max(senders, key=lambda a: (free(a), -a))
        half = len(ranked) // 2
        receivers = lambda frm, pool: [a for a in pool if a != frm and a not in L.afz] or [top]
        if kind == "leave":
            leavers = [a for a in ranked[:max(1, half)] if a in senders and not L.frz.get(a)] or [top]
            frm = rng.choice(leavers)
            to = rng.choice(receivers(frm, ranked))
            amt = free(frm)
        elif kind == "join":
            frm = top
            to = rng.choice(receivers(frm, [a for a in tok.pool if a not in L.bal]))
            amt = max(1, min(L.bal[ranked[half]], free(frm) // 2))
        else:
            frm = top
            to = rng.choice(receivers(frm, ranked[half:]))
            amt = max(1, free(frm) * 3 // 4)
        if to == frm:
            return False
        gen = Generator(tok, rng)
        gen.commit([(TRANSFER, frm, frm, to, amt)] + gen._checkpoint(frm, -amt) + gen._checkpoint(to, amt))
        return True


def patch_items(body, patch):
    """`body` with every item of its "data" patched: FIELD: raw JSON text sets
    the field to that text verbatim (so it may be a number no parser keeps
    exactly), FIELD: None removes it."""
    doc = json.loads(body)
    data = doc.get("data")
    return patch_objects(doc, data if isinstance(data, list) else [data] if isinstance(data, dict) else [], patch)


def patch_meta(body, patch):
    """`body` with its "meta" patched as patch_items patches items."""
    doc = json.loads(body)
    meta = doc.get("meta")
    return patch_objects(doc, [meta] if isinstance(meta, dict) else [], patch)


def patch_objects(doc, objects, patch):
    """The JSON text of `doc` once each of `objects` (inside it) is patched."""
    raw = {}
    for obj in objects:
        for field, text in patch.items():
            if text is None:
                obj.pop(field, None)
            else:
                obj[field] = raw.setdefault(field, "\x00patch%d\x00" % len(raw))
    out = dumps(doc)
    for field, marker in raw.items():
        out = out.replace(dumps(marker), patch[field])
    return out.encode()


def replace_error_message(resp, message):
    """An error response whose error.message is `message`."""
    try:
        doc = json.loads(resp.body)
        doc["error"]["message"] = message
    except (ValueError, KeyError, TypeError):
        return resp
    return Resp.json(resp.status, doc, headers=resp.headers)


class Listing:
    """A huge GET /tokens for the tests of unbounded work: the world's tokens,
    then "extra" made-up ones (type "synthetic-N": as many facet values), each
    listed "repeat" times in a row (duplicates to drop), ignoring filters and
    sort; "page_items" > 0 serves that many items per page whatever
    page[limit] asks (one page for the whole listing, say); "facets": true
    adds meta.facets.type over the whole listing.  Only GET /tokens changes:
    the made-up tokens have no other route."""
    KEYS = {"extra", "repeat", "page_items", "facets"}

    @staticmethod
    def check(conf):
        if conf is None:
            return None
        if not isinstance(conf, dict) or set(conf) - Listing.KEYS:
            raise ValueError("listing: an object with keys among %s" % sorted(Listing.KEYS))
        out = {"extra": conf.get("extra", 0), "repeat": conf.get("repeat", 1),
               "page_items": conf.get("page_items", 0), "facets": conf.get("facets", False)}
        if not all(isinstance(out[k], int) and out[k] >= 0 for k in ("extra", "repeat", "page_items")) \
                or out["repeat"] < 1 or not isinstance(out["facets"], bool):
            raise ValueError("listing: extra, page_items >= 0 and repeat >= 1 integers, facets a boolean")
        return out

    def __init__(self, world, conf):
        self.conf = conf
        real = [(dumps(t.item()), t.type) for t in world.tokens.values()]
        fake = (('{"id":"0x%040x","name":"Synthetic %d","symbol":"SYN%d","decimals":0,"type":"synthetic-%d",'
                 '"createdAt":"2026-01-01T00:00:00.000Z"}' % (0x5e000000 + i, i, i, i), "synthetic-%d" % i)
                for i in range(conf["extra"]))
        self.items = [text for text, _ in itertools.chain(real, fake) for _ in range(conf["repeat"])]
        self.facets = "{}"
        if conf["facets"]:
            counts = Counter(world.tokens[t].type for t in world.tokens)
            counts.update({"synthetic-%d" % i: 1 for i in range(conf["extra"])})
            self.facets = dumps({"type": facet_list(Counter({v: c * conf["repeat"] for v, c in counts.items()}))})

    def page(self, pairs):
        q = dict(pairs)
        offset = int(q.get("page[offset]", 0))
        limit = self.conf["page_items"] or int(q.get("page[limit]", 50))
        data = self.items[offset:offset + limit]
        body = '{"data":[%s],"meta":{"total":%d,"facets":%s},"links":{"self":"/v2/tokens"}}' % (
            ",".join(data), len(self.items), self.facets)
        return Resp(200, body.encode(), rows=len(data))


def echo_key(resp, key):
    """An error response whose message, hint and details quote `key`."""
    try:
        doc = json.loads(resp.body)
        err = doc["error"]
        err["message"] += " (X-Api-Key: %s)" % key
        err["fix"] = "Check the key %s." % key
        err["details"] = dict(err.get("details") or {}, apiKey=key)
    except (ValueError, KeyError, TypeError):
        return resp
    return Resp.json(resp.status, doc, headers=resp.headers)


# ---------------------------------------------------------------------------
# HTTP
# ---------------------------------------------------------------------------

def parse_pairs(query):
    """Decoded (key, value) pairs in order; '+' is a space, as in forms."""
    pairs = []
    for part in query.split("&"):
        if part:
            k, _, v = part.partition("=")
            pairs.append((unquote_plus(k), unquote_plus(v)))
    return pairs


class Sim:
    """The server's state: world, API, faults, request log."""

    def __init__(self, seed, big_events, api_key, small_tokens=0):
        self.seed, self.big_events, self.small_tokens = seed, big_events, small_tokens
        self.api = Api(World(seed, big_events, small_tokens), api_key)
        self.faults = Faults()
        self.mover = Mover()
        self.listing = None
        self.log_lock = threading.Lock()
        self.log = []
        self.seq = 0
        self.inflight = 0
        self.t0 = time.monotonic()

    def handle(self, h, method):
        split = urlsplit(h.path)
        path, pairs = unquote(split.path), parse_pairs(split.query)
        length = int(h.headers.get("Content-Length") or 0)
        body = h.rfile.read(length) if length else b""
        if path.startswith("/_sim/"):
            try:
                resp = self.control(method, path, pairs, body)
            except (ValueError, KeyError, TypeError) as e:
                resp = Resp.json(400, {"error": str(e)})
            h.respond(resp, False)
        else:
            self.serve_api(h, method, path, pairs)

    def serve_api(self, h, method, path, pairs):
        with self.log_lock:
            self.seq += 1
            self.inflight += 1
            entry = {"seq": self.seq, "method": method, "path": path, "query": {},
                     "status": 0, "rows": 0, "fault": None, "moved": None, "gzip": False, "conn": h.conn_id,
                     "inflight": self.inflight, "start_ms": round((time.monotonic() - self.t0) * 1000, 3)}
        key = h.headers.get("X-Api-Key")
        entry["auth"] = "none" if key is None else "valid" if key == self.api.api_key else "invalid"
        entry["headers"] = list(h.headers.keys())
        for k, v in pairs:
            entry["query"][k] = [entry["query"][k], v] if k in entry["query"] else v
        try:
            fault = self.faults.pick(path, h.path) if path.startswith("/api/") else None
            entry["fault"] = fault
            time.sleep(self.faults.conf["latency_ms"] / 1000)
            if fault == "reset":
                h.reset()
                return
            if fault == "slow" and not h.wait(self.faults.conf["slow_ms"] / 1000):
                return               # the client gave up: nobody to answer
            if method == "GET" and key == self.api.api_key:
                entry["moved"] = self.mover.maybe_move(self.api, path, pairs)
            resp = self.api.get(method, path, pairs, key)
            listing = self.listing
            if listing is not None and path == "/api/v2/tokens" and resp.status == 200:
                resp = listing.page(pairs)
            if fault not in (None, "slow", "stall"):
                resp = self.faults.faulted(fault, resp, h.path)
            if self.faults.conf["error_message"] is not None and resp.status >= 400:
                resp = replace_error_message(resp, self.faults.conf["error_message"])
            if self.faults.conf["echo_key"] and resp.status >= 400 and key is not None:
                resp = echo_key(resp, key)
            gz = "gzip" in (h.headers.get("Accept-Encoding") or "")
            entry.update(status=resp.status, rows=resp.rows if resp.status == 200 else 0, gzip=gz)
            if fault == "stall":
                h.respond_stalled(resp, gz, self.faults.conf["slow_ms"] / 1000)
            else:
                h.respond(resp, gz)
        finally:
            with self.log_lock:
                self.inflight -= 1
                entry["end_ms"] = round((time.monotonic() - self.t0) * 1000, 3)
                self.log.append(entry)

    # -- /_sim/ --

    def control(self, method, path, pairs, body):
        args = json.loads(body) if body.strip() else {}
        if not isinstance(args, dict):
            raise ValueError("the body must be a JSON object")
        q = dict(pairs)
        if path == "/_sim/log" and method == "GET":
            since, prefix = int(q.get("since", 0)), q.get("path_prefix", "")
            with self.log_lock:
                rows = sorted((e for e in self.log if e["seq"] > since and e["path"].startswith(prefix)),
                              key=lambda e: e["seq"])
            return Resp.json(200, {"count": len(rows)} if q.get("count") in ("1", "true") else rows)
        if path == "/_sim/log/clear" and method == "POST":
            with self.log_lock:
                self.log, self.seq = [], 0
            return Resp.json(200, {"ok": True})
        if path == "/_sim/faults":
            if method == "POST":
                self.faults.set(args)
                conf = self.faults.conf["listing"]
                with self.api.lock:
                    self.listing = Listing(self.api.world, conf) if conf else None
            return Resp.json(200, self.faults.conf)
        if path == "/_sim/mover":
            if method == "POST":
                self.mover.set(self.api, args)
            return Resp.json(200, self.mover.report())
        if path == "/_sim/health" and method == "POST":
            if args.get("status") not in SERVICE_STATUSES:
                raise ValueError("status must be one of %s" % ", ".join(SERVICE_STATUSES))
            with self.api.lock:
                self.api.world.set_indexer_status(args["status"])
                self.api.invalidate()
                return Resp.json(200, {"services": self.api.world.services()})
        if path == "/_sim/reset" and method == "POST":
            world = World(self.seed, self.big_events, self.small_tokens)
            with self.api.lock:
                self.api.world = world
                self.api.invalidate()
            self.faults.set({})
            self.mover.set(self.api, {})
            self.listing = None
            with self.log_lock:
                self.log, self.seq = [], 0
            return Resp.json(200, {"ok": True})
        if path.startswith("/_sim/truth/") and method == "GET":
            at = None
            if "at" in q:
                at = parse_instant_us(q["at"])
                if at is None:
                    raise ValueError("at: not an ISO 8601 timestamp with a time zone")
            with self.api.lock:
                tok = copy.copy(self._token(path[len("/_sim/truth/"):]))
                tok.ledger = tok.ledger.columns_copy()
            return Resp.json(200, truth(tok, at))
        if path in ("/_sim/append", "/_sim/reorg") and method == "POST":
            with self.api.lock:
                tok = self._token(args["token"])
                if path == "/_sim/append":
                    out = {"added": self.api.world.append(tok, self._count(args, "count"))}
                else:
                    out = self.api.world.reorg(tok, self._count(args, "rollback"), self._count(args, "replace"))
                self.api.invalidate()
            return Resp.json(200, out)
        return Resp.json(404, {"error": "no control route %s %s" % (method, path)})

    def _token(self, addr):
        tok = self.api.world.tokens.get(str(addr).lower())
        if tok is None:
            raise ValueError("unknown token %s" % addr)
        return tok

    @staticmethod
    def _count(args, name):
        n = args.get(name, 0)
        if not isinstance(n, int) or n < 0:
            raise ValueError("%s must be a non-negative integer" % name)
        return n


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"    # keep-alive; every response has a Content-Length
    conn_ids = itertools.count(1)

    def setup(self):
        super().setup()
        # headers and body go out in two writes: Nagle would hold the second
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.conn_id = next(self.conn_ids)

    def log_message(self, *args):
        pass

    def version_string(self):
        return "dalp_sim"

    def do_GET(self):
        self.server.sim.handle(self, "GET")

    def do_POST(self):
        self.server.sim.handle(self, "POST")

    def do_PUT(self):
        self.server.sim.handle(self, "PUT")

    def do_PATCH(self):
        self.server.sim.handle(self, "PATCH")

    def do_DELETE(self):
        self.server.sim.handle(self, "DELETE")

    def respond(self, resp, gz):
        body = resp.gzipped() if gz else resp.body
        self.send_response(resp.status)
        self.send_header("Content-Type", resp.ctype)
        self.send_header("Content-Length", str(len(body)))
        if gz:
            self.send_header("Content-Encoding", "gzip")
        for k, v in resp.headers:
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)

    def respond_stalled(self, resp, gz, seconds):
        """Headers and the first half of the body, then nothing for `seconds`
        (or until the client hangs up), then a closed connection."""
        body = resp.gzipped() if gz else resp.body
        self.send_response(resp.status)
        self.send_header("Content-Type", resp.ctype)
        self.send_header("Content-Length", str(len(body)))
        if gz:
            self.send_header("Content-Encoding", "gzip")
        self.end_headers()
        self.wfile.write(body[:len(body) // 2])
        self.wfile.flush()
        self.wait(seconds)
        self.close_connection = True

    def reset(self):
        """Close with a TCP reset, answering nothing."""
        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.close_connection = True
        self.connection.close()

    def wait(self, seconds):
        """Sleep, in small steps; False as soon as the client hangs up."""
        end = time.monotonic() + seconds
        while (left := end - time.monotonic()) > 0:
            time.sleep(min(0.02, left))
            if select.select([self.connection], [], [], 0)[0]:
                try:
                    gone = self.connection.recv(1, socket.MSG_PEEK) == b""
                except OSError:
                    gone = True
                if gone:
                    self.close_connection = True
                    return False
        return True

    def finish(self):
        try:
            super().finish()
        except OSError:              # the client, or a reset fault, closed first
            pass


class Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def handle_error(self, request, client_address):
        # clients that hang up (a cancelled query, a timeout) are normal here
        if not isinstance(sys.exc_info()[1], (ConnectionError, TimeoutError)):
            super().handle_error(request, client_address)


def main():
    ap = argparse.ArgumentParser(description="DALP v2 API simulator")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=0, help="0 picks a free port")
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--api-key", required=True)
    ap.add_argument("--big-token-events", type=int, default=0, metavar="N",
                    help="add token BIG (18 decimals) with N events")
    ap.add_argument("--small-tokens", type=int, default=0, metavar="N",
                    help="add N tokens SML001... of some 30 events and a dozen holders each")
    ap.add_argument("--pidfile")
    args = ap.parse_args()
    started = time.monotonic()
    sim = Sim(args.seed, args.big_token_events, args.api_key, args.small_tokens)
    server = Server((args.host, args.port), Handler)
    server.sim = sim
    if args.pidfile:
        with open(args.pidfile, "w") as f:
            f.write("%d\n" % os.getpid())
    # SIGTERM ends serve_forever through SystemExit, so the pidfile goes too.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    host, port = server.server_address[:2]
    print("dalp_sim: %d tokens, %d events, built in %.2fs" % (
        len(sim.api.world.tokens), sum(len(t.ledger) for t in sim.api.world.tokens.values()),
        time.monotonic() - started), file=sys.stderr, flush=True)
    print("dalp_sim ready on http://%s:%d" % (host, port), flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
        if args.pidfile:
            try:
                os.unlink(args.pidfile)
            except FileNotFoundError:
                pass


if __name__ == "__main__":
    main()
