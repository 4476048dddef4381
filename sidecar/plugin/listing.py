"""Read-only list and read paths over one KV folder of the product (stacks, integrations).

Both folders are shaped alike: a list of names and one record per name, shown
without any field that looks secret.
"""

from __future__ import annotations

from dataclasses import dataclass

from sidecar.answers import check_name
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
from sidecar.plugin.mount import KVMount
from sidecar.plugin.names import public_fields
from sidecar.store import RecordFolder, Store


@dataclass(frozen=True)
class ListingHelp:
    folder: RecordFolder  # the KV folder and the path prefix, e.g. "stacks"
    noun: str  # for messages, e.g. "stack"
    list_synopsis: str
    list_description: str
    read_synopsis: str
    read_description: str


def listing_paths(backend: KVMount, text: ListingHelp) -> list[Path]:
    folder = text.folder

    async def list_names(request: Request, data: FieldData) -> Response | None:
        keys = await backend.with_kv(lambda kv: Store(kv).keys(folder))
        return list_response(keys)

    async def read_one(request: Request, data: FieldData) -> Response | None:
        name = check_name(data.get("name"), text.noun)
        try:
            stored = await backend.with_kv(lambda kv: Store(kv).record_data(folder, name))
        except VaultNotFound:
            return None
        return Response(data={"name": name, **public_fields(stored)})

    return [
        Path(
            pattern=rf"{folder}/?",
            fields={},
            operations={Op.LIST: list_names},
            synopsis=text.list_synopsis,
            description=text.list_description,
        ),
        Path(
            pattern=rf"{folder}/(?P<name>[^/]+)",
            fields={"name": Field(FieldType.STRING, f"Name of the {text.noun}.")},
            operations={Op.READ: read_one},
            synopsis=text.read_synopsis,
            description=text.read_description,
        ),
    ]
