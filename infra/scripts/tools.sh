# Sourced by infra/test.sh and .ci/run: makes the Python tools the tests need (moto's server,
# cfn-lint) available on PATH, installing them into a cached virtualenv on first use.
# Versions are pinned: moto 5.2.1 is the one verified against our SDK versions, and
# cfn-lint 1.53.3 still validates inside AWS::Serverless::Function (later versions do not).

PORTAL_VENV="${PORTAL_VENV:-$HOME/.cache/portal-invites/venv}"
PORTAL_PY_TOOLS=("moto[server]==5.2.1" "cfn-lint==1.53.3")

if ! "$PORTAL_VENV/bin/python" -c 'import moto, cfnlint' >/dev/null 2>&1 \
  || [ "$("$PORTAL_VENV/bin/cfn-lint" --version 2>/dev/null)" != "cfn-lint 1.53.3" ]; then
  echo "==> installing ${PORTAL_PY_TOOLS[*]} into $PORTAL_VENV"
  python3 -m venv "$PORTAL_VENV"
  "$PORTAL_VENV/bin/pip" install --quiet --disable-pip-version-check "${PORTAL_PY_TOOLS[@]}"
fi
export PATH="$PORTAL_VENV/bin:$PATH"
export MOTO_SERVER="$PORTAL_VENV/bin/moto_server"
