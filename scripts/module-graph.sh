#!/bin/sh
# Lists the import edges between dexcred's top-level modules ("from to", one
# per line, from `crate::X` paths outside comments and #[cfg(test)] code)
# and fails when they form a circle. docs/architecture.md shows the layers.
#   scripts/module-graph.sh          edges, then "acyclic" or the circle
set -eu
cd "$(dirname "$0")/.."
edges=$(for f in $(find src -name '*.rs' ! -path 'src/bin/*' ! -name main.rs | sort); do
    from=$(echo "$f" | sed -E 's#^src/##; s#/.*##; s#\.rs$##')
    awk '/^#\[cfg\(test\)\]/ { exit } { print }' "$f" |
        grep -v '^[[:space:]]*//' |
        grep -oE 'crate::(\{[^}]*\}|[a-z_]+)' |
        sed -E 's/crate:://; s/[{}]//g; s/::[^,]*//g; s/,/\n/g' |
        sed -E 's/^[[:space:]]+//; s/[[:space:]]+$//' | grep -v '^$' |
        while read -r to; do
            if [ "$from" != "$to" ]; then echo "$from $to"; fi
        done
done | sort -u)
echo "$edges"
if echo "$edges" | tsort >/dev/null 2>/tmp/module-graph.$$; then
    echo "acyclic"
    rm -f /tmp/module-graph.$$
else
    cat /tmp/module-graph.$$ >&2
    rm -f /tmp/module-graph.$$
    exit 1
fi
