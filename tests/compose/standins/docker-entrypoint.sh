#!/bin/sh
# Stand-in for the official OpenBao image's entrypoint (the parts compose uses).
set -e
ulimit -c 0
BAO_CONFIG_DIR=/openbao/config
case "${1:-}" in
  -*) set -- bao "$@" ;;
  server)
    shift
    set -- bao server \
      -config="$BAO_CONFIG_DIR" \
      -dev-root-token-id="$BAO_DEV_ROOT_TOKEN_ID" \
      -dev-listen-address="${BAO_DEV_LISTEN_ADDRESS:-0.0.0.0:8200}" \
      "$@"
    ;;
  version|agent|read|write|login|plugin|secrets|status) set -- bao "$@" ;;
esac
if [ "${1:-}" = bao ] && [ "$(id -u)" = 0 ]; then
  set -- setpriv --reuid=openbao --regid=openbao --init-groups "$@"
fi
exec "$@"
