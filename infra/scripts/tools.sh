# Sourced by infra/test.sh, infra/scripts/lambda-build.sh and .ci/run: makes the Python tools
# the project needs (moto's server, cfn-lint, cargo-lambda, Schemathesis) available on PATH,
# installing them into a cached virtualenv on first use.
# Versions are pinned: moto 5.2.1 is the one verified against our SDK versions,
# cfn-lint 1.53.3 still validates inside AWS::Serverless::Function (later versions do not),
# and cargo-lambda 1.9.2 (with the zig of PyPI `ziglang`, its one dependency, pinned as well)
# builds the functions' x86_64 `bootstrap`s offline (infra/scripts/lambda-build.sh).
# Schemathesis 4.32.5 runs openapi.yaml against the demo server (infra/api-fuzz/run.sh):
# its CLI flags and checks change between versions, so a new version is a deliberate change.

PORTAL_VENV="${PORTAL_VENV:-$HOME/.cache/portal-invites/venv}"
PORTAL_CARGO_LAMBDA_VERSION="1.9.2"
PORTAL_SCHEMATHESIS_VERSION="4.32.5"
PORTAL_PY_TOOLS=("moto[server]==5.2.1" "cfn-lint==1.53.3" "cargo-lambda==$PORTAL_CARGO_LAMBDA_VERSION" "ziglang==0.17.1"
  "schemathesis==$PORTAL_SCHEMATHESIS_VERSION")

# `cargo lambda --version` prints "cargo-lambda 1.9.2 (<commit> <date>)".
if ! "$PORTAL_VENV/bin/python" -c 'import moto, cfnlint' >/dev/null 2>&1 \
  || [ "$("$PORTAL_VENV/bin/cfn-lint" --version 2>/dev/null)" != "cfn-lint 1.53.3" ] \
  || [[ "$("$PORTAL_VENV/bin/cargo-lambda" lambda --version 2>/dev/null)" != "cargo-lambda $PORTAL_CARGO_LAMBDA_VERSION"* ]] \
  || [ "$("$PORTAL_VENV/bin/schemathesis" --version 2>/dev/null)" != "schemathesis, version $PORTAL_SCHEMATHESIS_VERSION" ]; then
  echo "==> installing ${PORTAL_PY_TOOLS[*]} into $PORTAL_VENV"
  python3 -m venv "$PORTAL_VENV"
  "$PORTAL_VENV/bin/pip" install --quiet --disable-pip-version-check "${PORTAL_PY_TOOLS[@]}"
fi
export PATH="$PORTAL_VENV/bin:$PATH"
export MOTO_SERVER="$PORTAL_VENV/bin/moto_server"
