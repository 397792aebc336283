# The demo server as the browser tests (infra/browser/run.sh) and the API conformance run
# (infra/api-fuzz/run.sh) use it: built once, then `serve --demo` with a fresh data dir on a
# free loopback port, waited for, and stopped. Sourced, after infra/scripts/tools.sh, by a
# script that defines `fail MESSAGE` (prints and exits non-zero) and keeps its own `status`.
#
#   demo_build              builds portal-invites; sets demo_bin and demo_target_dir
#   demo_start DIR          starts `serve --demo` with data dir DIR/data, its output in
#                           DIR/server.out and DIR/server.err; waits for the banner's
#                           registration link; sets demo_pid and demo_base (http://127.0.0.1:PORT)
#   demo_stop               stops it (TERM, then KILL after 5 s); safe to call twice
#
# A server that stops early or prints no banner within 120 s is a failure (`fail`), never a skip.

demo_pid=""
demo_base=""

demo_build() {
  echo "==> building portal-invites"
  cargo build --locked -p portal-invites --bin portal-invites
  demo_target_dir=$(cargo metadata --format-version 1 --no-deps --locked \
    | python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')
  demo_bin="$demo_target_dir/debug/portal-invites"
  [ -x "$demo_bin" ] || fail "no binary at $demo_bin after the build"
}

demo_start() {
  local dir=$1
  mkdir -p "$dir"
  # Port 0: the kernel picks a free port; the banner names it and the links use it.
  "$demo_bin" serve --demo --data-dir "$dir/data" --addr 127.0.0.1:0 >"$dir/server.out" 2>"$dir/server.err" &
  demo_pid=$!
  echo "==> started portal-invites serve --demo (pid $demo_pid, data dir $dir/data)"
  for _ in $(seq 1 600); do
    if grep -q '/register?token=' "$dir/server.out" 2>/dev/null; then
      demo_base=$(grep -oE 'listening on http://[^ ]+' "$dir/server.out" | head -n1 | sed 's/^listening on //')
      [ -n "$demo_base" ] || { status=1; fail "no 'listening on' line in the banner"; }
      return 0
    fi
    if ! kill -0 "$demo_pid" 2>/dev/null; then
      cat "$dir/server.err" >&2
      status=1
      fail "the server stopped before it was ready"
    fi
    sleep 0.2
  done
  cat "$dir/server.out" >&2
  tail -n 30 "$dir/server.err" >&2
  status=1
  fail "the server printed no registration link within 120 s (see the banner above)"
}

demo_stop() {
  if [ -n "$demo_pid" ] && kill -0 "$demo_pid" 2>/dev/null; then
    kill -TERM "$demo_pid" 2>/dev/null || true
    for _ in $(seq 1 50); do
      kill -0 "$demo_pid" 2>/dev/null || break
      sleep 0.1
    done
    kill -KILL "$demo_pid" 2>/dev/null || true
    wait "$demo_pid" 2>/dev/null || true
  fi
  demo_pid=""
}
