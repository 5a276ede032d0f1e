#!/usr/bin/env bash
# Autobahn|Testsuite (wstest, Python 2.7 from PyPI) against the broker's WebSocket
# framing. Not part of `make test` (it takes minutes and needs Python 2.7).
#
#   tests/autobahn/run.sh            # builds the broker, runs every case, fails on any FAILED
#
# The broker runs with `web.ws_echo = true`, which serves a plain echo endpoint at /echo on
# the ws listener: the same WebSocket code path as /ws (spec/PROTOCOL.md 2.2.1), but messages
# are echoed instead of decoded as protocol frames, which is what the fuzzing client expects.
# max_frame_size is raised to 64 MiB so the 9.x cases (messages up to 16 MiB) fit.
# Compression cases (12.x, 13.x) report UNIMPLEMENTED: no extension is negotiated ([W-1]).
# Python 2.7: from $PYTHON2 if set, else `python2.7` on PATH, else pyenv's 2.7.x.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/missive/target}"
work="${AUTOBAHN_DIR:-$repo/target-autobahn}"
mkdir -p "$work"

py="${PYTHON2:-}"
if [ -z "$py" ]; then
    if command -v python2.7 >/dev/null 2>&1 && python2.7 -c 'import sys' 2>/dev/null; then
        py=python2.7
    elif command -v pyenv >/dev/null 2>&1 && v=$(pyenv versions --bare | grep '^2\.7' | tail -1) && [ -n "$v" ]; then
        py="$(pyenv root)/versions/$v/bin/python2.7"
    else
        echo "autobahn: Python 2.7 not found (set PYTHON2)" >&2
        exit 1
    fi
fi
venv="$work/venv"
if [ ! -x "$venv/bin/wstest" ]; then
    "$py" -m pip install --quiet 'virtualenv<20.22' || true
    "$py" -m virtualenv -q "$venv"
    # Pins known to install and run under 2.7.
    "$venv/bin/pip" install --quiet 'autobahntestsuite==0.8.2' 'twisted==20.3.0' \
        'pyOpenSSL<22' 'cryptography<3.4' 'service_identity<21' 'attrs<22' 'six' 'unittest2'
fi

(cd "$repo" && cargo build --release -p missive-broker --bin missive)
cat > "$work/missive.toml" <<TOML
[limits]
max_frame_size = 67108864
max_content_bytes = 65536
write_queue_bytes = 134217728
handshake_timeout_secs = 600
idle_timeout_secs = 900
ping_interval_secs = 30
[web]
ws_echo = true
TOML
rm -rf "$work/data"
"$CARGO_TARGET_DIR/release/missive" --config "$work/missive.toml" --data "$work/data" \
    --secret autobahn-secret-0123456789 --workers 2 --tcp 127.0.0.1:0 --ws 127.0.0.1:0 \
    > "$work/broker.out" 2> "$work/broker.err" &
pid=$!
trap 'kill $pid 2>/dev/null || true' EXIT
for _ in $(seq 100); do grep -q '^missive listening' "$work/broker.out" && break; sleep 0.2; done
ws=$(sed -n 's/^missive listening .*ws=\([^ ]*\).*/\1/p' "$work/broker.out")
[ -n "$ws" ] || { echo "autobahn: broker did not start" >&2; cat "$work/broker.err" >&2; exit 1; }

cat > "$work/fuzzingclient.json" <<JSON
{
  "outdir": "$work/reports",
  "servers": [{ "agent": "missive", "url": "ws://$ws/echo" }],
  "cases": ["*"],
  "exclude-cases": [],
  "exclude-agent-cases": {}
}
JSON
(cd "$work" && "$venv/bin/wstest" -m fuzzingclient -s fuzzingclient.json)

# Summarize: every case's behavior from the JSON index.
"$py" - "$work/reports/index.json" <<'PY'
import json, sys, collections
idx = json.load(open(sys.argv[1]))["missive"]
count = collections.Counter(v["behavior"] for v in idx.values())
print("autobahn: " + ", ".join("%s=%d" % kv for kv in sorted(count.items())))
bad = sorted(k for k, v in idx.items() if v["behavior"] == "FAILED")
if bad:
    print("autobahn: FAILED cases: " + " ".join(bad))
    sys.exit(1)
PY
