# azsidecar-issuer: the OIDC issuer's signing key in Vault's Transit engine, and
# nothing else of Transit. The private key never leaves Vault: no export, no
# backup, no other key. Placeholders: <transit_mount> (default "transit") and
# <issuer_key> (default "azsidecar-issuer"); render with `azsidecar policies render`.
# Give it to the token that signs tokens and rotates the key (the daemon), and to
# whoever runs `azsidecar issuer init` / `export` (export needs only the read).

# Create the key if missing (POST), read its versions' creation times and public keys.
path "<transit_mount>/keys/<issuer_key>" {
  capabilities = ["create", "read", "update"]
}

# Rotation: a new key version, published before it signs.
path "<transit_mount>/keys/<issuer_key>/rotate" {
  capabilities = ["update"]
}

# Retirement: raise min_decryption_version once no live token needs the old versions.
path "<transit_mount>/keys/<issuer_key>/config" {
  capabilities = ["update"]
}

# Signing: RS256 (pkcs1v15 over sha2-256) with a chosen key version.
path "<transit_mount>/sign/<issuer_key>/sha2-256" {
  capabilities = ["update"]
}
