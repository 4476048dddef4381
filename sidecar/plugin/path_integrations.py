"""``integrations/`` (list) and ``integrations/<name>`` (read), read-only."""

from __future__ import annotations

from typing import TYPE_CHECKING

from sidecar.errors import VaultNotFound
from sidecar.plugin.framework import (
    Field,
    FieldData,
    FieldType,
    Op,
    Path,
    Request,
    Response,
    list_response,
)
from sidecar.plugin.names import check_name, public_fields

if TYPE_CHECKING:
    from sidecar.plugin.backend import AzureBackend


def path_integrations(backend: AzureBackend) -> list[Path]:
    async def list_integrations(request: Request, data: FieldData) -> Response | None:
        keys = await backend.with_kv(lambda kv: kv.list("integrations"))
        return list_response(keys)

    async def read_integration(request: Request, data: FieldData) -> Response | None:
        name = check_name(data.get("name"), "integration")
        try:
            version = await backend.with_kv(lambda kv: kv.read(f"integrations/{name}"))
        except VaultNotFound:
            return None
        return Response(data={"name": name, **public_fields(version.data)})

    return [
        Path(
            pattern=r"integrations/?",
            fields={},
            operations={Op.LIST: list_integrations},
            synopsis="List the Azure integrations.",
            description="The names of the integrations (Entra ID applications) the sidecar keeps.",
        ),
        Path(
            pattern=r"integrations/(?P<name>[^/]+)",
            fields={"name": Field(FieldType.STRING, "Name of the integration.")},
            operations={Op.READ: read_integration},
            synopsis="An integration's tenant, subscription, application and consent state.",
            description="""
What the sidecar knows about the integration's Entra ID application. Never
shows a secret: the client secrets are only ever handed out by creds/.
""",
        ),
    ]
