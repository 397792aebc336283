#!/usr/bin/env bash
# Runs every test: installs the emulator the AWS adapter tests need (moto's server, into a
# cached virtualenv), then the whole workspace's tests. The DynamoDB tests start moto
# themselves on a free loopback port and fail loudly if it cannot start.
set -euo pipefail
cd "$(dirname "$0")/.."
source infra/scripts/tools.sh
cargo test --workspace --locked "$@"
