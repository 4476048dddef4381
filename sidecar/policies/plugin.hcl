# azsidecar-plugin: the token the secrets-engine plugin and the gRPC resolver
# read the product's KV data with. Read-only: stacks, integrations, and the
# credentials' data and metadata (the index of live secrets). Callers are
# authorised separately, with their own token, on <creds_mount>/creds/...
# Placeholders: <kv_mount>, <prefix>, and the issuer's <transit_mount> and
# <issuer_key> (defaults "transit" and "azsidecar-issuer").

path "<kv_mount>/data/<prefix>/stacks/*" {
  capabilities = ["read"]
}

path "<kv_mount>/data/<prefix>/integrations/*" {
  capabilities = ["read"]
}

path "<kv_mount>/data/<prefix>/credentials/*" {
  capabilities = ["read"]
}

path "<kv_mount>/metadata/<prefix>/credentials/*" {
  capabilities = ["read"]
}

# Listing stacks and integrations (the plugin's stacks/ and integrations/).
path "<kv_mount>/metadata/<prefix>/stacks/*" {
  capabilities = ["list"]
}

path "<kv_mount>/metadata/<prefix>/integrations/*" {
  capabilities = ["list"]
}

# The token's own life cycle: looked up after login, renewed at 2/3 of its TTL. Vault's
# default policy grants both, but a role may leave the default policy out.
path "auth/token/lookup-self" {
  capabilities = ["read"]
}

path "auth/token/renew-self" {
  capabilities = ["update"]
}

# The caller's own login (its token metadata, fixed at login), by the accessor
# OpenBao hands the plugin with each request: a token may read only the stack
# and phase its login names, even when the entity alias (which the latest
# login sharing the JWT's user claim rewrites) names another. This reveals
# tokens' metadata and policies, never a token.
path "auth/token/lookup-accessor" {
  capabilities = ["update"]
}

# Federated credentials (issue 18): a run's token is signed at read time with the
# OIDC issuer's Transit key. Read the key (its versions' creation times and public
# keys, to sign only with a version published long enough) and sign with it:
# Transit's sign endpoint is sign/:name(/:hash_algorithm) under its mount, and the
# issuer signs RS256 over sha2-256 only. No create, rotate, config or export: the
# daemon owns the key (the issuer policy).
path "<transit_mount>/keys/<issuer_key>" {
  capabilities = ["read"]
}

path "<transit_mount>/sign/<issuer_key>/sha2-256" {
  capabilities = ["update"]
}
