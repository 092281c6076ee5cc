#!/usr/bin/env bash
# The include layering the build relies on (DESIGN.md, "Layout"):
#   base/     includes only base/ (process plumbing, locking);
#   rpc/      base/ and generated protos: what the daemons and the clients share on the wire;
#   core/     no gRPC: never rpc/, server/ or clients/;
#   server/   never clients/;   clients/   never server/.
# Usage: layering_test.sh ROOT   checks the tree at ROOT (exit 1 and one line per violation);
#        layering_test.sh --self-test   checks that a planted violation of each rule is found.
set -euo pipefail

check() {
  local root="$1" failed=0 dir forbidden hits
  while read -r dir forbidden; do
    [ -d "$root/$dir" ] || continue
    hits="$(grep -rnE --include='*.h' --include='*.cc' "^[[:space:]]*#[[:space:]]*include[[:space:]]+\"($forbidden)/" \
      "$root/$dir" || true)"
    if [ -n "$hits" ]; then
      echo "layering: $dir/ must not include $forbidden/:" >&2
      echo "$hits" | sed "s#^$root/#  #" >&2
      failed=1
    fi
  done <<'RULES'
base rpc|core|server|clients
rpc core|server|clients
core rpc|server|clients
server clients
clients server
RULES
  return "$failed"
}

if [ "${1:-}" = --self-test ]; then
  tmp="$(mktemp -d)"
  trap 'rm -rf "$tmp"' EXIT
  for rule in "base server" "rpc clients" "core rpc" "server clients" "clients server"; do
    set -- $rule
    rm -rf "${tmp:?}"/*
    mkdir -p "$tmp/$1"
    printf '#include "%s/x.h"\n' "$2" >"$tmp/$1/planted.h"
    if check "$tmp" 2>/dev/null; then
      echo "layering self-test: $1/ including $2/ was not reported" >&2
      exit 1
    fi
  done
  # And a clean tree passes.
  rm -rf "${tmp:?}"/*
  mkdir -p "$tmp/clients" && printf '#include "rpc/auth.h"\n' >"$tmp/clients/ok.h"
  check "$tmp"
  echo "layering self-test: every planted violation reported"
  exit 0
fi

check "${1:?usage: layering_test.sh ROOT | --self-test}"
echo "layering: no forbidden includes under ${1}"
