"""The test records the reader and store tests share: integration ``web`` and its secrets."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta

from sidecar.model import ConsentState, CredentialKind, IntegrationRecord, SecretVersion
from sidecar.sensitive import Sensitive
from tests.ids import guid


def web_record(
    created: datetime, kind: CredentialKind = CredentialKind.SECRET, **changes: str
) -> IntegrationRecord:
    """Integration ``web``, consented, made at ``created``; ``changes`` replace text fields."""
    record = IntegrationRecord(
        name="web",
        tenant_id=guid("tenant"),
        subscription_id=guid("sub"),
        app_object_id=guid("obj"),
        client_id=guid("app"),
        display_name="azsidecar-web",
        consent=ConsentState.GRANTED,
        created=created,
        kind=kind,
    )
    return replace(record, **changes)  # type: ignore[arg-type]


def secret(text: str, created: datetime, intent_id: str = "") -> SecretVersion:
    """A 24-hour client secret ``text`` of ``web``'s application; the intent defaults to
    one named after ``created``."""
    return SecretVersion(
        client_id=guid("app"),
        secret=Sensitive(text),
        key_id=f"key-{text}",
        tenant_id=guid("tenant"),
        intent_id=intent_id or f"i{int(created.timestamp())}",
        created=created,
        expires=created + timedelta(hours=24),
    )
