"""Certificate credentials as the daemon will make them, for the readers' tests.

An RSA key and a self-signed certificate are made here at test time (no key
is ever committed), bundled as PKCS#12 under a random password, and stored as
a ``credentials/<name>`` version of kind certificate. A run signs in with such
a bundle through MSAL (``client_credential`` with the private key and the
SHA-1 thumbprint, https://msal-python.readthedocs.io/en/latest/#confidentialclientapplication),
as the azurerm provider does with ``ARM_CLIENT_CERTIFICATE_PATH``.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import msal
import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import NameOID

from sidecar.graph import ARM_SCOPE
from sidecar.model import CertificateVersion
from sidecar.sensitive import Sensitive


@dataclass(frozen=True)
class MadeCertificate:
    """A version to store, and the certificate's public part as Graph's ``key`` wants it."""

    version: CertificateVersion
    graph_key: str


def make_certificate(
    *,
    client_id: str,
    tenant_id: str,
    created: datetime,
    lifetime: timedelta = timedelta(days=30),
    key_id: str = "",
    intent_id: str = "",
) -> MadeCertificate:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "azsidecar test run")])
    not_before = created.replace(microsecond=0) - timedelta(minutes=5)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_before + lifetime)
        .sign(key, hashes.SHA256())
    )
    der = cert.public_bytes(serialization.Encoding.DER)
    thumbprint = hashlib.sha1(der).hexdigest().upper()
    password = secrets.token_urlsafe(24)
    bundle = pkcs12.serialize_key_and_certificates(
        b"azsidecar", key, cert, None, serialization.BestAvailableEncryption(password.encode())
    )
    version = CertificateVersion(
        client_id=client_id,
        tenant_id=tenant_id,
        key_id=key_id or f"key-{thumbprint[:8].lower()}",
        thumbprint=thumbprint,
        intent_id=intent_id or f"intent-{thumbprint[:8].lower()}",
        created=created,
        expires=not_before + lifetime,
        pfx=Sensitive(base64.b64encode(bundle).decode()),
        pfx_password=Sensitive(password),
    )
    return MadeCertificate(version, base64.b64encode(der).decode())


def msal_credential(bundle: bytes, password: str) -> dict[str, str]:
    """MSAL's ``client_credential`` from a PKCS#12 bundle: the key in PEM and the thumbprint."""
    key, cert, _ = pkcs12.load_key_and_certificates(bundle, password.encode())
    assert key is not None and cert is not None
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    der = cert.public_bytes(serialization.Encoding.DER)
    return {"private_key": pem, "thumbprint": hashlib.sha1(der).hexdigest()}


def sign_in_and_read_subscription(
    *,
    login_url: str,
    arm_url: str,
    session: requests.Session,
    tenant_id: str,
    client_id: str,
    subscription_id: str,
    bundle: bytes,
    password: str,
) -> tuple[bool, str]:
    """What terraform's azurerm does with a certificate: sign in, then read the subscription."""
    app = msal.ConfidentialClientApplication(
        client_id,
        authority=f"{login_url.rstrip('/')}/{tenant_id}",
        client_credential=msal_credential(bundle, password),
        http_client=session,
        instance_discovery=False,
        token_cache=msal.TokenCache(),
    )
    result: dict[str, Any] = app.acquire_token_for_client(scopes=[ARM_SCOPE])
    if "access_token" not in result:
        return False, f"sign-in: {result.get('error_codes')} {result.get('error_description')}"
    arm = session.get(
        f"{arm_url}/subscriptions/{subscription_id}",
        params={"api-version": "2022-12-01"},
        headers={"Authorization": f"Bearer {result['access_token']}"},
        timeout=10,
    )
    if arm.status_code != 200:
        return False, f"ARM {arm.status_code} {arm.text[:120]}"
    return True, ""
