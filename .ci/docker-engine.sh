#!/usr/bin/env bash
# A Docker engine and compose for the compose test (tests/compose), on a fresh
# Debian bookworm machine as root: Debian's docker.io (20.10), docker-compose
# (1.29, compose v1; bookworm has no v2 plugin) and debootstrap (the stand-in
# base images). Idempotent: installs only what is missing, starts dockerd only
# when no engine answers, and waits for its socket.
set -euo pipefail

LOG=${AZSIDECAR_DOCKERD_LOG:-/var/log/azsidecar-dockerd.log}

missing=()
for package in docker.io docker-compose debootstrap; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" \
    || missing+=("$package")
done
if [ "${#missing[@]}" -gt 0 ]; then
  echo "ci: installing ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    "${missing[@]}" >/dev/null
fi

if docker info >/dev/null 2>&1; then
  echo "ci: Docker engine already running"
  exit 0
fi
if [ "$(id -u)" != 0 ]; then
  echo "ci: no Docker engine answers and this is not root: start dockerd first" >&2
  exit 1
fi
echo "ci: starting dockerd (log: $LOG)"
# setsid: dockerd outlives this script, and CI's process group, until the machine stops.
setsid nohup dockerd >>"$LOG" 2>&1 </dev/null &
for _ in $(seq 60); do
  if docker info >/dev/null 2>&1; then
    echo "ci: Docker engine up ($(docker info --format '{{.ServerVersion}}'))"
    exit 0
  fi
  sleep 1
done
echo "ci: dockerd did not answer within 60 s; the end of $LOG:" >&2
tail -30 "$LOG" >&2
exit 1
