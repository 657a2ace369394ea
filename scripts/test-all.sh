#!/usr/bin/env bash
# The one test command: installs the test tools this project needs (idempotent,
# quick when they are already there) and runs every crate's tests, including
# the Autobahn conformance suite. Usage: ./scripts/test-all.sh
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

# == paths, links and results commits (a second, no build needed) ===============
# No comment or document names a missing file or a place outside the
# repository, no relative link or #anchor is dead, and every file under
# results/ names the commit it describes. See the script's docstring.
echo "== check-paths"
python3 scripts/test_check_paths.py
python3 scripts/check-paths.py

# Installs the named Debian packages that are missing; runs `apt-get update`
# only when something has to be installed.
ensure_apt_packages() {
    local missing=()
    local package
    for package in "$@"; do
        dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "ok installed" \
            || missing+=("$package")
    done
    if ((${#missing[@]} > 0)); then
        echo "== installing ${missing[*]}"
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"
    fi
}

# == system packages ==========================================================
# chromium: engine/tests/browser.rs drives the sample page over CDP.
# nginx: engine/tests/proxy_nginx.rs and deploy.rs run it on loopback.
# iproute2: `ss -tm` shows the kernel socket buffers (engine/tests/socket_buffers.rs);
#   `ip netns` builds the hosts of engine/tests/scale_out.rs.
# haproxy, openssl: engine/tests/proxy_haproxy.rs and scale_out.rs run
#   deploy/haproxy/ringecho.cfg with a certificate made by openssl.
# liburing-dev: bench/tests/floor.rs builds the C floor server (bench/floor/).
# python3-venv: the virtual environment kosoku is installed into (below).
ensure_apt_packages chromium nginx iproute2 haproxy openssl liburing-dev python3-venv

# == kosoku, the Autobahn TestSuite runner (PyPI) ===============================
readonly KOSOKU_VERSION="0.1.0"
readonly VENV="target/tools/venv"
readonly KOSOKU="$VENV/bin/kosoku"
if ! "$KOSOKU" --help >/dev/null 2>&1; then
    echo "== installing kosoku $KOSOKU_VERSION into $VENV"
    python3 -m venv --clear "$VENV"
    "$VENV/bin/pip" install --quiet --disable-pip-version-check "kosoku==$KOSOKU_VERSION"
fi
export RINGECHO_KOSOKU="$PWD/$KOSOKU"

echo "== cargo test"
readonly CARGO_LOG="target/test-all.log"
mkdir -p target
cargo test --workspace 2>&1 | tee "$CARGO_LOG"

# loadgen's own tests run on both of its I/O drivers; the scale-out test
# (two loadgens in network namespaces, merge, --reconnect, --start-at) ran
# above on the default (io_uring here) and runs again on epoll.
echo "== scale-out with loadgen on epoll"
LOADGEN_IO=epoll cargo test -p ringecho --test scale_out 2>&1 | tee -a "$CARGO_LOG"

echo "== Autobahn summary"
cat target/autobahn/*/summary.txt

# == fuzzing: AFL++ through cargo-afl (stable Rust), both targets side by side
# for 60 s from the committed corpus; fails on any crash or hang. Installs
# cargo-afl and its AFL++ once per machine. See docs/fuzzing.md.
./scripts/fuzz.sh --seconds 60

# One closing line over all test binaries (cargo's last line is only the
# last binary's, often a doc-test run with nothing in it).
awk '/^test result:/ { passed += $4; failed += $6 }
     END { printf "total: %d passed, %d failed\n", passed, failed }' "$CARGO_LOG"
