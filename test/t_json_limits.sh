#!/usr/bin/env bash
# What one response may cost, and what a response must look like.
#
#  1. Amplification: a 65 kB gzip body that inflates to 64 MiB of [0,0,...],
#     deep nesting, many tiny objects, long keys, and a body under
#     max_response_bytes whose tree json-c's budget refuses.  With every page of
#     concurrency 8 in flight at once, each ends in a clean error and the
#     backend's peak memory stays under the bound the README documents:
#     2 x concurrency x max_response_bytes of bytes held for the pages that
#     wait for their turn, and 2 x 4 x max_response_bytes of json-c memory
#     (the page read and the next one).
#  2. Shape: items that are not objects, a "data" that is not an array, a
#     meta.total that is not a non-negative integer: a clean error naming the
#     request (and the item) in every read path, never rows of NULLs.
#  3. json-c's memory is freed on every path: 300 errors raised in the middle
#     of decoding leave the backend's resident memory where it was.
#  4. Bytes that are not UTF-8 are refused as such, wherever they are.
#  5. What json-c takes but JSON does not (NaN, raw control characters,
#     unpaired surrogates, \u0000 in a member name, text after the value, a
#     top-level string) is refused as such.
#  6. A cancel stops the parse of a long body within a second.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
# shellcheck source-path=SCRIPTDIR source=psql_session.sh
source "$(dirname "${BASH_SOURCE[0]}")/psql_session.sh"
# nothing is started through lib.sh here: this installs its clean-up
dalp_init_tmpdir

port=$((DALP_SIM_PORT + 58))
"$DALP_PYTHON" - "$port" <<'PY' &
import gzip, json, socket, sys, threading, time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit, parse_qs

port = int(sys.argv[1])
mode = {"name": "ok"}

def item(i):
    return {"id": "0x%040x" % i, "name": "Factory %d" % i, "typeId": "ATKBondFactory",
            "type": "bond", "hasTokens": True, "tokenExtensions": ["BURNABLE"]}

def page(offset, limit, total):
    items = [item(i) for i in range(offset, min(offset + limit, total))]
    return json.dumps({"data": items, "meta": {"total": total, "facets": {}}}).encode()

MIB = 1024 * 1024
# what inflates: built once, gzip'd once
zeros = b'{"data": [' + b"0," * (32 * MIB - 1) + b'0]}'
tiny = b'{"data": [' + b"{}," * (21 * MIB) + b'{}]}'
keys = b'{"data": [{' + b",".join(b'"%06d%s": 1' % (i, b"k" * 65536) for i in range(100)) + b'}]}'
deep = b'{"data": [{"id": "0x1", "name": ' + b"[" * 100000 + b"]" * 100000 + b'}]}'
gz = {name: gzip.compress(body, 6) for name, body in
      (("zeros", zeros), ("tiny", tiny), ("keys", keys), ("deep", deep))}
# under max_response_bytes, but a tree of 300 k objects: json-c's budget
# refuses it (the bodies above mostly meet the byte cap first)
plain = {"objects": b'{"data": [' + b"{}," * (300 * 1024) + b'{}]}'}
# 200 items whose last one breaks the column it is read into
late = json.loads(page(0, 200, 200))
late["data"][199]["hasTokens"] = "maybe"
late = json.dumps(late).encode()

# bytes that span a chunk boundary when sent a few at a time: UTF-8, escapes,
# surrogate pairs, long integers
split = json.dumps({"data": [dict(item(i), name="F\u00e9\u4e2d\U0001F600 \"%d\"\n" % i,
                                  supply=int("1234567890123456789012345678%02d" % i),
                                  tokenExtensions=["\u00e9", "x" * i])
                             for i in range(40)],
                    "meta": {"total": 40}}, ensure_ascii=False).encode()
split_escaped = json.dumps(json.loads(split), ensure_ascii=True).encode()

SHAPES = {
    "items": b'{"data": [0, "x", null], "meta": {"total": 3}}',
    "data_object": b'{"data": {"id": "0x1"}, "meta": {"total": 1}}',
    "total_negative": b'{"data": [{"id": "0x1", "type": "bond"}], "meta": {"total": -5}}',
    "total_fraction": b'{"data": [{"id": "0x1", "type": "bond"}], "meta": {"total": 1.5}}',
    "total_text": b'{"data": [{"id": "0x1", "type": "bond"}], "meta": {"total": "many"}}',
}

# bytes that are not UTF-8, inside a string (plain, after a backslash, at a
# 16-byte boundary) and outside one: each refused as such
BAD_UTF8 = [b"\x80", b"\xc0\x80", b"\xed\xa0\x80", b"\xf4\x90\x80\x80", b"\xe4\xb8",
            b"\xff", b"\\\xff", b"x" * 15 + b"\xc3\x28"]
def bad_utf8(k):
    if k == len(BAD_UTF8):
        return b'{"data": [{"id": "0x1", "name": "n"}\xc3\x28], "meta": {"total": 1}}'
    return b'{"data": [{"id": "0x1", "name": "F' + BAD_UTF8[k] + b'\xc3\xa9"}], "meta": {"total": 1}}'

# what json-c would take but JSON does not, each refused by the pre-scan
# (the bash side lists what each refusal says, in this order)
STRICT = [b'{"data": [{"id": "0x1", "name": NaN}]}',
          b'{"data": [{"id": "0x1", "name": Infinity}]}',
          b'{"data": [{"id": "0x1", "name": -Infinity}]}',
          b'{"data": [{"id": "0x1", "name": "a\tb"}]}',
          b'{"data": [{"id": "0x1", "name": "a\r\nb"}]}',
          b'{"data": [{"id": "0x1", "name": "\\ud800x"}]}',
          b'{"data": [{"id": "0x1", "name": "\\ud800\\u0041"}]}',
          b'{"data": [{"id": "0x1", "name": "\\udc00"}]}',
          b'{"data": [{"id": "0x1", "n\\u0000ame": "x"}]}',
          b'{"data": [{"id": "0x1", "name": "x"}]} {}',
          b'"{\\"data\\": []}"']

class H(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def send(self, body, status=200, encoding=None):
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        if encoding:
            self.send_header("Content-Encoding", encoding)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        url = urlsplit(self.path)
        q = {k: v[0] for k, v in parse_qs(url.query).items()}
        if url.path == "/_mode":
            mode["name"] = q["name"]
            return self.send(b"{}")
        offset = int(q.get("page[offset]", "0"))
        limit = int(q.get("page[limit]", "50"))
        name = mode["name"]
        gzip_ok = "gzip" in self.headers.get("Accept-Encoding", "")
        if name in gz or name in plain:
            # eight good pages, so that the window reaches concurrency 8
            if offset < 1600:
                return self.send(page(offset, limit, 10 ** 6))
            if name in plain:
                return self.send(plain[name])
            if gzip_ok:
                return self.send(gz[name], encoding="gzip")
            return self.send({"zeros": zeros, "tiny": tiny, "keys": keys, "deep": deep}[name])
        if name in SHAPES:
            body = SHAPES[name]
            if "/tokens/" in url.path:      # an item lookup
                body = body.replace(b'"data": [', b'"data": ', 1).replace(b'], "meta"', b', "meta"', 1) \
                    if name != "items" else b'{"data": 0}'
            return self.send(body)
        if name == "late":
            return self.send(late)
        if name.startswith("strict_"):
            return self.send(STRICT[int(name[7:])])
        if name.startswith("utf8_"):
            return self.send(bad_utf8(int(name[5:])))
        if name in ("whole", "whole_escaped"):
            return self.send(split if name == "whole" else split_escaped)
        if name in ("split", "split_escaped"):
            body = split if name == "split" else split_escaped
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.flush()
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            at = 0
            while at < len(body):
                n = 1 + (at * 7919) % 7
                self.wfile.write(body[at:at + n])
                self.wfile.flush()
                at += n
                time.sleep(0.0002)
            return
        if name == "slow":
            # a valid body of 3 MB, sent over 6 s
            body = json.dumps({"data": [item(i) for i in range(200)], "meta": {"total": 200},
                               "pad": "x" * (3 * MIB)}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            step = len(body) // 600
            try:
                for at in range(0, len(body), step):
                    self.wfile.write(body[at:at + step])
                    self.wfile.flush()
                    time.sleep(0.01)
            except OSError:
                pass
            return
        return self.send(page(offset, limit, 1000))

    def log_message(self, *args):
        pass

class Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):
        pass                # the client hangs up on refused bodies

Server(("127.0.0.1", port), H).serve_forever()
PY
server_pid=$!
dalp_atexit kill "$server_pid"
for ((i = 0; i < 300; i++)); do
  curl -sf -o /dev/null "http://127.0.0.1:$port/_mode?name=ok" && break
  sleep 0.1
done
mode() { curl -sf -o /dev/null "http://127.0.0.1:$port/_mode?name=$1"; }

dalp_psql -q <<SQL
SET client_min_messages = warning;
DROP SERVER IF EXISTS lim CASCADE;
CREATE EXTENSION IF NOT EXISTS dalp_fdw;
CREATE SERVER lim FOREIGN DATA WRAPPER dalp_fdw
  OPTIONS (base_url 'http://127.0.0.1:$port', max_retries '0', concurrency '8',
           rate_limit_per_minute '1000000');
CREATE USER MAPPING FOR CURRENT_USER SERVER lim OPTIONS (api_key '$DALP_API_KEY');
CREATE FOREIGN TABLE lim_factories (address text, name text, has_tokens bool, raw jsonb)
  SERVER lim OPTIONS (resource 'factories');
CREATE FOREIGN TABLE lim_tokens (address text, symbol text, type text, raw jsonb)
  SERVER lim OPTIONS (resource 'tokens');
SQL
max_bytes=$(dalp_psql -tAc "SELECT option_value FROM pg_options_to_table((SELECT srvoptions FROM pg_foreign_server WHERE srvname = 'lim')) WHERE option_name = 'max_response_bytes'")
max_bytes=${max_bytes:-$((4 * 1024 * 1024))}
bound_kb=$(((2 * 8 + 2 * 4) * max_bytes / 1024))

status_kb() { awk -v k="$2:" '$1 == k {print $2}' "/proc/$1/status"; }

# 1. Amplification, each shape in a fresh backend.
report=()
for shape in zeros tiny keys deep objects; do
  case $shape in
    zeros | tiny) want='too large to parse|exceeds max_response_bytes' ;;
    objects) want='too large to parse' ;;
    keys) want='exceeds max_response_bytes|too large to parse' ;;
    deep) want='nested too deep' ;;
  esac
  sess_open
  mode ok
  sess_run "SELECT count(raw) FROM (SELECT raw FROM lim_factories LIMIT 1000) s;"
  base=$(status_kb "$SESS_BACKEND" VmHWM)
  mode "$shape"
  sess_run "SELECT count(raw), count(name) FROM lim_factories;" 120
  peak=$(status_kb "$SESS_BACKEND" VmHWM)
  grep -qE "$want" <<<"$SESS_OUT" ||
    dalp_die "$shape: expected an error saying \"$want\", got: $SESS_OUT"
  grep -qE "ERROR: .*GET /api/v2/system/factories" <<<"$SESS_OUT" ||
    dalp_die "$shape: the error does not name the request: $SESS_OUT"
  growth=$((peak - base))
  ((growth < bound_kb)) ||
    dalp_die "$shape: peak memory grew by $growth kB, over the documented $bound_kb kB"
  report+=("$shape +$((growth / 1024)) MB")
  sess_run "SELECT 1;"
  [[ $SESS_OUT == 1 ]] || dalp_die "$shape: the session did not go on: $SESS_OUT"
  sess_close
done

# 2. Bodies of the wrong shape, in every read path.
queries=(
  "SELECT address FROM lim_tokens"
  "SELECT address FROM lim_tokens LIMIT 1"
  "SELECT count(*) FROM lim_tokens"
  "SELECT type, count(*) FROM lim_tokens GROUP BY type"
  "SELECT symbol FROM lim_tokens WHERE address = '0x0000000000000000000000000000000000000001'"
  "SELECT s.address FROM (VALUES ('BOND')) v(sym) CROSS JOIN LATERAL (SELECT address FROM lim_tokens t WHERE t.symbol = v.sym OFFSET 0) s"
)
for shape in items data_object total_negative total_fraction total_text; do
  mode "$shape"
  for q in "${queries[@]}"; do
    out=$(dalp_psql -X -tA -v ON_ERROR_STOP=0 -c "$q" 2>&1 || true)
    case $shape in
      items) want='item [0-9]+ of "data" is a JSON (int|string|null), not an object|"data" is not an object' ;;
      data_object) want='"data" is not an array|"data" is not an object' ;;
      *) want='has an invalid meta.total' ;;
    esac
    # a lookup answered with a well-formed object is a row, not an error
    if [[ $shape != items && $q == *"WHERE address"* ]]; then
      grep -q ERROR <<<"$out" && dalp_die "$shape: $q: unexpected error: $out"
      continue
    fi
    grep -qE "ERROR: .*GET /api/v2/tokens[^ ]*(:| has an invalid) " <<<"$out" && grep -qE "$want" <<<"$out" ||
      dalp_die "$shape: $q: expected an error naming the request and saying \"$want\", got: $out"
  done
done

# 3. 300 errors in the middle of decoding (the 200th item of a page of 200
#    has a bad value, so json-c's tree for the page is built) free json-c's
#    memory each time.
mode late
sess_open
failing() { local i sql=; for ((i = 0; i < $1; i++)); do sql+="SELECT count(has_tokens) FROM lim_factories;"$'\n'; done; echo "$sql"; }
sess_run "$(failing 20)" 120
rss_before=$(status_kb "$SESS_BACKEND" VmRSS)
sess_run "$(failing 300)" 300
rss_after=$(status_kb "$SESS_BACKEND" VmRSS)
errors=$(grep -c 'expected true or false' <<<"$SESS_OUT" || true)
((errors == 300)) || dalp_die "expected 300 errors, got $errors: $(tail -n 3 <<<"$SESS_OUT")"
rss_growth=$((rss_after - rss_before))
((rss_growth < 8192)) ||
  dalp_die "300 errors mid-decoding grew the backend's resident memory by $rss_growth kB"
sess_close

# 4. Bodies that arrive a few bytes at a time parse as when they arrive
#    whole: characters, escapes and numbers cut between chunks.
split_q="SELECT string_agg(name || ' ' || (raw->'supply')::text || ' ' || (raw->'tokenExtensions')::text, ';' ORDER BY address) FROM lim_factories"
for variant in "" _escaped; do
  mode "whole$variant"
  whole=$(dalp_psql -tAc "$split_q")
  mode "split$variant"
  pieces=$(dalp_psql -tAc "$split_q")
  [[ -n $whole && $whole == "$pieces" ]] ||
    dalp_die "a body sent in pieces$variant parsed differently: ${pieces:0:300} vs ${whole:0:300}"
  [[ $whole == *"1234567890123456789012345678"* && $whole == *"é中😀"* ]] ||
    dalp_die "unexpected rows from the split body: ${whole:0:300}"
done

# 5. Bytes that are not UTF-8 are refused where they are, in a string or
#    outside one (the pre-scan checks UTF-8 only where a byte of 0x80 or more
#    appears).
for k in 0 1 2 3 4 5 6 7 8; do
  mode "utf8_$k"
  out=$(dalp_psql -X -tA -v ON_ERROR_STOP=0 -c "SELECT name FROM lim_factories" 2>&1 || true)
  grep -qE 'ERROR: .*not valid JSON' <<<"$out" && grep -q 'bytes that are not valid UTF-8 at byte' <<<"$out" ||
    dalp_die "body utf8_$k: expected an error about bytes that are not UTF-8, got: $out"
done

# 6. What json-c would take but JSON does not is refused, saying what.
strict_refusals=("a character that starts no JSON value" "a character that starts no JSON value"
  "a character that starts no JSON value" "a control character inside a string"
  "a control character inside a string" "a \\u escape of an unpaired surrogate"
  "a \\u escape of an unpaired surrogate" "a \\u escape of an unpaired surrogate"
  "a member name holding \\u0000" "text after the end of the JSON value"
  "a character that starts no JSON object")
for k in "${!strict_refusals[@]}"; do
  mode "strict_$k"
  out=$(dalp_psql -X -tA -v ON_ERROR_STOP=0 -c "SELECT name FROM lim_factories" 2>&1 || true)
  grep -qE 'ERROR: .*not valid JSON' <<<"$out" && grep -qF "has ${strict_refusals[k]} at byte" <<<"$out" ||
    dalp_die "body strict_$k: expected an error saying \"${strict_refusals[k]}\", got: $out"
done

# 7. A cancel lands while a long body is parsed as it arrives.
mode slow
sess_open
sess_send "SELECT count(name) FROM lim_factories;"
sleep 1.5
t0=${EPOCHREALTIME/./}
dalp_psql -tAc "SELECT pg_cancel_backend($SESS_BACKEND)" >/dev/null
sess_wait 30
cancel_ms=$(((${EPOCHREALTIME/./} - t0) / 1000))
grep -q 'canceling statement due to user request' <<<"$SESS_OUT" ||
  dalp_die "the cancel did not end the scan: $SESS_OUT"
((cancel_ms < 1000)) || dalp_die "the cancel took $cancel_ms ms"
sess_close

dalp_psql -q -c "DROP SERVER lim CASCADE"
echo "ok: bodies in pieces parse as whole ones; peak memory over a warm backend (bound $((bound_kb / 1024)) MB): ${report[*]}; wrong shapes refused in 6 read paths; 9 bodies that are not UTF-8 and ${#strict_refusals[@]} that JSON refuses refused; 300 errors mid-decoding: RSS ${rss_before} -> ${rss_after} kB; cancel in ${cancel_ms} ms"
