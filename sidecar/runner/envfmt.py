"""The credential as a run consumes it: ``ARM_*`` variables for Terraform's azurerm provider.

A client secret is ``ARM_CLIENT_SECRET``. A certificate is a PKCS#12 bundle
with ``ARM_CLIENT_CERTIFICATE_PASSWORD``, given either in base64 as
``ARM_CLIENT_CERTIFICATE`` (what ``azsidecar creds`` prints) or as a file in
``ARM_CLIENT_CERTIFICATE_PATH`` (what ``azsidecar exec`` gives its child).
The provider reads ``ARM_CLIENT_CERTIFICATE`` only since its ``client_certificate``
property was added (hashicorp/terraform-provider-azurerm pull request 20320,
February 2023, in the 3.x line; issue 17741 found 3.15.0 without it), while
``ARM_CLIENT_CERTIFICATE_PATH`` is read by every version: see
https://registry.terraform.io/providers/hashicorp/azurerm/latest/docs/guides/service_principal_client_certificate

A federated credential (issue 18) is ``ARM_USE_OIDC=true`` with the signed
token in ``ARM_OIDC_TOKEN``, beside ``ARM_CLIENT_ID``, ``ARM_TENANT_ID`` and
``ARM_SUBSCRIPTION_ID``: the provider's guide "Authenticating using a Service
Principal and OpenID Connect"
(https://registry.terraform.io/providers/hashicorp/azurerm/latest/docs/guides/service_principal_oidc);
the same five names are what Pulumi ESC's azure-login provider sets for the
azurerm-compatible providers (https://www.pulumi.com/docs/esc/providers/login/azure-login/).
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import shlex
from typing import Literal

from sidecar.answers import ClientCertificate, ResolvedCredential
from sidecar.errors import InputError

Format = Literal["env", "dotenv", "json"]

#: Characters a value may hold in ``env`` and ``dotenv`` output. Every field is a GUID,
#: an Azure client secret (letters, digits, ``~._-``), base64 or a path we made, so
#: anything else means a record
#: that was altered: it is refused, not escaped, because each consumer of these files
#: (``eval``, ``set -a; . file``, ``docker --env-file``, dotenv libraries) unquotes
#: differently.
_SAFE = re.compile(r"[A-Za-z0-9._~+/=-]*")


def _checked(name: str, value: str) -> str:
    if not _SAFE.fullmatch(value):
        raise InputError(
            f"{name} holds characters that are unsafe in shell or dotenv output;"
            " the stored record was altered: ask an operator to correct it"
            " (or use --format json)"
        )
    return value


def arm_variables(cred: ResolvedCredential, certificate_path: str | None = None) -> dict[str, str]:
    """``ARM_SUBSCRIPTION_ID`` is left out when neither stack nor integration names one.

    A certificate is given in base64 (``ARM_CLIENT_CERTIFICATE``), or as the
    file at ``certificate_path`` (``ARM_CLIENT_CERTIFICATE_PATH``) when one is given;
    a federated token as ``ARM_USE_OIDC=true`` and ``ARM_OIDC_TOKEN``.
    """
    env = {"ARM_CLIENT_ID": cred.client_id}
    if cred.federated is not None:
        env["ARM_USE_OIDC"] = "true"
        env["ARM_OIDC_TOKEN"] = cred.federated.token.reveal()
    elif cred.certificate is None:
        env["ARM_CLIENT_SECRET"] = cred.client_secret.reveal()
    elif certificate_path is None:
        env["ARM_CLIENT_CERTIFICATE"] = cred.certificate.bundle.reveal()
    else:
        env["ARM_CLIENT_CERTIFICATE_PATH"] = certificate_path
    if cred.certificate is not None:
        env["ARM_CLIENT_CERTIFICATE_PASSWORD"] = cred.certificate.password.reveal()
    env["ARM_TENANT_ID"] = cred.tenant_id
    if cred.subscription_id:
        env["ARM_SUBSCRIPTION_ID"] = cred.subscription_id
    return env


def pkcs12_bytes(certificate: ClientCertificate) -> bytes:
    """The bundle's bytes; a bundle that is not base64 is refused without showing it."""
    try:
        return base64.b64decode(certificate.bundle.reveal(), validate=True)
    except (binascii.Error, ValueError):
        raise InputError(
            "client_certificate is not base64; the stored record was altered:"
            " ask an operator to correct it"
        ) from None


def _dotenv_value(name: str, value: str) -> str:
    """Bare, as every dotenv reader takes it; single-quoted only when it starts with ``~``,
    which ``set -a; . file`` would otherwise expand to a home directory."""
    value = _checked(name, value)
    return f"'{value}'" if value.startswith("~") else value


def render(cred: ResolvedCredential, fmt: Format) -> str:
    """``env``: shell ``export`` lines for ``eval``; ``dotenv``: KEY='value' lines; ``json``:
    the same fields as the plugin's ``creds`` response (JSON-escaped, ASCII only)."""
    if fmt == "json":
        return json.dumps(cred.to_data(), indent=2) + "\n"
    variables = arm_variables(cred)
    if fmt == "env":
        return "".join(f"export {k}={shlex.quote(_checked(k, v))}\n" for k, v in variables.items())
    return "".join(f"{k}={_dotenv_value(k, v)}\n" for k, v in variables.items())
