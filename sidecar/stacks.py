"""Attaching integrations to stacks: which one a plan run and an apply run use.

Every change is a check-and-set on ``stacks/<stack>``, retried a few times on
a lost race, so two operators editing one stack never lose each other's
change. A stack with nothing attached is removed.
"""

from __future__ import annotations

from dataclasses import replace

from sidecar.answers import check_name
from sidecar.errors import InputError, NotFoundError, VaultConflict, VaultNotFound
from sidecar.integrations import validate_guid
from sidecar.model import Phase, StackRecord
from sidecar.store import Store

_ATTEMPTS = 5
ANY = "*"  # detach whatever integration the phase uses


def attach(
    store: Store,
    stack: str,
    *,
    read: str | None = None,
    write: str | None = None,
    subscription_id: str | None = None,
) -> StackRecord:
    """Attach ``read`` and/or ``write`` (unknown integrations are refused); returns the stack."""
    check_name(stack, "stack")
    if not (read or write or subscription_id):
        raise InputError("give --read, --write (or both), or --subscription")
    if subscription_id is not None:
        subscription_id = validate_guid(subscription_id, "subscription id")
    for name in {n for n in (read, write) if n}:
        check_name(name, "integration")
        if store.find_integration(name) is None:
            raise NotFoundError(
                f"no integration named {name!r}: create it with `azsidecar integration create`"
                " or check `azsidecar integration list`"
            )
    for _ in range(_ATTEMPTS):
        record, version = store.find_stack(stack)
        updated = record or StackRecord(name=stack, read=None, write=None)
        updated = replace(
            updated,
            read=read or updated.read,
            write=write or updated.write,
            subscription_id=subscription_id or updated.subscription_id,
        )
        try:
            store.save_stack(updated, cas=version)
        except VaultConflict:
            continue
        return updated
    raise VaultConflict(f"stack {stack} keeps changing under us; retry", path=f"stacks/{stack}")


def detach(
    store: Store, stack: str, *, read: str | None = None, write: str | None = None
) -> StackRecord | None:
    """Detach the named (or, with :data:`ANY`, any) read/write integration.

    Both ``None`` detaches everything. Returns the stack as left, or ``None``
    once nothing is attached and the stack is gone.
    """
    check_name(stack, "stack")
    for _ in range(_ATTEMPTS):
        record, version = store.find_stack(stack)
        if record is None:
            raise NotFoundError(f"no stack named {stack!r}; see `azsidecar stack list`")
        wanted = {Phase.PLAN: read, Phase.APPLY: write}
        if read is None and write is None:
            wanted = {p: record.integration_for(p) and ANY for p in Phase}
        updated = record
        for phase, name in wanted.items():
            if name is None:
                continue
            current = record.integration_for(phase)
            if current is None:
                raise InputError(f"stack {stack} has no {phase.role} integration attached")
            if name not in (ANY, current):
                raise InputError(
                    f"stack {stack} does not use {name!r} as its {phase.role} integration"
                    f" (it uses {current!r})"
                )
            updated = updated.with_integration(phase, None)
        try:
            if updated.read is None and updated.write is None:
                # KV v2 has no check-and-set delete; a concurrent attach may be lost.
                store.delete_stack(stack)
                return None
            store.save_stack(updated, cas=version)
        except VaultConflict:
            continue
        return updated
    raise VaultConflict(f"stack {stack} keeps changing under us; retry", path=f"stacks/{stack}")


def list_stacks(store: Store) -> list[StackRecord]:
    found = []
    for name in store.stack_names():
        try:
            found.append(store.stack(name)[0])
        except VaultNotFound:
            continue
    return found
