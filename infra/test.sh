#!/usr/bin/env bash
# Runs every test: installs the emulator the AWS adapter tests need (moto's server, into a
# cached virtualenv), then the whole workspace's tests. The DynamoDB tests start moto
# themselves on a free loopback port and fail loudly if it cannot start.
# Then the browser test of registration (infra/browser/run.sh: headless Chromium against
# `serve --demo`); it installs the browser or fails, and its failure fails the run.
set -euo pipefail
cd "$(dirname "$0")/.."
source infra/scripts/tools.sh

log=$(mktemp)
trap 'rm -f "$log"' EXIT
status=0
cargo test --workspace --locked --no-fail-fast "$@" 2>&1 | tee "$log" || status=$?

# --no-fail-fast: a failing test binary does not hide the ones after it.
# cargo prints one "test result" line per test binary (the last is often the doc tests,
# with 0 tests): close with the totals so the run's outcome is read at a glance.
awk '/^test result:/ { p += $4; f += $6; i += $8 }
     END { printf "\ntotal: %d passed, %d failed, %d skipped\n", p, f, i }' "$log"

echo
echo "==> browser test: infra/browser/run.sh"
browser=0
infra/browser/run.sh || browser=$?
if [ "$browser" -eq 0 ]; then
  echo "browser: passed"
else
  echo "browser: FAILED (exit $browser)"
  [ "$status" -ne 0 ] || status=$browser
fi
exit "$status"
