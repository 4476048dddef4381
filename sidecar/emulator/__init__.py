"""Entra ID / Microsoft Graph / ARM emulator with replication lag; imports nothing from sidecar.

Public surface: ``EmulatorServer``, ``EmulatorConfig``, ``EmulatorState`` (``server.state``),
``Clock``, ``LagProfile``, ``ThrottleConfig``, ``generate_client_certificate``.
"""

from sidecar.emulator.clock import Clock
from sidecar.emulator.replicas import PROFILES, LagProfile
from sidecar.emulator.seeding import MANAGEMENT_ROLE, AdminError, SeededApp
from sidecar.emulator.server import EmulatorConfig, EmulatorServer
from sidecar.emulator.state import EmulatorState
from sidecar.emulator.throttle import ThrottleConfig
from sidecar.emulator.tls import ClientCertificate, generate_client_certificate

__all__ = [
    "MANAGEMENT_ROLE",
    "PROFILES",
    "AdminError",
    "ClientCertificate",
    "Clock",
    "EmulatorConfig",
    "EmulatorServer",
    "EmulatorState",
    "LagProfile",
    "SeededApp",
    "ThrottleConfig",
    "generate_client_certificate",
]
