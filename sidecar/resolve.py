"""The one answer every reader gives: the ready credential of a stack's phase.

Used by the gRPC resolver, the Vault plugin and the runner helper. It reads
only (the key-level index, then the chosen version) and never repairs, so a
read-only Vault policy suffices. The choice is :func:`sidecar.ready.choose_ready`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from sidecar.errors import NotFoundError, NotReadyError, VaultNotFound
from sidecar.model import Phase
from sidecar.ready import NotReady, choose_ready
from sidecar.sensitive import Sensitive
from sidecar.store import Store
from sidecar.timing import TimingPolicy
from sidecar.vault import VaultKV

_ATTEMPTS = 3


@dataclass(frozen=True)
class ResolvedCredential:
    """What a run needs; ``safe_until`` is when it must stop being handed out."""

    client_id: str
    client_secret: Sensitive = field(repr=False)
    tenant_id: str
    subscription_id: str | None
    integration: str
    key_id: str
    created: datetime
    expires: datetime
    safe_until: datetime


def resolve_credential(
    kv: VaultKV, stack: str, phase: Phase, now: datetime, policy: TimingPolicy
) -> ResolvedCredential:
    """The ready credential, or NotFoundError / NotReadyError saying what is missing."""
    store = Store(kv)
    try:
        stack_record, _ = store.stack(stack)
    except VaultNotFound as exc:
        raise NotFoundError(
            f"no stack named {stack!r}: attach one with `azsidecar stack attach`"
        ) from exc
    name = stack_record.write if phase is Phase.APPLY else stack_record.read
    if not name:
        raise NotFoundError(f"stack {stack!r} has no integration attached for phase {phase}")
    try:
        record, _ = store.integration(name)
    except VaultNotFound as exc:
        raise NotFoundError(f"integration {name!r} of stack {stack!r} does not exist") from exc
    # A version can be destroyed between reading the index and reading it; the
    # index is then read again, so a removed secret is never handed out.
    for _ in range(_ATTEMPTS):
        choice = choose_ready(store.credentials(name, repair=False), now, policy)
        if isinstance(choice, NotReady):
            raise NotReadyError(
                f"no ready credential for integration {name!r}: {choice.reason}", choice.ready_at
            )
        chosen = choice.credential
        try:
            secret = store.secret(name, chosen.version)
        except VaultNotFound:
            continue
        return ResolvedCredential(
            client_id=secret.client_id,
            client_secret=secret.secret,
            tenant_id=secret.tenant_id,
            subscription_id=stack_record.subscription_id or record.subscription_id,
            integration=name,
            key_id=secret.key_id,
            created=chosen.created,
            expires=chosen.expires,
            safe_until=choice.usable_until,
        )
    raise NotReadyError(f"the secrets of {name!r} changed while reading; retry", now)
