# The example runner's Vault Agent: vault-config/agent.hcl with the compose
# addresses and paths, rendering once (exit_after_auth) for one run.
vault {
  address = "http://openbao:8200"
}

auto_auth {
  method "jwt" {
    mount_path = "auth/jwt"
    config = {
      path                     = "/run/ci-jwt/ci.jwt"
      role                     = "azsidecar-runner"
      remove_jwt_after_reading = false
    }
  }
}

template_config {
  exit_on_retry_failure = true
}

template {
  source               = "/src/vault-config/arm-env.ctmpl"
  destination          = "/run/runner/arm.env"
  perms                = "0600"
  error_on_missing_key = true
}

exit_after_auth = true
