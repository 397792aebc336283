#!/usr/bin/env bash
# Builds every Lambda function of the workspace as `sam build` does (BuildMethod
# rust-cargolambda runs `cargo lambda build --release --bin <Binary>` at the workspace root),
# x86_64 only, then reports each bootstrap's size, zipped size and init time (bench-lambda).
#
# The functions are found, not listed: every directory functions/*/ with a Cargo.toml is a
# function package, and each of its binaries is a Lambda (today one per package, named as the
# package and its directory). Output: $CARGO_TARGET_DIR/lambda/<binary>/bootstrap.
#
#   infra/scripts/lambda-build.sh                 # build, then bench (20 runs per function)
#   infra/scripts/lambda-build.sh --runs 50       # arguments go to bench-lambda
#   LAMBDA_BUILD_ARGS="--config profile.release.opt-level=\"s\"" infra/scripts/lambda-build.sh
#
# LAMBDA_BUILD_ARGS (optional) is split on spaces and appended to `cargo lambda build`: a way
# to try `--config` overrides of the release profile without editing Cargo.toml.
# Fails (non-zero) when a build fails, a bootstrap is missing, or a function cannot start.
set -euo pipefail
cd "$(dirname "$0")/../.."

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/portal-invites/target}"
source infra/scripts/tools.sh

# Each functions/*/Cargo.toml must be a workspace member; its binaries, as cargo reads them.
metadata=$(cargo metadata --no-deps --format-version 1 --locked)
bins=()
shopt -s nullglob
for manifest in functions/*/Cargo.toml; do
  found=$(MANIFEST="$PWD/$manifest" python3 -c '
import json, os, sys
meta = json.load(sys.stdin)
want = os.path.realpath(os.environ["MANIFEST"])
for pkg in meta["packages"]:
    if os.path.realpath(pkg["manifest_path"]) == want:
        for target in pkg["targets"]:
            if "bin" in target["kind"]:
                print(pkg["name"], target["name"])
        break
else:
    sys.exit("not a workspace member")
' <<<"$metadata") || { echo "error: $manifest is not a member of the workspace (Cargo.toml members)" >&2; exit 1; }
  if [ -z "$found" ]; then
    echo "error: the package of $manifest has no binary: a Lambda function needs one" >&2
    exit 1
  fi
  while read -r package bin; do
    echo "==> function package $package: binary $bin"
    bins+=("$bin")
  done <<<"$found"
done
if [ "${#bins[@]}" -eq 0 ]; then
  echo "error: no function package found (functions/*/Cargo.toml)" >&2
  exit 1
fi

lambda_dir="$CARGO_TARGET_DIR/lambda"
# A bootstrap left by an earlier build must not pass for this one's.
for bin in "${bins[@]}"; do
  rm -f "$lambda_dir/$bin/bootstrap"
done

build=(cargo lambda build --release --locked)
for bin in "${bins[@]}"; do
  build+=(--bin "$bin")
done
# shellcheck disable=SC2206 # split on purpose: extra flags for experiments
build+=(${LAMBDA_BUILD_ARGS:-})
echo "==> ${build[*]}"
start_ns=$(date +%s%N)
"${build[@]}"
elapsed_ms=$((($(date +%s%N) - start_ns) / 1000000))
printf '==> cargo lambda build took %d.%03d s\n' $((elapsed_ms / 1000)) $((elapsed_ms % 1000))

missing=0
for bin in "${bins[@]}"; do
  if [ ! -x "$lambda_dir/$bin/bootstrap" ]; then
    echo "error: $lambda_dir/$bin/bootstrap is missing after the build" >&2
    missing=1
  fi
done
[ "$missing" -eq 0 ] || exit 1

# The stand-in's own speed does not matter (it times another process): the debug build the
# tests already made is enough.
bench=(cargo run --locked -p portal-invites --bin bench-lambda -- "$lambda_dir")
for bin in "${bins[@]}"; do
  bench+=(--function "$bin")
done
echo "==> ${bench[*]} $*"
"${bench[@]}" "$@"
