"""The go-plugin handshake: checks on the environment OpenBao starts us with,
and the one line we answer with on stdout.

OpenBao (and Vault) start a plugin with a magic cookie, the protocol versions
they accept and, with AutoMTLS, their own client certificate. The plugin
answers ``CORE|APP|NETWORK|ADDRESS|PROTOCOL|CERT``: core protocol 1, backend
protocol 5, a unix socket, ``grpc``, and its certificate as unpadded base64 DER.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping

from sidecar.errors import SidecarError

COOKIE_KEY = "VAULT_BACKEND_PLUGIN"
COOKIE_VALUE = "6669da05-b1c8-4f49-97d9-c8e5bed98e20"
CORE_PROTOCOL_VERSION = 1
BACKEND_PROTOCOL_VERSION = 5
_METADATA_MODE_KEYS = ("BAO_PLUGIN_METADATA_MODE", "VAULT_PLUGIN_METADATA_MODE")


class HandshakeError(SidecarError):
    """OpenBao did not start the plugin the way this plugin can serve."""


def check_environment(env: Mapping[str, str]) -> str:
    """Validate the start-up environment; return OpenBao's client certificate (PEM)."""
    if env.get(COOKIE_KEY) != COOKIE_VALUE:
        raise HandshakeError(
            "this program is an OpenBao/Vault secrets-engine plugin: register it with"
            " `bao plugin register` and let the server start it (see `azsidecar plugin install`)"
        )
    if any(env.get(key, "").lower() == "true" for key in _METADATA_MODE_KEYS):
        raise HandshakeError(
            "started in plugin metadata mode, which this plugin does not support:"
            " it needs protocol version 5 with AutoMTLS (OpenBao >= 2.0)"
        )
    offered = [v.strip() for v in env.get("PLUGIN_PROTOCOL_VERSIONS", "").split(",")]
    if str(BACKEND_PROTOCOL_VERSION) not in offered:
        raise HandshakeError(
            f"the server offers plugin protocol versions {offered!r}; this plugin speaks only"
            f" version {BACKEND_PROTOCOL_VERSION}: upgrade OpenBao/Vault"
        )
    client_cert = env.get("PLUGIN_CLIENT_CERT", "")
    if "BEGIN CERTIFICATE" not in client_cert:
        raise HandshakeError(
            "no PLUGIN_CLIENT_CERT: the server must run plugins with AutoMTLS,"
            " which this plugin requires to authenticate its caller"
        )
    return client_cert


def handshake_line(socket_path: str, server_cert_der: bytes) -> str:
    """The line go-plugin's client reads from our stdout to find and trust us."""
    cert = base64.b64encode(server_cert_der).decode("ascii").rstrip("=")
    return f"{CORE_PROTOCOL_VERSION}|{BACKEND_PROTOCOL_VERSION}|unix|{socket_path}|grpc|{cert}"
