#!/usr/bin/env bash
# The system tools netfast's tests and benchmarks drive, installed from Debian's packages when
# missing.  `make test` and `.ci/run` both call this one script, so the two cannot drift apart.
#
#   scripts/system-deps.sh           install what is missing (as root, with apt-get)
#   scripts/system-deps.sh --check   only say what is missing (exit 0 either way)
#
# Not root, or no apt-get: nothing is installed; one line says what is missing, and the tests
# that need it skip with that reason (pytest's summary lists the skipped groups at the end).
# Exit status: 0 when everything is present afterwards, 1 when an install was tried and failed.
set -uo pipefail

# command  Debian package
TOOLS="
ip       iproute2
ping     iputils-ping
curl     curl
ethtool  ethtool
make     make
wrk      wrk
nginx    nginx-light
trafgen  netsniff-ng
java     default-jre-headless
"

missing_pkgs=()
missing_cmds=()
while read -r cmd pkg; do
  [ -z "${cmd:-}" ] && continue
  if ! command -v "$cmd" >/dev/null 2>&1; then
    missing_cmds+=("$cmd")
    missing_pkgs+=("$pkg")
  fi
done <<< "$TOOLS"

[ "${#missing_pkgs[@]}" -eq 0 ] && exit 0

if [ "${1:-}" = "--check" ]; then
  echo "system-deps: missing ${missing_cmds[*]} (Debian packages: ${missing_pkgs[*]})"
  exit 0
fi

if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null 2>&1; then
  why="not root"
  [ "$(id -u)" -eq 0 ] && why="no apt-get"
  echo "system-deps: $why, not installing ${missing_pkgs[*]} (for ${missing_cmds[*]});" \
       "the tests that need them will skip"
  exit 0
fi

echo "system-deps: installing ${missing_pkgs[*]}"
export DEBIAN_FRONTEND=noninteractive
if ! apt-get update -q >/tmp/netfast-apt-update.log 2>&1; then
  echo "system-deps: apt-get update failed (see /tmp/netfast-apt-update.log)" >&2
  exit 1
fi
# Packages such as nginx-light start their service on install; the tests start their own
# servers on loopback, so forbid service starts for the duration (policy-rc.d, exit 101).
policy=/usr/sbin/policy-rc.d
own_policy=0
if [ ! -e "$policy" ]; then
  printf '#!/bin/sh\nexit 101\n' > "$policy" && chmod +x "$policy" && own_policy=1
fi
apt-get install -y -q --no-install-recommends "${missing_pkgs[@]}" \
  >/tmp/netfast-apt-install.log 2>&1
rc=$?
[ "$own_policy" -eq 1 ] && rm -f "$policy"
if [ "$rc" -ne 0 ]; then
  echo "system-deps: apt-get install ${missing_pkgs[*]} failed (see /tmp/netfast-apt-install.log)" >&2
  exit 1
fi
still=()
for cmd in "${missing_cmds[@]}"; do
  command -v "$cmd" >/dev/null 2>&1 || still+=("$cmd")
done
if [ "${#still[@]}" -gt 0 ]; then
  echo "system-deps: still missing after the install: ${still[*]}" >&2
  exit 1
fi
echo "system-deps: installed ${missing_pkgs[*]}"
