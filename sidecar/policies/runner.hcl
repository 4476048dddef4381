# azsidecar-runner: a CI run reads exactly one credential, the one its JWT
# names. The CI platform signs a JWT with "stack" and "phase" claims; the JWT
# role's claim_mappings copy them into the entity alias' metadata, and this
# one templated path admits that stack and phase only. The same path governs
# the plugin (a read of it) and the gRPC resolver (which checks the runner's
# token with sys/capabilities-self on it).
#
# Placeholders: <creds_mount> (the plugin's mount, default "azsidecar") and
# <jwt_accessor> (`bao auth list -format=json | jq -r '."jwt/".accessor'`).
# Render with `azsidecar policies render --jwt-accessor ...`.

path "<creds_mount>/creds/{{identity.entity.aliases.<jwt_accessor>.metadata.stack}}/{{identity.entity.aliases.<jwt_accessor>.metadata.phase}}" {
  capabilities = ["read"]
}
