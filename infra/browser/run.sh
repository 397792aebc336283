#!/usr/bin/env bash
# The browser tests: registration sign-up (infra/browser/registration_test.py) and the
# managers' console (infra/browser/console_test.py). Headless Chromium, the Debian package at
# /usr/bin/chromium, driven by Playwright for Python (pinned, in the project's cached
# virtualenv; Playwright's own browser download cannot work here); the console's pages are
# scanned with axe-core (pinned, from the npm registry, into ~/.cache/portal-invites/npm).
#
# It installs what is missing (chromium through apt-get when it can; playwright with pip;
# axe-core with npm), builds `portal-invites`, and for each test starts `serve --demo` on a
# free loopback port with a fresh data dir, runs the test against it, and stops the server. A
# missing browser, npm or package is a failure, never a skip.
# Screenshots go to <cargo target dir>/browser-screenshots/.
#
#   infra/browser/run.sh
#
# Exit status: the test's (non-zero on any failed check or setup step).
set -euo pipefail
cd "$(dirname "$0")/../.."

PORTAL_PLAYWRIGHT_VERSION="1.65.2"
PORTAL_AXE_VERSION="4.11.0"
CHROMIUM=/usr/bin/chromium

fail() {
  echo "FAIL (browser test): $*" >&2
  exit 1
}

# --- The browser ------------------------------------------------------------------------------
if [ ! -x "$CHROMIUM" ]; then
  echo "==> $CHROMIUM is missing: installing the Debian package chromium"
  if [ "$(id -u)" -eq 0 ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium \
      || echo "apt-get could not install chromium" >&2
  elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium \
      || echo "apt-get could not install chromium" >&2
  else
    echo "not root and no password-less sudo: cannot run apt-get" >&2
  fi
fi
[ -x "$CHROMIUM" ] || fail "no browser at $CHROMIUM. Install it with \`apt-get install -y chromium\` (as root) and run again; this test is not skipped."

# --- Playwright for Python, in the project's virtualenv ----------------------------------------
source infra/scripts/tools.sh
py="$PORTAL_VENV/bin/python"
have=$("$py" -c 'import importlib.metadata as m; print(m.version("playwright"))' 2>/dev/null || true)
if [ "$have" != "$PORTAL_PLAYWRIGHT_VERSION" ]; then
  echo "==> installing playwright==$PORTAL_PLAYWRIGHT_VERSION into $PORTAL_VENV"
  "$PORTAL_VENV/bin/pip" install --quiet --disable-pip-version-check \
    "playwright==$PORTAL_PLAYWRIGHT_VERSION" || fail "cannot install playwright==$PORTAL_PLAYWRIGHT_VERSION"
fi

# --- axe-core, from the npm registry ---------------------------------------------------------
npm_dir="$HOME/.cache/portal-invites/npm"
axe="$npm_dir/node_modules/axe-core/axe.min.js"
have_axe=$(node -p "require('$npm_dir/node_modules/axe-core/package.json').version" 2>/dev/null || true)
if [ "$have_axe" != "$PORTAL_AXE_VERSION" ]; then
  if ! command -v npm >/dev/null 2>&1; then
    echo "==> npm is missing: installing the Debian packages nodejs and npm"
    if [ "$(id -u)" -eq 0 ]; then
      apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm \
        || echo "apt-get could not install nodejs and npm" >&2
    elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
      sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm \
        || echo "apt-get could not install nodejs and npm" >&2
    fi
  fi
  command -v npm >/dev/null 2>&1 || fail "npm is missing: install Node.js and npm (Debian: apt-get install -y nodejs npm); the accessibility scan is not skipped."
  echo "==> installing axe-core@$PORTAL_AXE_VERSION into $npm_dir"
  mkdir -p "$npm_dir"
  npm install --prefix "$npm_dir" --no-save --no-audit --no-fund --loglevel=error "axe-core@$PORTAL_AXE_VERSION" \
    || fail "cannot install axe-core@$PORTAL_AXE_VERSION with npm"
fi
[ -s "$axe" ] || fail "no $axe after installing axe-core"

# --- The server -------------------------------------------------------------------------------
source infra/scripts/demo-server.sh
demo_build
bin="$demo_bin"
shots="$demo_target_dir/browser-screenshots"
rm -rf "$shots"
mkdir -p "$shots"

work=$(mktemp -d "${TMPDIR:-/tmp}/portal-browser.XXXXXX")
status=0
cleanup() {
  demo_stop
  if [ "$status" -eq 0 ]; then
    rm -rf "$work"
  else
    echo "the servers' data dirs and logs are kept in $work" >&2
  fi
}
trap cleanup EXIT
trap 'status=130; exit 130' INT TERM

# run_test NAME SCRIPT [ARGS...]: one test against its own fresh server.
run_test() {
  local name=$1 script=$2
  shift 2
  local dir="$work/$name" rc=0
  demo_start "$work/$name"
  echo "==> running $script"
  "$py" "$script" \
    --banner "$dir/server.out" \
    --data-dir "$dir/data" \
    --bin "$bin" \
    --screenshots "$shots" "$@" || rc=$?
  demo_stop
  if [ "$rc" -ne 0 ]; then
    echo "--- the server's log (last 40 lines)" >&2
    tail -n 40 "$dir/server.err" >&2
    echo "FAIL (browser test): $script exited $rc" >&2
    status=$rc
  fi
}

run_test registration infra/browser/registration_test.py
run_test console infra/browser/console_test.py --axe "$axe"
exit "$status"
