#!/usr/bin/env bash
# Ensure the tools `make bench` and `make bench-curves` need beyond the build are present:
#   nats-server (Debian package `nats-server`): the NATS core comparator of
#   `loadgen nats-fanout`, spawned on 127.0.0.1 next to Missive's fan-out run.
#
# Idempotent and silent when everything is there. Missing Debian packages are installed
# when running as root (one `apt-get update`, then `apt-get install -y`); otherwise the
# exact command to run is printed and the script exits 1. (Same policy as
# scripts/bootstrap.sh, whose modes cover the build; this one covers the benchmarks.)
set -euo pipefail

have() { command -v "$1" >/dev/null 2>&1; }

missing=()
# Debian puts nats-server in /usr/sbin, which a non-root PATH may lack; loadgen looks there too.
if ! have nats-server && [ ! -x /usr/sbin/nats-server ]; then
    missing+=(nats-server)
fi

[ "${#missing[@]}" -eq 0 ] && exit 0

if [ "$(id -u)" -eq 0 ] && have apt-get; then
    echo "bench-deps: installing ${missing[*]}" >&2
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
    if ! have nats-server && [ ! -x /usr/sbin/nats-server ]; then
        echo "bench-deps: nats-server still missing after apt-get install" >&2
        exit 1
    fi
    exit 0
fi
echo "bench-deps: missing ${missing[*]}; install with: sudo apt-get install -y ${missing[*]}" >&2
exit 1
