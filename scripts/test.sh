#!/usr/bin/env bash
# The whole test suite, as CI runs it: unit, property and end-to-end tests
# (real kubectl and git against loopback servers, and the oidc-provider
# npm package). Installs the test-only npm packages on first use.
set -euo pipefail
cd "$(dirname "$0")/.."

# Debian packages the tests need; CI runs this as root on a fresh machine.
#   tinyproxy  the real HTTP proxy of tests/e2e/servers_network.rs (HTTPS_PROXY/NO_PROXY)
#   faketime   tests/e2e/expiry.rs moves dexcred's clock with libfaketime
#   chromium   browser and device logins (tests/oidc/browser.mjs drives it
#              through playwright-core; browser downloads do not work here)
debs=()
[ -x /usr/bin/tinyproxy ] || debs+=(tinyproxy)
[ -e /usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1 ] || debs+=(faketime)
[ -x /usr/bin/chromium ] || debs+=(chromium)
#   dnsmasq, iproute2, strace  tests/e2e/static_build.rs: a real DNS server in a
#              network namespace, and the static binary's system calls
command -v dnsmasq >/dev/null || [ -x /usr/sbin/dnsmasq ] || debs+=(dnsmasq)
command -v ip >/dev/null || [ -x /usr/sbin/ip ] || debs+=(iproute2)
command -v strace >/dev/null || debs+=(strace)
if [ ${#debs[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${debs[@]}"
  else
    echo "test.sh: these Debian packages are required: ${debs[*]} (apt-get install ${debs[*]})" >&2
    exit 1
  fi
fi

for tool in kubectl git node npm cargo faketime chromium; do
  command -v "$tool" >/dev/null || { echo "test.sh: $tool is required but not installed" >&2; exit 1; }
done
if ! cargo nextest --version >/dev/null 2>&1; then
  echo "test.sh: cargo-nextest is required (cargo install cargo-nextest --locked)" >&2
  exit 1
fi

# The browser and device-login tests run dexcred at a pseudo-terminal with
# script(1) from util-linux (Debian: bsdutils, always installed).
command -v script >/dev/null || { echo "test.sh: script (util-linux) is required" >&2; exit 1; }

# Install (again) when node_modules is missing or no longer matches
# package.json, e.g. after playwright-core was added to an existing checkout.
if [ -f tests/oidc/package-lock.json ] && ! (cd tests/oidc && npm ls --all >/dev/null 2>&1); then
  (cd tests/oidc && npm ci --no-audit --no-fund --loglevel=error)
fi

cargo fmt --all --check
cargo clippy --workspace --all-targets --locked -- -D warnings
# Modules import only lower layers (docs/architecture.md): no circles.
scripts/module-graph.sh >/dev/null
cargo nextest run --workspace --locked --profile ci "$@"
