#!/usr/bin/env bash
# The whole test suite, as CI runs it: unit, property and end-to-end tests
# (real kubectl and git against loopback servers, and the oidc-provider
# npm package). Installs the test-only npm packages on first use.
set -euo pipefail
cd "$(dirname "$0")/.."

for tool in kubectl git node npm cargo; do
  command -v "$tool" >/dev/null || { echo "test.sh: $tool is required but not installed" >&2; exit 1; }
done
if ! cargo nextest --version >/dev/null 2>&1; then
  echo "test.sh: cargo-nextest is required (cargo install cargo-nextest --locked)" >&2
  exit 1
fi

# Interactive-login tests (tests/oidc/browser.mjs) drive Debian's Chromium
# through playwright-core; browser downloads do not work here, so it comes
# from apt. CI runs this as root on a fresh machine.
if [ ! -x /usr/bin/chromium ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    apt-get update
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends chromium
  fi
  [ -x /usr/bin/chromium ] || {
    echo "test.sh: /usr/bin/chromium is required (apt-get install chromium) but could not be installed" >&2
    exit 1
  }
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
cargo nextest run --workspace --locked --profile ci "$@"
