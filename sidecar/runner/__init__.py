"""The runner helper: log in to Vault, fetch the ready credential, print it or run a command.

How the credential is reached (:mod:`sidecar.runner.source`): through the
secrets-engine plugin's path ``<mount>/creds/<stack>/<phase>`` when the plugin
is mounted, else through the gRPC resolver. Either way the runner's own Vault
token is what is authorised, against that same path.
"""
