#!/usr/bin/env bash
# The whole test suite, as CI runs it: unit, property and end-to-end tests
# (real kubectl and git against loopback servers, and the oidc-provider
# npm package). Installs the test-only npm packages on first use.
set -euo pipefail
cd "$(dirname "$0")/.."

# tests/static_build.rs: a DNS server, network namespaces and strace (CI runs
# this as root on a fresh Debian machine; install them only when missing).
missing_debs=()
command -v dnsmasq >/dev/null || [ -x /usr/sbin/dnsmasq ] || missing_debs+=(dnsmasq)
command -v ip >/dev/null || [ -x /usr/sbin/ip ] || missing_debs+=(iproute2)
command -v strace >/dev/null || missing_debs+=(strace)
if [ ${#missing_debs[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing_debs[@]}"
  else
    echo "test.sh: install the Debian packages ${missing_debs[*]}" >&2
    exit 1
  fi
fi

for tool in kubectl git node npm cargo; do
  command -v "$tool" >/dev/null || { echo "test.sh: $tool is required but not installed" >&2; exit 1; }
done
if ! cargo nextest --version >/dev/null 2>&1; then
  echo "test.sh: cargo-nextest is required (cargo install cargo-nextest --locked)" >&2
  exit 1
fi

if [ -f tests/oidc/package-lock.json ] && [ ! -d tests/oidc/node_modules ]; then
  (cd tests/oidc && npm ci --no-audit --no-fund --loglevel=error)
fi

cargo fmt --all --check
cargo clippy --workspace --all-targets --locked -- -D warnings
cargo nextest run --workspace --locked --profile ci "$@"
