# azsidecar-operator: manage stacks and see integrations and the timing of
# their secrets, but never read a secret value (client secrets, the
# management certificate's private key). Creating and deleting integrations
# needs the management identity, so run `azsidecar integration create/delete`
# where the sidecar policy is (e.g. inside the daemon's container).
# Placeholders: <kv_mount>, <prefix>.

# Stacks: attach and detach integrations.
path "<kv_mount>/data/<prefix>/stacks/*" {
  capabilities = ["create", "read", "update", "delete"]
}

# Integration records hold ids and consent state, no secrets. Read only: the
# daemon, the plugin and the resolver trust these records (tenant, client id),
# and only `integration create` (sidecar policy) writes them.
path "<kv_mount>/data/<prefix>/integrations/*" {
  capabilities = ["read"]
}

# Metadata everywhere under the prefix: listing, versions, the secrets'
# created/expires index. Metadata never holds a secret value.
path "<kv_mount>/metadata/<prefix>/*" {
  capabilities = ["read", "list"]
}

path "<kv_mount>/metadata/<prefix>/stacks/*" {
  capabilities = ["read", "list", "delete"]
}

# Never the data of a secret, whatever other policy the token carries.
path "<kv_mount>/data/<prefix>/credentials/*" {
  capabilities = ["deny"]
}

path "<kv_mount>/data/<prefix>/management/*" {
  capabilities = ["deny"]
}
