"""The gRPC resolver's TLS pair, reloaded when its files change (:mod:`sidecar.tls_files`).

gRPC asks :meth:`ReloadingCertificate.fetch` before every new handshake.
"""

from __future__ import annotations

import logging
from typing import Any

import grpc

from sidecar.tls_files import BadPair, LoadedPair, ReloadingPair, load_pair

__all__ = ["BadPair", "LoadedPair", "ReloadingCertificate", "load_pair"]

log = logging.getLogger(__name__)


class ReloadingCertificate(ReloadingPair):
    """The resolver's serving pair, as gRPC's dynamic server credentials."""

    def configuration(self) -> Any:
        return grpc.ssl_server_certificate_configuration(
            [(self.current.key_pem, self.current.cert_pem)]
        )

    def credentials(self) -> Any:
        return grpc.dynamic_ssl_server_credentials(self.configuration(), self.fetch)

    def fetch(self) -> Any:
        """gRPC's hook before each handshake: a new configuration, or None to keep the old."""
        try:
            return self.configuration() if self.reload_if_changed() else None
        except Exception:  # never break a handshake over a reload bug
            log.exception("%s: unexpected error while checking for a new certificate", self.label)
            return None
