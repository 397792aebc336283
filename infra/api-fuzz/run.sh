#!/usr/bin/env bash
# API conformance: Schemathesis (PyPI `schemathesis`, pinned in infra/scripts/tools.sh) runs
# `openapi.yaml` against the local demo server and fails on any server error and any answer
# the document does not describe (status code, body schema, content type, headers).
#
# It builds `portal-invites`, starts `serve --demo` on a free loopback port with a fresh data
# dir (the demo tenant: divisions, contacts, the `welcome` template), makes a token with every
# permission for the demo tenant, and runs every phase: examples, coverage, fuzzing, and
# stateful (the document's `links` chain the operations that create a resource to those that
# need its id). Checks: no 5xx, every status code, content type, header and body as
# documented, and schema-violating input refused (`negative_data_rejection`; a 413 counts as
# a refusal, infra/api-fuzz/schemathesis.toml). Not `positive_data_acceptance`: a
# schema-valid request may still be refused by a rule no schema states (an unknown
# template, a division held 24 hours...), with a documented 4xx.
#
# Reproducible: `--generation-deterministic` (Hypothesis's derandomize: every operation's
# examples come from a fixed seed, no example database is read or written), one worker, at
# most SCHEMATHESIS_MAX_EXAMPLES examples per operation, a fresh server each run. NDJSON
# bodies go through infra/api-fuzz/hooks.py. A missing tool is a failure, never a skip.
#
#   infra/api-fuzz/run.sh                                   # the CI run
#   SCHEMATHESIS_MAX_EXAMPLES=1000 infra/api-fuzz/run.sh    # longer, locally
#
# Exit status: Schemathesis's (non-zero on any failure), or 1 when a setup step fails. The
# server's data dir and log are kept on failure; the reports (JUnit, and a cassette of every
# request and response) are in <cargo target dir>/schemathesis/.
set -euo pipefail
cd "$(dirname "$0")/../.."

MAX_EXAMPLES="${SCHEMATHESIS_MAX_EXAMPLES:-300}"
ALL_PERMISSIONS="invitations:read,invitations:send,registrations:manage,settings:manage,sync:write"

fail() {
  echo "FAIL (schemathesis): $*" >&2
  exit 1
}

source infra/scripts/tools.sh
command -v schemathesis >/dev/null 2>&1 || fail "schemathesis is not on PATH after infra/scripts/tools.sh"
have=$(schemathesis --version 2>/dev/null || true)
[ "$have" = "schemathesis, version $PORTAL_SCHEMATHESIS_VERSION" ] \
  || fail "expected schemathesis $PORTAL_SCHEMATHESIS_VERSION, found: ${have:-nothing}"

source infra/scripts/demo-server.sh
demo_build
bin="$demo_bin"
reports="$demo_target_dir/schemathesis"
rm -rf "$reports"
mkdir -p "$reports"

work=$(mktemp -d "${TMPDIR:-/tmp}/portal-schemathesis.XXXXXX")
status=0
cleanup() {
  demo_stop
  if [ "$status" -eq 0 ]; then
    rm -rf "$work"
  else
    echo "the server's data dir and log are kept in $work" >&2
  fi
}
trap cleanup EXIT
trap 'status=130; exit 130' INT TERM

# The demo server (fresh data dir, a free loopback port): infra/scripts/demo-server.sh.
demo_start "$work"
base="$demo_base"
token=$("$bin" token --tenant demo --permissions "$ALL_PERMISSIONS" --data-dir "$work/data")
[ -n "$token" ] || { status=1; fail "portal-invites token printed nothing"; }

echo "==> schemathesis $PORTAL_SCHEMATHESIS_VERSION against $base (deterministic, at most $MAX_EXAMPLES examples per operation)"
started=$(date +%s)
rc=0
SCHEMATHESIS_HOOKS=infra/api-fuzz/hooks.py schemathesis --config-file infra/api-fuzz/schemathesis.toml run openapi.yaml \
  --url "$base" \
  --header "Authorization: Bearer $token" \
  --phases examples,coverage,fuzzing,stateful \
  --checks not_a_server_error,status_code_conformance,content_type_conformance,response_headers_conformance,response_schema_conformance,negative_data_rejection \
  --mode all \
  --generation-deterministic \
  --max-examples "$MAX_EXAMPLES" \
  --workers 1 \
  --request-timeout 30 \
  --no-color \
  --output-sanitize true \
  --report junit,vcr \
  --report-dir "$reports" || rc=$?
echo "==> schemathesis exited $rc after $(( $(date +%s) - started )) s"
if [ "$rc" -ne 0 ]; then
  echo "--- the server's log (last 40 lines)" >&2
  tail -n 40 "$work/server.err" >&2
  status=$rc
fi
exit "$status"
