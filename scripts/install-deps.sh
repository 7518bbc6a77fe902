#!/usr/bin/env bash
# Installs the Debian packages pagewire needs to build, test and benchmark.
# Idempotent and quick when everything is present: apt-get runs only when a
# package is missing, and `apt-get update` runs once before that install.
set -euo pipefail

packages=(
    cmake ninja-build g++ clang-14 libclang-rt-14-dev clang-format-14 pkg-config
    dpkg-dev help2man man-db file
    libcli11-dev libfmt-dev nlohmann-json3-dev
    libgtest-dev libgmock-dev libbenchmark-dev
    util-linux coreutils vmtouch
    liburing-dev gnuplot-nox
    libboost-dev libzmq3-dev iceoryx libiceoryx-posh-dev
    nginx-light wrk libhttp-parser-dev curl
    kcat librdkafka-dev python3-confluent-kafka python3-kafka
    nodejs
    make gcc zlib1g-dev libssl-dev  # librdkafka's source and test runner (scripts/librdkafka-tests.sh)
)
# npm for tests/broker_node's clients (scripts/install-node-clients.sh):
# Debian's package unless a node that brings its own (NodeSource's) is there.
if ! command -v npm >/dev/null; then
    packages+=(npm)
fi

# Sets `missing` to those of the named packages that are not fully installed.
find_missing() {
    missing=()
    local p
    for p in "$@"; do
        if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
            missing+=("$p")
        fi
    done
}
find_missing "${packages[@]}"

if [ ${#missing[@]} -eq 0 ]; then
    exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
    echo "install-deps: missing packages: ${missing[*]} (run as root to install them)" >&2
    exit 1
fi

export DEBIAN_FRONTEND=noninteractive
# An install that was cut short (a machine restarted during apt-get) leaves
# packages half-configured and apt-get refusing every install until dpkg
# finishes them: finish them first, then see what is still missing.
if [ -n "$(dpkg --audit 2>/dev/null)" ]; then
    echo "install-deps: finishing an interrupted dpkg run (dpkg --configure -a)"
    dpkg --configure -a
    find_missing "${missing[@]}"
    if [ ${#missing[@]} -eq 0 ]; then
        exit 0
    fi
fi

echo "install-deps: installing ${missing[*]}"
# Another apt-get (unattended-upgrades on a fresh machine) may hold the lock:
# wait for it rather than fail.
apt_opts=(-o DPkg::Lock::Timeout=600)
apt-get "${apt_opts[@]}" update -qq
apt-get "${apt_opts[@]}" install -y -qq --no-install-recommends "${missing[@]}"
