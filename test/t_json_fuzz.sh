#!/usr/bin/env bash
# Responses are parsed by json-c behind json.c's pre-scan: feed them mutated
# response bodies (truncations, flipped and inserted bytes, invalid UTF-8,
# bad escapes, deep nesting, huge numbers) and check that every one gives
# rows or a clean ERROR: the backend never crashes and the session goes on.
# DALP_FUZZ_ROUNDS bodies (default 600; a bench-style run takes 5000 or
# more).
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

# this run's own files: DALP_TMPDIR is empty until made, and another run of
# this test on the machine must not rewrite the script psql is reading
dalp_init_tmpdir
port=$((DALP_SIM_PORT + 23))
rounds=${DALP_FUZZ_ROUNDS:-600}
"$DALP_PYTHON" - "$port" "$rounds" <<'PY' &
import json, random, socket, sys, time
from http.server import BaseHTTPRequestHandler, HTTPServer

port, rounds = int(sys.argv[1]), int(sys.argv[2])
rng = random.Random(7)
items = [{"id": "0x%040x" % i, "name": "Factory \u00e9\u4e2d %d" % i, "typeId": "ATKBondFactory",
          "hasTokens": i % 2 == 0, "tokenExtensions": ["BURNABLE", "CAPPED"],
          "nested": {"a": [1, 2.5e3, -7, True, None, "x\"y\\z\n"], "b": {"c": "\ud83d\ude00"}}}
         for i in range(5)]
doc = {"data": items, "meta": {"total": 5, "facets": {}}, "links": {"self": "/v2/x"}}
# escaped (\\u00e9) and raw UTF-8 spellings of the same document
bases = [json.dumps(doc).encode(), json.dumps(json.loads(json.dumps(doc)), ensure_ascii=False).encode()]
noise = [b"{", b"}", b"[", b"]", b'"', b",", b":", b"\\", b"\\u", b"\\ud800", b"\\udc00", b"\\u0000",
         b"\\u00zz", b"\x00", b"\xff", b"\xc3", b"\xe4\xb8", b"\xed\xa0\x80", b"\xc0\x80", b"\t",
         b"1e99999", b"-", b"0.", b"01", b"-0", b"1.", b"NaN", b"Infinity", b"-Infinity", b"tru", b"nul",
         b"12345678901234567890123", b"9" * 400, b" " * 50]

def mutate(i):
    base = bases[(i // 6) % 2]
    b = bytearray(base)
    kind = i % 6
    if kind == 0:
        return bytes(b[:rng.randrange(len(b))])
    if kind == 1:
        for _ in range(rng.randrange(1, 4)):
            b[rng.randrange(len(b))] = rng.randrange(256)
        return bytes(b)
    if kind == 2:
        at = rng.randrange(len(b))
        return bytes(b[:at] + rng.choice(noise) + b[at:])
    if kind == 3:
        depth = rng.choice([10, 1000, 100000])
        return b'{"data": [{"id": "0x1", "name": ' + b"[" * depth + b"]" * depth + b"}]}"
    if kind == 4:
        return b'{"data": [{"id": "0x1", "hasTokens": ' + rng.choice(noise) + b', "name": "n"}]}'
    a, z = sorted(rng.randrange(len(b)) for _ in range(2))
    return bytes(b[:a] + b[a:z] * 2 + b[z:])

bodies = [mutate(i) for i in range(rounds)]

class H(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    n = 0
    def do_GET(self):
        body = bodies[H.n % len(bodies)]
        H.n += 1
        self.send_response(200)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if H.n % 3:
            self.wfile.write(body)
            return
        # a few bytes at a time: characters, escapes and numbers cut
        # between the chunks the parser is fed
        self.wfile.flush()
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        at = 0
        while at < len(body):
            n = rng.randrange(1, 12)
            self.wfile.write(body[at:at + n])
            self.wfile.flush()
            at += n
            time.sleep(0.0001)
    def log_message(self, *args):
        pass

HTTPServer(("127.0.0.1", port), H).serve_forever()
PY
server_pid=$!
stop_server() { kill "$server_pid" 2>/dev/null || true; }
dalp_atexit stop_server
# the bodies are made before the server listens
for ((i = 0; i < 600; i++)); do
  curl -s -o /dev/null "http://127.0.0.1:$port/" && break
  sleep 0.1
done

dalp_psql -q <<SQL
DROP SERVER IF EXISTS fuzz CASCADE;
CREATE EXTENSION IF NOT EXISTS dalp_fdw;
CREATE SERVER fuzz FOREIGN DATA WRAPPER dalp_fdw
  OPTIONS (base_url 'http://127.0.0.1:$port', max_retries '0', rate_limit_per_minute '1000000');
CREATE USER MAPPING FOR CURRENT_USER SERVER fuzz OPTIONS (api_key '$DALP_API_KEY');
CREATE FOREIGN TABLE fuzz_factories (address text, name text, has_tokens bool,
  token_extensions text[], raw jsonb, nested jsonb OPTIONS (json_path 'nested'))
  SERVER fuzz OPTIONS (resource 'factories');
SQL

script=$DALP_TMPDIR/fuzz.sql
{
  echo "SELECT pg_backend_pid() AS start_pid \\gset"
  for ((i = 0; i < rounds; i++)); do
    echo "SELECT count(*), max(raw::text), max(nested::text), max(name) FROM fuzz_factories;"
  done
  echo "SELECT pg_backend_pid() = :start_pid AS same_backend \\gset"
  echo "\\echo same_backend=:same_backend"
} >"$script"
out=$("$DALP_PGBIN/psql" -X -q -v ON_ERROR_STOP=0 -f "$script" 2>&1 || true)
dalp_psql -q -c "DROP SERVER fuzz CASCADE"

errors=$(grep -c '^psql:.*ERROR:' <<<"$out" || true)
grep -q 'same_backend=t' <<<"$out" ||
  dalp_die "the backend did not survive the mutated bodies: $(grep -m3 -E 'closed|terminat|FATAL|PANIC' <<<"$out")" \
    "(the last lines psql printed: $(tail -n 3 <<<"$out"))"
if grep -qE 'terminated by signal|PANIC' "$DALP_PGLOG"; then
  dalp_die "the server log shows a crash: $(grep -m3 -E 'terminated by signal|PANIC' "$DALP_PGLOG")"
fi
# errors that point at a bug rather than at the bad body
bad_signs='out of memory|invalid memory alloc|cache lookup failed|unrecognized|unexpected node|internal error|TRAP'
if grep -E "^psql:.*ERROR:.*($bad_signs)" <<<"$out" >/dev/null; then
  dalp_die "errors that point at a bug: $(grep -m5 -E "^psql:.*ERROR:.*($bad_signs)" <<<"$out")"
fi
# every body was answered in full: a transfer that failed means the server died
if grep -q 'could not complete DALP request' <<<"$out"; then
  dalp_die "requests failed in transport, not in decoding: $(grep -m3 'could not complete' <<<"$out")"
fi
((errors < rounds * 95 / 100)) || dalp_die "only $((rounds - errors)) of $rounds bodies gave rows"
kinds=$(grep -o 'ERROR:  .*' <<<"$out" | sed -E 's/ERROR:  //; s/(GET|for|after|at) .*//; s/"[^"]*"/…/g' |
  sort | uniq -c | sort -rn | awk '{$1=$1; print}' | paste -sd ';' -)
echo "ok: $rounds mutated bodies: $errors clean errors ($kinds), $((rounds - errors)) answered, the backend survived every one"
