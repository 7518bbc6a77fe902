#!/usr/bin/env bash
# Installs the npm Kafka clients tests/broker_node runs against pagewire
# broker (versions pinned by its package-lock.json) into
# tests/broker_node/node_modules, which git ignores. Quick when they are in
# place: a stamp holds the lock file's hash. @confluentinc/kafka-javascript
# is built from its npm tarball's sources (its bundled librdkafka as a shared
# library, CKJS_LINKING=dynamic), never a prebuilt binary downloaded by
# node-pre-gyp: nothing comes from outside Debian and npm.
# Exit 0 when installed, 77 (with the reason on stderr) when node, npm or the
# registry is not there, 1 when the install itself fails.
set -euo pipefail

dir=$(cd "$(dirname "$0")/../tests/broker_node" && pwd)
stamp="$dir/node_modules/.pagewire-installed"

for tool in node npm; do
    if ! command -v "$tool" >/dev/null; then
        echo "install-node-clients: $tool is not installed (scripts/install-deps.sh installs it)" >&2
        exit 77
    fi
done

# Two builds' ctest runs may install at once: one at a time, the second sees the stamp.
exec 9>"$dir/.install.lock"
flock 9

hash=$(sha256sum "$dir/package-lock.json" | cut -d' ' -f1)
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$hash" ]; then
    exit 0
fi

registry=$(npm config get registry)
if ! timeout 30 npm view kafkajs@2 version >/dev/null 2>&1; then
    echo "install-node-clients: npm registry $registry is unreachable" >&2
    exit 77
fi

echo "install-node-clients: npm ci in $dir (builds librdkafka, a few minutes)" >&2
cd "$dir"
export CKJS_LINKING=dynamic npm_config_build_from_source=true
# Debian's and NodeSource's node keep their headers in /usr/include/node:
# node-gyp need not download them.
if [ -f /usr/include/node/node.h ]; then
    export npm_config_nodedir=/usr
fi
if ! npm ci --no-audit --no-fund --loglevel=error >"$dir/.install.log" 2>&1; then
    tail -n 30 "$dir/.install.log" >&2
    echo "install-node-clients: npm ci failed in $dir (log: $dir/.install.log)" >&2
    exit 1
fi
echo "$hash" >"$stamp"
