# OpenBao from its official image, with the azsidecar plugin in its plugin
# directory. The plugin is Python, so the image also gets python3 and the
# package; `azsidecar plugin install` writes the wrapper OpenBao executes.
#
# HashiCorp Vault variant: replace the FROM line with
#   FROM hashicorp/vault:1.21
# (also Alpine-based); the rest is the same, the plugin speaks the same
# protocol (not run here: only OpenBao is tested).
FROM openbao/openbao:2.7.2

RUN apk add --no-cache python3 py3-pip
COPY pyproject.toml README.md /src/
COPY sidecar /src/sidecar
COPY policies /src/policies
COPY vault-config /src/vault-config
RUN python3 -m venv /opt/azsidecar \
 && /opt/azsidecar/bin/pip install --no-cache-dir -e /src \
 && ln -s /opt/azsidecar/bin/azsidecar /usr/local/bin/azsidecar \
 && mkdir -p /openbao/plugins \
 && azsidecar plugin install --plugin-dir /openbao/plugins > /openbao/plugins/REGISTER \
 && chown -R openbao:openbao /openbao/plugins
# The official entrypoint starts `bao` as the unprivileged openbao user.
