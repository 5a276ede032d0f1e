#!/usr/bin/env bash
# Fuzz the admin REST API with schemathesis against its own OpenAPI document.
#
#   scripts/api-fuzz.sh            # uses $CARGO_TARGET_DIR/release/missive and missivectl
#
# Starts the built broker on a temporary data directory (TCP and API on port 0, buffered
# durability), reads its `missive listening ... api=ADDR` line, mints an admin token with
# missivectl, and runs `schemathesis run http://ADDR/openapi.json` with the checks
# not_a_server_error, status_code_conformance and response_schema_conformance: no 5xx, no
# undocumented status, no response that violates its schema, on every documented endpoint.
# Bounded: API_FUZZ_EXAMPLES test cases per operation (default 30), 10 s per request, and
# API_FUZZ_MAX_TIME seconds overall (default 300; a hard `timeout`, a failure when hit). The broker is stopped on exit, whatever happens.
# schemathesis comes from PyPI into $HOME/.cache/missive/venv (scripts/bootstrap.sh api).
set -euo pipefail

target_dir="${CARGO_TARGET_DIR:-$HOME/.cache/missive/target}"
missive="$target_dir/release/missive"
missivectl="$target_dir/release/missivectl"
st="${SCHEMATHESIS:-$HOME/.cache/missive/venv/bin/schemathesis}"
examples="${API_FUZZ_EXAMPLES:-30}"
max_time="${API_FUZZ_MAX_TIME:-600}"

for bin in "$missive" "$missivectl"; do
    [ -x "$bin" ] || { echo "api-fuzz: $bin not built (cargo build --release --workspace --bins)" >&2; exit 1; }
done
[ -x "$st" ] || { echo "api-fuzz: schemathesis not found at $st (run scripts/bootstrap.sh api)" >&2; exit 1; }

tmp="$(mktemp -d)"
pid=""
cleanup() {
    if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
        kill "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    fi
    rm -rf "$tmp"
}
trap cleanup EXIT

secret="$(head -c 32 /dev/urandom | od -An -vtx1 | tr -d ' \n')"
# A generous API rate limit: the fuzzer's requests should reach the handlers (429 is still
# documented on every route and checked by the black-box tests).
cat >"$tmp/missive.toml" <<TOML
[api]
max_requests_per_sec = 100000
TOML
MISSIVE_SECRET="$secret" "$missive" --config "$tmp/missive.toml" --data "$tmp/data" \
    --durability buffered --tcp 127.0.0.1:0 --api 127.0.0.1:0 >"$tmp/stdout" 2>"$tmp/broker.log" &
pid=$!

addr=""
for _ in $(seq 1 300); do
    addr="$(sed -n 's/^missive listening .*api=\([^ ]*\).*/\1/p' "$tmp/stdout" | head -n1)"
    [ -n "$addr" ] && break
    kill -0 "$pid" 2>/dev/null || { echo "api-fuzz: the broker exited:" >&2; cat "$tmp/broker.log" >&2; exit 1; }
    sleep 0.1
done
[ -n "$addr" ] || { echo "api-fuzz: no 'missive listening ... api=' line within 30 s" >&2; exit 1; }

token="$("$missivectl" token --secret "$secret" --user api-fuzz --role admin --ttl 3600)"
echo "api-fuzz: broker api=$addr; schemathesis $("$st" --version | awk '{print $NF}'), $examples examples per operation"

status=0
# One worker: with several threads, CPython 3.11's ast.parse (hypothesis describes its
# lambdas with it) can fail with "AST constructor recursion depth mismatch" (CPython
# gh-106905, a race in 3.11 fixed in 3.12); that is a crash of the tool, not of the API.
# From the temp dir: schemathesis keeps a `.schemathesis/` cache in its working directory.
cd "$tmp"
timeout "$max_time" "$st" run "http://$addr/openapi.json" \
    -H "Authorization: Bearer $token" \
    --checks not_a_server_error,status_code_conformance,response_schema_conformance \
    --max-examples "$examples" \
    --request-timeout 10 \
    --workers 1 \
    --seed "${API_FUZZ_SEED:-1}" \
    --no-color || status=$?
if [ "$status" -ne 0 ]; then
    echo "api-fuzz: schemathesis failed ($status); broker log tail:" >&2
    tail -n 50 "$tmp/broker.log" >&2
fi
exit "$status"
