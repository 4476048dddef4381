"""``stacks/`` (list) and ``stacks/<name>`` (read): a stack's attachments, read-only."""

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


def path_stacks(backend: AzureBackend) -> list[Path]:
    async def list_stacks(request: Request, data: FieldData) -> Response | None:
        keys = await backend.with_kv(lambda kv: kv.list("stacks"))
        return list_response(keys)

    async def read_stack(request: Request, data: FieldData) -> Response | None:
        name = check_name(data.get("name"), "stack")
        try:
            version = await backend.with_kv(lambda kv: kv.read(f"stacks/{name}"))
        except VaultNotFound:
            return None
        return Response(data={"name": name, **public_fields(version.data)})

    return [
        Path(
            pattern=r"stacks/?",
            fields={},
            operations={Op.LIST: list_stacks},
            synopsis="List the stacks known to the sidecar.",
            description="The names of the stacks that have integrations attached.",
        ),
        Path(
            pattern=r"stacks/(?P<name>[^/]+)",
            fields={"name": Field(FieldType.STRING, "Name of the stack.")},
            operations={Op.READ: read_stack},
            synopsis="A stack's read (plan) and write (apply) integrations.",
            description="""
Shows which integration serves phase plan (read) and phase apply (write), and
the subscription override if any. Never shows a secret.
""",
        ),
    ]
