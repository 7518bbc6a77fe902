#!/usr/bin/env bash
# librdkafka 2.0.2's own test suite (Debian bookworm's source package) against
# `pagewire broker` (issue 15).
#
#   scripts/librdkafka-tests.sh --broker PAGEWIRE [--dir DIR] [--tests LIST] [--build-only]
#
# Fetches the source with apt-get source (adding a deb-src entry for bookworm
# main when run as root and none is there), builds src/, src-cpp/ and the
# tests' runner in DIR (default $PAGEWIRE_RDKAFKA_DIR, else
# ~/.cache/pagewire/librdkafka-2.0.2; kept between runs: a built tree is not
# fetched or built again), starts PAGEWIRE broker on a free port of 127.0.0.1
# with a fresh data directory, writes tests/test.conf naming it and runs the
# runner on LIST (comma-separated test numbers, default: tests/rdkafka_suite/
# tests.txt). Local tests (-l, no broker) and sockem tests are left out.
# Exit: 0 every selected test passed, 1 one failed (or the build did), 77 the
# source could not be fetched (ctest's SKIP_RETURN_CODE; the reason is printed).
set -euo pipefail

version=2.0.2
debian_version=2.0.2-1
repo="$(cd "$(dirname "$0")/.." && pwd)"
dir="${PAGEWIRE_RDKAFKA_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/pagewire/librdkafka-$version}"
broker=
tests=
build_only=0

usage() {
    sed -n '5p' "$0" | sed 's/^# *//' >&2
    exit 2
}

while [ $# -gt 0 ]; do
    case "$1" in
        --broker) broker="${2:?}"; shift 2 ;;
        --dir) dir="${2:?}"; shift 2 ;;
        --tests) tests="${2:?}"; shift 2 ;;
        --build-only) build_only=1; shift ;;
        *) usage ;;
    esac
done
if [ "$build_only" -eq 0 ] && [ -z "$broker" ]; then usage; fi
if [ -z "$tests" ]; then
    # One test number a line; '#' starts a comment (why a test is not listed is in docs/KAFKA.md).
    tests="$(sed 's/#.*//' "$repo/tests/rdkafka_suite/tests.txt" | awk 'NF {print $1}' | paste -sd, -)"
fi

skip() {
    echo "librdkafka-tests: SKIP: $*" >&2
    exit 77
}
fail() {
    echo "librdkafka-tests: $*" >&2
    exit 1
}

mkdir -p "$dir"
# One build or run at a time per tree (ctest of two presets may share it).
exec 9>"$dir/.lock"
flock 9

src="$dir/librdkafka-$version"
runner="$src/tests/test-runner"

# Adds a deb-src entry for bookworm main (deb822, beside debian.sources) when
# apt knows no source of librdkafka, then refreshes only that entry's index.
ensure_deb_src() {
    if apt-cache showsrc librdkafka 2>/dev/null | grep "^Version: $debian_version" >/dev/null; then
        return 0
    fi
    [ "$(id -u)" -eq 0 ] || skip "apt knows no source package librdkafka $debian_version and adding a deb-src entry needs root"
    local list=/etc/apt/sources.list.d/pagewire-deb-src.sources
    cat >"$list" <<'EOF'
Types: deb-src
URIs: http://deb.debian.org/debian
Suites: bookworm
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
    timeout 300 apt-get update -qq -o Dir::Etc::sourcelist="$list" -o Dir::Etc::sourceparts=- \
        -o APT::Get::List-Cleanup=0 >"$dir/apt-update.log" 2>&1 ||
        skip "apt-get update of $list failed (no network?): $(tail -1 "$dir/apt-update.log")"
    apt-cache showsrc librdkafka 2>/dev/null | grep "^Version: $debian_version" >/dev/null ||
        skip "deb.debian.org bookworm has no source package librdkafka $debian_version"
}

fetch() {
    local dsc="$dir/librdkafka_$debian_version.dsc"
    if [ ! -f "$dsc" ]; then
        ensure_deb_src
        (cd "$dir" && timeout 300 apt-get source -qq --download-only "librdkafka=$debian_version") \
            >"$dir/apt-source.log" 2>&1 ||
            skip "apt-get source librdkafka=$debian_version failed (no network?): $(tail -1 "$dir/apt-source.log")"
    fi
    rm -rf "$src"
    dpkg-source --no-check -x "$dsc" "$src" >"$dir/dpkg-source.log" 2>&1 ||
        fail "dpkg-source -x $dsc failed: $(tail -1 "$dir/dpkg-source.log")"
}

# The in-tree libraries and runner, as the source's Makefiles build them; no
# SASL/GSSAPI, zstd, external lz4 or curl (none is needed by the tests run here).
build() {
    local log="$dir/build.log"
    echo "librdkafka-tests: building librdkafka $version in $src (log: $log)"
    (
        # && rather than set -e, which the || below turns off in here.
        cd "$src" &&
            ./configure --no-download --disable-gssapi --disable-zstd --disable-lz4-ext --disable-curl &&
            make -j "$(nproc)" libs &&
            make -j "$(nproc)" -C tests build
    ) >"$log" 2>&1 || fail "building librdkafka $version failed: $(tail -3 "$log")"
    touch "$dir/.built-$debian_version"
}

if [ ! -f "$dir/.built-$debian_version" ] || [ ! -x "$runner" ]; then
    rm -f "$dir/.built-$debian_version"
    [ -d "$src" ] && [ -f "$src/configure" ] || fetch
    build
fi
[ "$build_only" -eq 1 ] && exit 0

[ -x "$broker" ] || fail "--broker $broker: not an executable"

run="$(mktemp -d "${TMPDIR:-/tmp}/pagewire-rdkafka.XXXXXX")"
broker_pid=
cleanup() {
    if [ -n "$broker_pid" ]; then
        kill "$broker_pid" 2>/dev/null || true
        wait "$broker_pid" 2>/dev/null || true
    fi
    rm -rf "$run"
}
trap cleanup EXIT

# Small segments: every partition the tests create preallocates one. Four
# partitions for an auto-created topic, as the clusters the suite is made for
# (trivup: num.partitions=4); several tests produce to partitions 0-3.
"$broker" broker --data "$run/data" --listen 127.0.0.1:0 --segment-bytes 1M --partitions 4 \
    >"$run/broker.out" 2>"$run/broker.err" &
broker_pid=$!
address=
for _ in $(seq 100); do
    address="$(sed -n 's/^pagewire broker: listening on \([^ ]*\) .*/\1/p' "$run/broker.out")"
    [ -n "$address" ] && break
    kill -0 "$broker_pid" 2>/dev/null || fail "pagewire broker exited: $(cat "$run/broker.err")"
    sleep 0.1
done
[ -n "$address" ] || fail "pagewire broker did not listen within 10 s"
echo "librdkafka-tests: pagewire broker on $address, data in $run/data"

cat >"$src/tests/test.conf" <<EOF
# Written by pagewire's scripts/librdkafka-tests.sh: the broker under test.
metadata.broker.list=$address
# Topic names of their own in every run (the data directory is fresh anyway).
test.topic.random=true
EOF

# -L: no local-only tests, -E: no sockem (socket emulation) tests, -Q: the
# suite's quick mode, -p3: three tests at a time (its CI setting); -V: the Kafka version whose
# APIs the broker's ApiVersions ranges match (tests needing newer ones skip).
status=0
(
    cd "$src/tests"
    TESTS="$tests" RDKAFKA_TEST_CONF=test.conf LD_LIBRARY_PATH="../src:../src-cpp" \
        timeout "${PAGEWIRE_RDKAFKA_TIMEOUT:-330}" ./test-runner -L -E -Q -p3 -V 2.8.1
) >"$run/suite.out" 2>"$run/suite.log" || status=$?

# The runner's summary table on stdout: "| <name> | PASSED | <seconds>s |",
# colored. A local or sockem variant of a selected number (0034_offset_reset_mock)
# is listed as filtered: left out.
sed 's/\x1b\[[0-9;]*m//g' "$run/suite.out" | grep -v 'Filtered due to negative test flags' |
    awk -F'|' 'NF >= 4 && $3 ~ /PASSED|FAILED|SKIPPED|RUNNING|NOT_STARTED/ {
        gsub(/ /, "", $2); gsub(/ /, "", $3); gsub(/ /, "", $4)
        if ($2 != "<MAIN>") printf "%-45s %s %s\n", $2, $3, $4 }' >"$run/summary.txt"
cat "$run/summary.txt"
passed="$(grep -c ' PASSED' "$run/summary.txt" || true)"
selected="$(echo "$tests" | tr ',' '\n' | grep -c .)"
# A selected test that skips counts as failed: each is listed for passing here.
not_passed="$( (grep -v ' PASSED' "$run/summary.txt" || true) | awk '{printf "%s%s %s", sep, $1, $2; sep=", "}')"
if [ "$status" -ne 0 ] || [ -n "$not_passed" ] || [ "$passed" -ne "$selected" ]; then
    echo "librdkafka-tests: runner exit status $status; its log:" >&2
    tail -200 "$run/suite.log" >&2
    cat "$run/suite.out" >&2
    echo "librdkafka-tests: broker's stderr:" >&2
    tail -20 "$run/broker.err" >&2
    fail "$passed of $selected selected tests passed; not passed: ${not_passed:-none listed}"
fi
echo "librdkafka-tests: all $passed selected tests passed"
