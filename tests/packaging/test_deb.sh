#!/usr/bin/env bash
# ctest test (label package): builds the Debian package from the build tree
# (cpack into a scratch directory), checks what it holds, installs it with
# apt-get on this machine, uses it as a user and as a developer would, and
# purges it, leaving the system as it was. Root only; skipped (exit 77) when
# not root or when a pagewire is installed already (it would be replaced).
# Usage: test_deb.sh BUILD_DIR VERSION CONSUMER_MAIN_CPP
set -euo pipefail
build=$1
version=$2
consumer=$3
export LC_ALL=C DEBIAN_FRONTEND=noninteractive

skip() {
    echo "SKIP: $*"
    exit 77
}
fail() {
    echo "FAIL: $*" >&2
    exit 1
}

[ "$(id -u)" -eq 0 ] || skip "installing a package needs root"
if dpkg-query -W -f='${Status}' pagewire 2>/dev/null | grep -q "installed"; then
    skip "a pagewire package is installed on this machine; the test would replace it"
fi
[ -e /usr/bin/pagewire ] && skip "/usr/bin/pagewire exists (not from a package); the test would overwrite it"
for tool in cpack apt-get dpkg-deb man pkg-config; do
    command -v "$tool" >/dev/null || skip "$tool is not installed"
done

scratch=$(mktemp -d /tmp/pagewire-deb-XXXXXX)
installed=no
cleanup() {
    if [ $installed = yes ]; then
        apt-get purge -y -qq pagewire >/dev/null 2>&1 || dpkg --purge pagewire >/dev/null 2>&1 || true
    fi
    rm -rf "$scratch"
}
trap cleanup EXIT

# 1. Build it. -B keeps cpack's staging tree and the package out of the build tree.
cpack --config "$build/CPackConfig.cmake" -G DEB -B "$scratch" >"$scratch/cpack.log" 2>&1 ||
    fail "cpack: $(cat "$scratch/cpack.log")"
deb=$scratch/pagewire_${version}_$(dpkg --print-architecture).deb
[ -f "$deb" ] || fail "cpack made no $deb: $(ls "$scratch")"

# 2. What it holds.
contents=$(dpkg-deb --contents "$deb" | awk '{print $6}')
for want in ./usr/bin/pagewire ./usr/include/pagewire/pagewire.hpp ./usr/include/pagewire/config.hpp \
    './usr/lib/(.*/)?libpagewire\.a' './usr/lib/(.*/)?cmake/pagewire/pagewireConfig\.cmake' \
    './usr/lib/(.*/)?cmake/pagewire/pagewireTargets\.cmake' './usr/lib/(.*/)?pkgconfig/pagewire\.pc' \
    ./usr/share/doc/pagewire/copyright ./usr/share/man/man1/pagewire.1.gz \
    ./usr/share/man/man1/pagewire-serve.1.gz ./usr/share/bash-completion/completions/pagewire; do
    grep -Eqx -- "$want" <<<"$contents" || fail "$deb lacks $want; it holds:
$contents"
done
depends=$(dpkg-deb --field "$deb" Depends)
[[ $depends == *libc6* ]] || fail "Depends '$depends' lacks libc6: dpkg-shlibdeps did not run"
grep -q "Apache License" <(dpkg-deb --fsys-tarfile "$deb" | tar -xO ./usr/share/doc/pagewire/copyright) ||
    fail "the package's copyright file does not hold the licence"
dpkg-deb --fsys-tarfile "$deb" | tar -xO ./usr/bin/pagewire >"$scratch/pagewire.packaged"
if readelf -S "$scratch/pagewire.packaged" | grep -q '\.debug_info'; then
    fail "/usr/bin/pagewire in the package is not stripped"
fi

# 3. Install: apt-get resolves the dependencies from this machine's packages
# (--no-install-recommends: nothing is fetched for the recommended -dev packages).
installed=yes
if ! apt-get install -y -qq --no-install-recommends "$deb" >"$scratch/apt.log" 2>&1; then
    fail "apt-get install $deb: $(cat "$scratch/apt.log")"
fi
dpkg-query -W -f='${Status} ${Version}\n' pagewire | grep -qx "install ok installed $version" ||
    fail "after apt-get install: $(dpkg-query -W -f='${Status} ${Version}' pagewire)"

# 4. As a user: the command, its pages, its completion.
first=$(/usr/bin/pagewire --version | head -n 1)
[ "$first" = "pagewire $version" ] || fail "installed pagewire --version says '$first'"
[ "$(man -w pagewire)" = /usr/share/man/man1/pagewire.1.gz ] || fail "man -w pagewire: $(man -w pagewire 2>&1)"
subcommands=$(/usr/bin/pagewire --help | sed -n '/^Subcommands:$/,/^[^ ]/s/^  \([a-z][a-z0-9_-]*\) .*/\1/p')
[ -n "$subcommands" ] || fail "installed pagewire --help lists no subcommands"
for sub in $subcommands; do
    man -w "pagewire-$sub" >/dev/null 2>&1 || fail "man -w pagewire-$sub finds no page"
done
man pagewire-serve 2>/dev/null | grep -q -- "--listen" || fail "man pagewire-serve does not show --listen"
completion=/usr/share/bash-completion/completions/pagewire
offered=$(bash -c 'source "$1"; COMP_WORDS=(pagewire s); COMP_CWORD=1; _pagewire; echo "${COMPREPLY[*]}"' \
    _ "$completion")
for sub in $subcommands; do
    [[ $sub == s* && " $offered " != *" $sub "* ]] && fail "completing 'pagewire s' offers '$offered', not $sub"
done

# 5. As a developer: the packaged pkg-config file, headers and library build a program.
[ "$(pkg-config --modversion pagewire)" = "$version" ] || fail "pkg-config --modversion pagewire"
flags=$(pkg-config --cflags --libs pagewire)
# shellcheck disable=SC2086
g++ "$consumer" $flags -o "$scratch/consumer" 2>"$scratch/cc.log" || fail "building against the package: $(cat "$scratch/cc.log")"
printf 'P%04999d' 0 >"$scratch/input"
[ "$("$scratch/consumer" "$scratch/input")" = "size 5000 first 'P'" ] || fail "the consumer built against the package"

# 6. Remove it, and nothing of it is left.
installed=no
apt-get purge -y -qq pagewire >"$scratch/apt.log" 2>&1 || fail "apt-get purge pagewire: $(cat "$scratch/apt.log")"
if dpkg-query -W -f='${Status}' pagewire 2>/dev/null | grep -q "installed"; then
    fail "pagewire still installed after purge"
fi
for gone in /usr/bin/pagewire /usr/include/pagewire /usr/share/man/man1/pagewire.1.gz "$completion" \
    /usr/share/doc/pagewire; do
    [ ! -e "$gone" ] || fail "$gone is left after purging the package"
done
echo "package_deb: built, installed, used and purged $(basename "$deb")"
