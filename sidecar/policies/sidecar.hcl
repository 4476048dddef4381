# azsidecar-sidecar: the rotation daemon (and the resolver it may embed).
# Everything under its own KV prefix and nothing else. Placeholders:
# <kv_mount> (default "secret") and <prefix> (default "azsidecar");
# render with `azsidecar policies render`.

# Secret data: write versions with check-and-set, read them back.
path "<kv_mount>/data/<prefix>/*" {
  capabilities = ["create", "read", "update", "delete"]
}

# Key metadata: the custom_metadata index of live secrets, listing, removal.
path "<kv_mount>/metadata/<prefix>/*" {
  capabilities = ["create", "read", "update", "delete", "list"]
}

# Soft-delete and destroy of expired secret versions.
path "<kv_mount>/delete/<prefix>/*" {
  capabilities = ["update"]
}

path "<kv_mount>/destroy/<prefix>/*" {
  capabilities = ["update"]
}

# The token's own life cycle: looked up after login, renewed at 2/3 of its TTL. Vault's
# default policy grants both, but a role may leave the default policy out.
path "auth/token/lookup-self" {
  capabilities = ["read"]
}

path "auth/token/renew-self" {
  capabilities = ["update"]
}
