# Vault / OpenBao Agent for a CI runner: log in with the run's JWT and render
# the ARM_* variables of the run's stack and phase into an env file only the
# runner's user can read, and a certificate credential's PKCS#12 bundle into a
# file beside it (empty while the integration hands out a client secret), and a
# federated credential's token into oidc-token (empty for the other kinds).
# /run/azsidecar/ must be a directory only the runner's user can enter (0700). The run sets AZSIDECAR_STACK and AZSIDECAR_PHASE in
# the agent's environment; the runner policy admits no other stack or phase.

vault {
  address = "https://vault.internal:8200"
}

auto_auth {
  method "jwt" {
    mount_path = "auth/jwt"
    config = {
      path                     = "/run/azsidecar/ci.jwt"
      role                     = "azsidecar-runner"
      remove_jwt_after_reading = false
    }
  }
}

template_config {
  exit_on_retry_failure = true
}

template {
  source               = "/etc/azsidecar/agent/arm-env.ctmpl"
  destination          = "/run/azsidecar/arm.env"
  perms                = "0600"
  error_on_missing_key = true
}

template {
  source               = "/etc/azsidecar/agent/arm-certificate.ctmpl"
  destination          = "/run/azsidecar/client-certificate.pfx"
  perms                = "0600"
  error_on_missing_key = true
}

template {
  source               = "/etc/azsidecar/agent/arm-oidc.ctmpl"
  destination          = "/run/azsidecar/oidc-token"
  perms                = "0600"
  error_on_missing_key = true
}
