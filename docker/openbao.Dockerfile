# OpenBao from its official image, with the azsidecar plugin in its plugin
# directory. The plugin is Python, so the image also gets python3 and the
# package; `azsidecar plugin install` writes the wrapper OpenBao executes, and
# the bootstrap registers the SHA-256 of that very file.
#
# Only OpenBao is shipped and tested: HashiCorp Vault's image has a `vault`
# user and binary, /vault paths and `vault agent`, so it is not a FROM-line swap.
FROM openbao/openbao:2.7.2

# The official image ends with `USER openbao` (since 2.6.0); apk needs root.
USER root
RUN apk add --no-cache python3 py3-pip
COPY pyproject.toml README.md /src/
COPY sidecar /src/sidecar
COPY vault-config /src/vault-config
# The plugin directory holds only the plugin: `bao server -dev -dev-plugin-dir`
# registers every file in it. The wrapper is root's, so OpenBao cannot change it.
# /run/runner is the example runner's scratch directory (it runs as openbao).
RUN python3 -m venv /opt/azsidecar \
 && /opt/azsidecar/bin/pip install --no-cache-dir -e /src \
 && ln -s /opt/azsidecar/bin/azsidecar /usr/local/bin/azsidecar \
 && mkdir -p /openbao/plugins \
 && azsidecar plugin install --plugin-dir /openbao/plugins \
 && mkdir -p /run/runner /run/ci-jwt \
 && chown openbao:openbao /run/runner /run/ci-jwt \
 && chmod 0700 /run/runner
USER openbao
