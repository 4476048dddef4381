#!/bin/sh
# An example CI run: the CI platform signs a JWT for stack/phase, Vault Agent
# logs in with it and renders ARM_* with the shipped template, and the "run"
# signs in to Azure (the emulator) and reads its subscription, as terraform would.
set -eu
PY=/opt/azsidecar/bin/python  # the venv with azsidecar, PyJWT and requests
STACK=${AZSIDECAR_STACK:-example}
PHASE=${AZSIDECAR_PHASE:-plan}
export AZSIDECAR_STACK="$STACK" AZSIDECAR_PHASE="$PHASE"
umask 077
mkdir -p /run/runner

# 1. The CI platform's part (in production the platform signs this, not the runner).
"$PY" - "$STACK" "$PHASE" > /run/runner/ci.jwt <<'PY'
import sys, time, jwt
stack, phase = sys.argv[1], sys.argv[2]
key = open("/run/azsidecar/ci-issuer.pem").read()
now = int(time.time())
print(jwt.encode({"iss": "https://ci.example/compose", "sub": f"{stack}:{phase}",
                  "aud": "azsidecar", "iat": now, "nbf": now - 5, "exp": now + 300,
                  "stack": stack, "phase": phase, "stack_phase": f"{stack}:{phase}"},
                 key, algorithm="RS256"))
PY

# 2. Vault Agent renders the credential; a brand-new secret is not ready yet
#    (propagation delay), so try again until it is.
for attempt in 1 2 3 4 5 6 7 8 9 10; do
  if bao agent -config=/etc/azsidecar/runner-agent.hcl >/run/runner/agent.log 2>&1 \
     && [ -s /run/runner/arm.env ]; then
    break
  fi
  echo "credential not ready yet (attempt $attempt); retrying in 30 s"
  sleep 30
done
[ -s /run/runner/arm.env ] || { tail -20 /run/runner/agent.log; exit 1; }

# 3. The run: sign in with the secret and read the subscription through ARM.
set -a; . /run/runner/arm.env; set +a
"$PY" - <<'PY'
import os, requests
s = requests.Session(); s.verify = "/emulator-ca/ca.pem"
t = s.post(f"https://emulator:8443/{os.environ['ARM_TENANT_ID']}/oauth2/v2.0/token", data={
    "grant_type": "client_credentials", "client_id": os.environ["ARM_CLIENT_ID"],
    "client_secret": os.environ["ARM_CLIENT_SECRET"],
    "scope": "https://management.azure.com/.default"}, timeout=30)
t.raise_for_status()
sub = os.environ["ARM_SUBSCRIPTION_ID"]
r = s.get(f"https://emulator:8443/arm/subscriptions/{sub}", params={"api-version": "2022-12-01"},
          headers={"Authorization": "Bearer " + t.json()["access_token"]}, timeout=30)
r.raise_for_status()
print(f"run ok: signed in as {os.environ['ARM_CLIENT_ID']}, subscription {r.json()['displayName']}")
PY
