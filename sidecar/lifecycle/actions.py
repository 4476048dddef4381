"""What a credential planner asks its executor to do, for every kind of credential.

Each kind's executor applies these in the order given, through its own
adapters; it decides nothing the action does not say.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Create:
    """Write an intent, create a credential named after it in Azure, store it, clear the intent."""

    reason: str


@dataclass(frozen=True)
class RemoveFromAzure:
    """Remove the credential ``key_id`` from the application (an unknown one counts as done)."""

    key_id: str
    reason: str


@dataclass(frozen=True)
class DestroyStored:
    """Destroy KV version ``version`` (the credential ``key_id``).

    With ``confirm_reads`` above zero the destroy is conditional: the executor
    reads the listing again, on fresh connections, as long as
    :func:`sidecar.lifecycle.reconcile.confirm_destroy` asks (at most that
    many times), and does what it decides. An executor of a kind that sets
    :attr:`~sidecar.lifecycle.kind.Kind.confirm_reads` must do so.
    """

    version: int
    key_id: str
    reason: str
    confirm_reads: int = 0


@dataclass(frozen=True)
class ClearIntent:
    intent_id: str
    reason: str


Action = RemoveFromAzure | DestroyStored | ClearIntent | Create
