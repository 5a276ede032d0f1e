#!/usr/bin/env bash
# Tests scripts/bootstrap.sh without touching the machine (run by `make test`):
#   1. libclang detection against fake library directories: only the C API library that
#      clang-sys loads (libclang.so, libclang.so.N, libclang-N.so[.M]) counts; the C++
#      library libclang-cpp.so.N alone must be reported missing.
#   2. modes: `run` asks for cargo, libclang, g++, make, node and npm but never chromium;
#      `browser` also asks for chromium. A fake PATH (stub commands, `id` says non-root)
#      keeps the script from installing anything: it can only report.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
bootstrap="$here/bootstrap.sh"
bash_bin=$(command -v bash)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
failures=0

fail() { echo "test-bootstrap: FAIL: $*" >&2; failures=$((failures + 1)); }

# check_libclang DIR -> exit status of `bootstrap.sh --check-libclang` searching only DIR.
check_libclang() {
    env -u LIBCLANG_PATH LIBCLANG_SEARCH_DIRS="$1" "$bash_bin" "$bootstrap" --check-libclang
}

# fake_lib NAME... -> a fresh directory holding empty files with these names.
fake_lib() {
    local d
    d=$(mktemp -d "$tmp/lib.XXXX")
    for f in "$@"; do : > "$d/$f"; done
    echo "$d"
}

# --- 1. libclang detection ----------------------------------------------------------
expect_missing() {
    local d
    d=$(fake_lib "$@")
    if check_libclang "$d"; then fail "libclang reported FOUND with only: $*"; fi
}
expect_found() {
    local d
    d=$(fake_lib "$@")
    check_libclang "$d" || fail "libclang reported MISSING with: $*"
}
expect_missing libclang-cpp.so.14            # the case that fooled the old `libclang*.so*` glob
expect_missing libclang-cpp.so libclang-cpp.so.14.0.6 libclangBasic.a
expect_missing                               # empty directory
expect_found libclang.so.1
expect_found libclang-cpp.so.14 libclang.so.1
expect_found libclang.so
expect_found libclang-14.so
expect_found libclang-14.so.1
expect_found libclang.so.14.0.6
# LIBCLANG_PATH naming the file itself: only the C library counts.
cpp=$(fake_lib libclang-cpp.so.14)
if env LIBCLANG_PATH="$cpp/libclang-cpp.so.14" LIBCLANG_SEARCH_DIRS="$tmp/none" \
    "$bash_bin" "$bootstrap" --check-libclang; then
    fail "LIBCLANG_PATH=libclang-cpp.so.14 reported FOUND"
fi
c=$(fake_lib libclang.so.1)
env LIBCLANG_PATH="$c/libclang.so.1" LIBCLANG_SEARCH_DIRS="$tmp/none" \
    "$bash_bin" "$bootstrap" --check-libclang || fail "LIBCLANG_PATH=libclang.so.1 reported MISSING"

# --- 2. modes -------------------------------------------------------------------------
bin="$tmp/bin"
mkdir -p "$bin"
for cmd in cargo g++ make node npm; do printf '#!%s\nexit 0\n' "$bash_bin" > "$bin/$cmd"; done
printf '#!%s\necho 1000\n' "$bash_bin" > "$bin/id"            # not root: never installs
printf '#!%s\necho "apt-get must not run" >&2; exit 99\n' "$bash_bin" > "$bin/apt-get"
chmod +x "$bin"/*
good_lib=$(fake_lib libclang.so.1)
cpp_lib=$(fake_lib libclang-cpp.so.14)

# mode_run MODE LIBDIR -> exit status; stderr in $tmp/err.
mode_run() {
    env -u LIBCLANG_PATH PATH="$bin" LIBCLANG_SEARCH_DIRS="$2" "$bash_bin" "$bootstrap" "$1" 2> "$tmp/err"
}
mode_run run "$good_lib" || fail "'run' failed with everything present: $(cat "$tmp/err")"
mode_run build "$good_lib" || fail "'build' failed with everything present: $(cat "$tmp/err")"
if mode_run run "$cpp_lib"; then fail "'run' passed with only libclang-cpp.so.14"; fi
grep -q 'libclang-dev' "$tmp/err" || fail "'run' without libclang does not name libclang-dev: $(cat "$tmp/err")"
grep -q 'chromium' "$tmp/err" && fail "'run' asks for chromium: $(cat "$tmp/err")"
rm "$bin/node"
if mode_run run "$good_lib"; then fail "'run' passed without node"; fi
grep -q 'nodejs' "$tmp/err" || fail "'run' without node does not name nodejs: $(cat "$tmp/err")"
mode_run build "$good_lib" || fail "'build' needs node: $(cat "$tmp/err")"
printf '#!%s\nexit 0\n' "$bash_bin" > "$bin/node"
chmod +x "$bin/node"
if [ ! -x /usr/bin/chromium ]; then
    if mode_run browser "$good_lib"; then fail "'browser' passed without chromium"; fi
    grep -q 'chromium' "$tmp/err" || fail "'browser' does not name chromium: $(cat "$tmp/err")"
fi
set +e
"$bash_bin" "$bootstrap" bogus 2> /dev/null   # refused before anything runs
rc=$?
set -e
[ "$rc" = 2 ] || fail "an unknown mode exits $rc, not 2"

if [ "$failures" -gt 0 ]; then
    echo "test-bootstrap: $failures failure(s)" >&2
    exit 1
fi
echo "test-bootstrap: ok"
