#!/usr/bin/env bash
# Ensure the system prerequisites of one use of Missive are present.
#
#   scripts/bootstrap.sh [build]    # build: cargo, libclang (RocksDB's bindgen), g++, make
#   scripts/bootstrap.sh run        # build + nodejs/npm (the chat page): what `make run` needs
#   scripts/bootstrap.sh lint       # build + rustfmt and clippy
#   scripts/bootstrap.sh browser    # run + chromium (browser end-to-end tests)
#   scripts/bootstrap.sh netns      # build + iproute2 (`ip netns`: the weak-network test)
#   scripts/bootstrap.sh api        # build + python3 venv + schemathesis (PyPI) in
#                                   # $HOME/.cache/missive/venv: the API fuzz of `make test`
#   scripts/bootstrap.sh test       # everything `make test` needs (lint + browser + netns + api)
#   scripts/bootstrap.sh --check-libclang   # only report: exit 0 if clang-sys would find
#                                           # libclang (LIBCLANG_SEARCH_DIRS overrides dirs)
#
# Idempotent and silent when everything is already there. Missing Debian packages are
# installed when running as root (one `apt-get update`, then `apt-get install -y`);
# otherwise the exact command to run is printed and the script exits 1.
set -euo pipefail

usage() { sed -n '2,16s/^# \{0,1\}//p' "$0"; }

want_node=0
want_browser=0
want_lint=0
want_netns=0
want_api=0
check_libclang=0
for arg in "$@"; do
    case "$arg" in
        build) ;;
        run) want_node=1 ;;
        lint) want_lint=1 ;;
        browser) want_node=1; want_browser=1 ;;
        netns) want_netns=1 ;;
        api) want_api=1 ;;
        test) want_node=1; want_browser=1; want_lint=1; want_netns=1; want_api=1 ;;
        --check-libclang) check_libclang=1 ;;
        -h | --help) usage; exit 0 ;;
        *) echo "bootstrap: unknown argument '$arg'" >&2; usage >&2; exit 2 ;;
    esac
done

have() { command -v "$1" >/dev/null 2>&1; }

# --- schemathesis (PyPI) in a venv of our own: no system pip, no --user site. -------
venv="$HOME/.cache/missive/venv"
have_python_venv() { have python3 && python3 -c 'import venv, ensurepip' >/dev/null 2>&1; }
ensure_schemathesis() {
    [ "$want_api" = 1 ] || return 0
    [ -x "$venv/bin/schemathesis" ] && return 0
    echo "bootstrap: installing schemathesis into $venv"
    rm -rf "$venv"
    python3 -m venv "$venv"
    "$venv/bin/pip" install -q --disable-pip-version-check 'schemathesis>=4,<5'
    [ -x "$venv/bin/schemathesis" ] || { echo "bootstrap: schemathesis still missing in $venv" >&2; exit 1; }
}

# --- Rust toolchain: not an apt package; rustup owns it. ---------------------------
if [ "$check_libclang" = 0 ] && ! have cargo && [ -x "$HOME/.cargo/bin/cargo" ]; then
    export PATH="$HOME/.cargo/bin:$PATH"
    echo "bootstrap: cargo found in ~/.cargo/bin but not on PATH; add it: . \"\$HOME/.cargo/env\"" >&2
fi
if [ "$check_libclang" = 0 ] && ! have cargo; then
    cat >&2 <<'MSG'
bootstrap: cargo not found. Install the stable Rust toolchain with rustup:
    curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs | sh -s -- -y --profile minimal -c rustfmt,clippy
    . "$HOME/.cargo/env"
MSG
    exit 1
fi
# `make lint` (and so `make test`) needs rustfmt and clippy; running does not.
for comp in fmt clippy; do
    { [ "$check_libclang" = 1 ] || [ "$want_lint" = 0 ]; } && break
    if ! cargo "$comp" --version >/dev/null 2>&1; then
        name=$([ "$comp" = fmt ] && echo rustfmt || echo clippy)
        echo "bootstrap: cargo $comp not found; install it with: rustup component add $name" >&2
        exit 1
    fi
done

# --- Debian packages ----------------------------------------------------------------
# libclang: librocksdb-sys runs bindgen at build time (clang-sys loads libclang.so).
# clang-sys loads the C API library: libclang.so, libclang-N.so or libclang.so.N (never the
# C++ library libclang-cpp.so.N, which a plain `libclang*.so*` glob would also match).
# LIBCLANG_SEARCH_DIRS overrides the directories searched (tests point it at a fake tree).
# Is this file name the C API library? libclang.so, libclang.so.N, libclang-N.so, libclang-N.so.M.
is_libclang_c_name() {
    case "$1" in
        libclang-cpp*) return 1 ;;
        libclang.so | libclang.so.* | libclang-*.so | libclang-*.so.*) return 0 ;;
        *) return 1 ;;
    esac
}
libclang_in_dir() {
    local d=$1 f
    for f in "$d"/libclang.so "$d"/libclang.so.* "$d"/libclang-*.so "$d"/libclang-*.so.*; do
        [ -e "$f" ] && is_libclang_c_name "${f##*/}" && return 0
    done
    return 1
}
have_libclang() {
    local d dirs
    # clang-sys honours LIBCLANG_PATH (a directory or the library file itself).
    [ -n "${LIBCLANG_PATH:-}" ] && [ -f "$LIBCLANG_PATH" ] && is_libclang_c_name "${LIBCLANG_PATH##*/}" && return 0
    dirs=${LIBCLANG_SEARCH_DIRS:-"${LIBCLANG_PATH:-} $(echo /usr/lib/llvm-*/lib) /usr/lib/x86_64-linux-gnu /usr/lib/aarch64-linux-gnu /usr/lib64 /usr/lib /usr/local/lib"}
    for d in $dirs; do
        [ -d "$d" ] && libclang_in_dir "$d" && return 0
    done
    # Without an override, Debian's package is the last word (it may install elsewhere).
    if [ -z "${LIBCLANG_SEARCH_DIRS:-}" ] && command -v dpkg-query >/dev/null 2>&1; then
        dpkg-query -W -f='${Status}\n' 'libclang1-*' 'libclang1' 2>/dev/null | grep -q 'install ok installed' && return 0
    fi
    return 1
}

# `scripts/bootstrap.sh --check-libclang`: exit 0 if libclang is found, 1 if not (tests).
if [ "$check_libclang" = 1 ]; then
    have_libclang
    exit $?
fi

missing=()
have_libclang || missing+=(libclang-dev)
have g++ || missing+=(g++)
have make || missing+=(make)
if [ "$want_node" = 1 ]; then
    have node || missing+=(nodejs)
    have npm || missing+=(npm)
fi
if [ "$want_browser" = 1 ]; then
    have chromium || [ -x /usr/bin/chromium ] || missing+=(chromium)
fi

if [ "$want_netns" = 1 ]; then
    have ip || [ -x /usr/sbin/ip ] || [ -x /sbin/ip ] || missing+=(iproute2)
fi
if [ "$want_api" = 1 ] && ! have_python_venv; then
    missing+=(python3 python3-venv)
fi

[ "${#missing[@]}" -eq 0 ] && { ensure_schemathesis; exit 0; }

if [ "$(id -u)" -ne 0 ]; then
    echo "bootstrap: missing system packages: ${missing[*]}" >&2
    echo "bootstrap: install them with:" >&2
    echo "    sudo apt-get update && sudo apt-get install -y ${missing[*]}" >&2
    exit 1
fi
if ! have apt-get; then
    echo "bootstrap: missing system packages (Debian names): ${missing[*]}; no apt-get here, install them by hand" >&2
    exit 1
fi

echo "bootstrap: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq "${missing[@]}" </dev/null

# Re-check: a package that installed but still is not usable should fail loudly here,
# not twenty minutes into a RocksDB build.
have_libclang || { echo "bootstrap: libclang still not found after install" >&2; exit 1; }
for cmd in g++ make; do have "$cmd" || { echo "bootstrap: $cmd still missing" >&2; exit 1; }; done
if [ "$want_node" = 1 ]; then
    for cmd in node npm; do have "$cmd" || { echo "bootstrap: $cmd still missing" >&2; exit 1; }; done
fi
if [ "$want_browser" = 1 ]; then
    have chromium || [ -x /usr/bin/chromium ] || { echo "bootstrap: chromium still missing" >&2; exit 1; }
fi
if [ "$want_netns" = 1 ]; then
    have ip || [ -x /usr/sbin/ip ] || [ -x /sbin/ip ] || { echo "bootstrap: ip (iproute2) still missing" >&2; exit 1; }
fi
if [ "$want_api" = 1 ]; then
    have_python_venv || { echo "bootstrap: python3 venv still missing" >&2; exit 1; }
fi
ensure_schemathesis
echo "bootstrap: done"
