#!/bin/sh
# JWT auth for CI runners. Run once per cluster with an admin token in
# BAO_TOKEN / VAULT_TOKEN. Either point Vault at the CI platform's keys
# (JWKS_URL or OIDC_DISCOVERY_URL) or give a PEM public key (JWT_PUBKEY_FILE).
set -eu
BAO=${BAO:-bao}
KV_MOUNT=${KV_MOUNT:-secret}
PREFIX=${PREFIX:-azsidecar}
CREDS_MOUNT=${CREDS_MOUNT:-azsidecar}
HERE=$(dirname "$0")

# Servers without the identity-template wildcard guard (OpenBao < 2.6.1,
# Vault < 1.20) render a JWT "stack" claim of "+" as a path matching every
# stack. The plugin and the resolver refuse such reads by the token's own
# login anyway; set ALLOW_UNGUARDED_SERVER=1 to go on with an older server.
if ! "$BAO" status -format=json 2>/dev/null | python3 -c '
import json, re, sys
version = str(json.load(sys.stdin).get("version", ""))
found = re.match(r"v?(\d+)\.(\d+)\.(\d+)", version)
parsed = tuple(int(x) for x in found.groups()) if found else None
need = (2, 6, 1) if parsed and parsed[0] >= 2 else (1, 20, 0)
shown = version or "unknown"
if parsed is None or parsed < need:
    sys.exit(f"server version {shown} does not reject wildcards in"
             " policy template values (need OpenBao >= 2.6.1 or Vault >= 1.20)")
'; then
  if [ "${ALLOW_UNGUARDED_SERVER:-}" != 1 ]; then
    echo "refusing: upgrade the server, or set ALLOW_UNGUARDED_SERVER=1" >&2
    exit 1
  fi
  echo "warning: going on with an unguarded server (ALLOW_UNGUARDED_SERVER=1)" >&2
fi

"$BAO" auth enable jwt 2>/dev/null || echo "jwt/ already enabled"
if [ -n "${OIDC_DISCOVERY_URL:-}" ]; then
  "$BAO" write auth/jwt/config oidc_discovery_url="$OIDC_DISCOVERY_URL"
elif [ -n "${JWKS_URL:-}" ]; then
  "$BAO" write auth/jwt/config jwks_url="$JWKS_URL"
else
  "$BAO" write auth/jwt/config jwt_validation_pubkeys=@"${JWT_PUBKEY_FILE:?set JWKS_URL, OIDC_DISCOVERY_URL or JWT_PUBKEY_FILE}"
fi
# The role's user_claim is "stack_phase", which the CI platform sets to
# "<stack>:<phase>" (beside the "stack" and "phase" claims): unique per stack
# and phase by construction, so two runs never share an entity alias (whose
# metadata the runner policy reads and the latest login rewrites). CI "sub"
# values are not unique per phase; do not use them as user_claim. The plugin
# and the resolver also check each token's own login, whatever the claim.
"$BAO" write auth/jwt/role/azsidecar-runner @"$HERE/runner-role.json"

ACCESSOR=$("$BAO" auth list -format=json | python3 -c 'import json,sys; print(json.load(sys.stdin)["jwt/"]["accessor"])')
OUT=$(mktemp -d)
azsidecar policies render --jwt-accessor "$ACCESSOR" --kv-mount "$KV_MOUNT" \
  --prefix "$PREFIX" --creds-mount "$CREDS_MOUNT" --out "$OUT" >/dev/null
for name in sidecar runner operator plugin; do
  "$BAO" policy write "azsidecar-$name" "$OUT/azsidecar-$name.hcl"
done
rm -rf "$OUT"
