"""The read path for federated credentials (issue 18): a token signed in Transit at read time.

Real OpenBao with KV and Transit. The signer's clock is a :class:`ManualClock`
moved to times measured from Transit's own ``creation_time`` of the key
(Transit stamps versions with the real time), as tests/test_issuer.py does;
each read is given the same clock's ``now``.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

import hvac
import jwt
import pytest

from sidecar.answers import FederatedToken, ResolvedCredential
from sidecar.clock import ManualClock
from sidecar.devstack.openbao import OpenBaoDevServer
from sidecar.errors import InvalidRecord, NotFoundError, NotReadyError, VaultForbidden
from sidecar.issuer.documents import ENTRA_AUDIENCE, IssuerIdentity
from sidecar.issuer.handout import KEY_CACHE_TTL, TransitSigner, reader_issuer_policy
from sidecar.issuer.signing import Issuer
from sidecar.model import (
    CredentialKind,
    FederatedVersion,
    Phase,
    federated_credential_name,
    federated_subject,
)
from sidecar.policies import render_all
from sidecar.resolve import ReadCache, resolve_credential, resolve_from_cache
from sidecar.resolver.rpc import from_message, to_message
from sidecar.sensitive import Sensitive
from sidecar.store import IntegrationRecord, StackRecord, Store
from sidecar.timing import TimingPolicy
from sidecar.transit import Signature, Transit, TransitKey
from sidecar.vault import VaultKV, connect
from tests.ids import guid
from tests.records import secret, web_record

POLICY = TimingPolicy()  # propagation_delay: 10 minutes
ISSUER_POLICY = reader_issuer_policy()  # publish 24 h ahead, tokens live 10 minutes
AHEAD = ISSUER_POLICY.publish_ahead
ISSUER_URL = "https://issuer.example.com/azsidecar"


@dataclass
class Federated:
    kv: VaultKV
    store: Store
    transit: Transit
    key: str
    clock: ManualClock
    signer: TransitSigner
    key_created: datetime

    def now(self) -> datetime:
        return self.clock.now()

    def resolve(self, phase: Phase = Phase.APPLY, at: datetime | None = None) -> ResolvedCredential:
        if at is not None:
            self.clock.set(at)
        return resolve_credential(
            self.kv, "A", phase, self.now(), POLICY, ReadCache(0, 0), self.signer
        )

    def jwks_issuer(self) -> Issuer:
        return Issuer(
            self.transit,
            IssuerIdentity(ISSUER_URL),
            self.clock,
            key_name=self.key,
            policy=ISSUER_POLICY,
        )


def record(kind: CredentialKind, created: datetime) -> IntegrationRecord:
    return web_record(created - timedelta(days=2), kind)


def federated(created: datetime, intent: str = "f1", **changes: str) -> FederatedVersion:
    version = FederatedVersion(
        client_id=guid("app"),
        tenant_id=guid("tenant"),
        key_id=guid(f"fic-{intent}"),
        name=federated_credential_name(intent),
        issuer=ISSUER_URL,
        subject=federated_subject("web", intent),
        audience=ENTRA_AUDIENCE,
        intent_id=intent,
        created=created,
    )
    return replace(
        version,
        issuer=changes.get("issuer", version.issuer),
        subject=changes.get("subject", version.subject),
        audience=changes.get("audience", version.audience),
    )


@pytest.fixture
def fed(root_client: hvac.Client, kv: VaultKV) -> Iterator[Federated]:
    """Transit at a fresh mount with a key published for ``publish_ahead``; stack A -> web."""
    mount = f"transit-{uuid.uuid4().hex[:8]}"
    root_client.sys.enable_secrets_engine("transit", path=mount)
    transit = Transit(root_client, mount)
    key = "issuer"
    created = transit.ensure_key(key).versions[1].created
    clock = ManualClock(created + AHEAD)
    signer = TransitSigner(mount=mount, key=key, policy=ISSUER_POLICY, clock=clock)
    store = Store(kv)
    store.save_integration(record(CredentialKind.FEDERATED, clock.now()), cas=0)
    store.save_stack(StackRecord(name="A", read="web", write="web"), cas=0)
    yield Federated(kv, store, transit, key, clock, signer, created)
    root_client.adapter.delete(f"/v1/sys/mounts/{mount}")


def claims_of(fed: Federated, cred: ResolvedCredential) -> dict[str, object]:
    """PyJWT's verdict on the handed-out token with the issuer's JWKS."""
    assert cred.federated is not None
    text = cred.federated.token.reveal()
    keys = jwt.PyJWKSet.from_dict(fed.jwks_issuer().jwks())
    kid = jwt.get_unverified_header(text)["kid"]
    claims: dict[str, object] = jwt.decode(
        text,
        keys[kid].key,
        algorithms=["RS256"],
        audience=ENTRA_AUDIENCE,
        issuer=ISSUER_URL,
        # PyJWT reads the wall clock; the times are checked against the signer's clock.
        options={"verify_exp": False, "verify_iat": False, "verify_nbf": False},
    )
    return claims


def test_a_ready_federated_credential_is_handed_out_as_a_token_that_verifies(
    fed: Federated,
) -> None:
    version = federated(fed.now() - timedelta(hours=1))
    fed.store.store_secret("web", version)
    got = fed.resolve(Phase.PLAN)
    assert got.kind is CredentialKind.FEDERATED and got.certificate is None
    assert not got.client_secret and got.federated is not None
    assert got.client_id == guid("app") and got.tenant_id == guid("tenant")
    assert got.subscription_id == guid("sub") and got.key_id == version.key_id
    claims = claims_of(fed, got)
    assert claims["iss"] == ISSUER_URL and claims["aud"] == ENTRA_AUDIENCE
    assert claims["sub"] == federated_subject("web", "f1")
    assert (claims["stack"], claims["phase"], claims["integration"]) == ("A", "plan", "web")
    issued = int(fed.now().timestamp())
    assert claims["iat"] == claims["nbf"] == issued
    lifetime = int(ISSUER_POLICY.token_lifetime.total_seconds())
    assert claims["exp"] == issued + lifetime
    assert int(got.federated.expires.timestamp()) == claims["exp"]
    # Useful only while the token lives: never handed on as safe after it expires.
    assert got.safe_until == got.federated.expires
    # Signed per read: a second read is a new token (its own jti), never a cached one.
    again = fed.resolve(Phase.PLAN)
    assert again.federated is not None
    assert claims_of(fed, again)["jti"] != claims["jti"]


def test_the_wire_answers_carry_the_federated_fields_and_no_secret(fed: Federated) -> None:
    fed.store.store_secret("web", federated(fed.now() - timedelta(hours=1)))
    got = fed.resolve()
    assert got.federated is not None
    data = got.to_data()
    assert data["kind"] == "federated" and data["use_oidc"] is True
    assert data["oidc_token"] == got.federated.token.reveal()
    assert data["oidc_token_expires"].endswith("Z")
    assert "client_secret" not in data and "client_certificate" not in data
    assert list(data) == [
        "client_id",
        "use_oidc",
        "oidc_token",
        "oidc_token_expires",
        "tenant_id",
        "subscription_id",
        "integration",
        "key_id",
        "created_at",
        "expires_at",
        "safe_until",
        "kind",
    ]
    assert ResolvedCredential.from_data(data) == got
    message = to_message(got)
    assert message.kind == "federated" and not message.client_secret
    assert message.oidc_token == got.federated.token.reveal()
    back = from_message(message)
    assert back.federated is not None
    assert back.federated.token == got.federated.token
    assert back.federated.expires == got.federated.expires
    assert back.client_id == got.client_id and back.kind is CredentialKind.FEDERATED


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("oidc_token", "not a jwt"),
        ("oidc_token", "a.b.c\n"),
        ("oidc_token", None),
        ("oidc_token_expires", "soon"),
        ("use_oidc", False),
    ],
)
def test_a_malformed_federated_answer_is_refused_by_field_name(
    fed: Federated, field: str, value: object
) -> None:
    fed.store.store_secret("web", federated(fed.now() - timedelta(hours=1)))
    data = fed.resolve().to_data() | {field: value}
    with pytest.raises(InvalidRecord, match=f"field {field} ") as refused:
        ResolvedCredential.from_data(data)
    if isinstance(value, str):
        assert value not in str(refused.value)


def test_before_the_key_is_published_long_enough_the_answer_is_ready_at(
    fed: Federated,
) -> None:
    fed.clock = ManualClock(fed.key_created + timedelta(hours=1))  # the key is an hour old
    fed.signer = replace(fed.signer, clock=fed.clock)
    fed.store.store_secret("web", federated(fed.now() - timedelta(hours=1)))
    with pytest.raises(NotReadyError) as refused:
        fed.resolve()
    assert refused.value.ready_at == fed.key_created + AHEAD
    assert "publish" in str(refused.value)


def test_a_federated_credential_still_propagating_says_when_it_is_ready(
    fed: Federated,
) -> None:
    created = fed.now().replace(microsecond=0)  # the index keeps whole seconds
    fed.store.store_secret("web", federated(created))
    with pytest.raises(NotReadyError) as refused:
        fed.resolve()
    assert refused.value.ready_at == created + POLICY.propagation_delay
    ready = fed.resolve(at=created + POLICY.propagation_delay + timedelta(seconds=1))
    assert ready.kind is CredentialKind.FEDERATED


def test_a_switch_from_secret_to_federated_keeps_the_secret_until_the_token_is_ready(
    fed: Federated,
) -> None:
    start = fed.now()
    found, version = fed.store.integration("web")
    fed.store.save_integration(replace(found, kind=CredentialKind.SECRET), cas=version)
    fed.store.store_secret("web", secret("old-secret", start - timedelta(hours=2)))
    assert fed.resolve().client_secret.reveal() == "old-secret"
    # The operator switches the kind; the daemon creates the federated credential.
    found, version = fed.store.integration("web")
    fed.store.save_integration(replace(found, kind=CredentialKind.FEDERATED), cas=version)
    fed.store.store_secret("web", federated(start))
    during = fed.resolve(at=start + timedelta(minutes=9))
    assert during.kind is CredentialKind.SECRET and during.federated is None
    assert during.client_secret.reveal() == "old-secret"
    after = fed.resolve(at=start + timedelta(minutes=10, seconds=1))
    assert after.kind is CredentialKind.FEDERATED and not after.client_secret
    assert claims_of(fed, after)["sub"] == federated_subject("web", "f1")


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"issuer": "http://issuer.example.com/azsidecar"}, "issuer"),
        ({"issuer": "https://issuer.example.com/a?b=c"}, "issuer"),
        ({"subject": "azsidecar:integration:web:\x07f1"}, "subject"),
        ({"subject": " azsidecar:integration:web:f1"}, "subject"),
        ({"audience": "api://AzureADTokenExchange\n"}, "audience"),
    ],
)
def test_hostile_values_in_the_stored_version_are_refused_on_read_by_name(
    fed: Federated, changes: dict[str, str], field: str
) -> None:
    fed.store.store_secret("web", federated(fed.now() - timedelta(hours=1), **changes))
    with pytest.raises(InvalidRecord, match=field) as refused:
        fed.resolve()
    (value,) = changes.values()
    assert value not in str(refused.value)
    assert value.strip() not in str(refused.value)


def test_a_reader_without_a_signer_says_it_signs_no_tokens(fed: Federated) -> None:
    fed.store.store_secret("web", federated(fed.now() - timedelta(hours=1)))
    with pytest.raises(NotFoundError, match="signs no tokens"):
        resolve_credential(fed.kv, "A", Phase.APPLY, fed.now(), POLICY, ReadCache(0, 0))


def test_the_cache_never_answers_a_federated_read_without_signing(fed: Federated) -> None:
    fed.store.store_secret("web", federated(fed.now() - timedelta(hours=1)))
    cache = ReadCache()
    now = fed.now()
    first = resolve_credential(fed.kv, "A", Phase.APPLY, now, POLICY, cache, fed.signer)
    assert first.federated is not None
    assert resolve_from_cache("A", Phase.APPLY, now, POLICY, cache) is None


def test_the_token_never_shows_in_logs_repr_or_errors(
    fed: Federated, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    fed.store.store_secret("web", federated(fed.now() - timedelta(hours=1)))
    got = fed.resolve()
    assert got.federated is not None
    token = got.federated.token.reveal()
    assert token.count(".") == 2
    shown = repr(got) + str(got) + repr(got.federated) + str(got.federated)
    assert token not in shown and token.rsplit(".", 1)[1] not in shown
    assert token not in caplog.text and token.rsplit(".", 1)[1] not in caplog.text
    tampered = got.to_data() | {"oidc_token_expires": "never"}
    with pytest.raises(InvalidRecord) as refused:
        ResolvedCredential.from_data(tampered)
    assert token not in str(refused.value)
    with pytest.raises(ValueError) as mixed:
        ResolvedCredential(
            **{**got.__dict__, "client_secret": Sensitive("s3cret"), "federated": got.federated}
        )
    assert token not in str(mixed.value)
    assert isinstance(got.federated, FederatedToken)


def test_the_plugin_policy_grants_the_key_read_and_the_signature_and_nothing_more(
    fed: Federated, root_client: hvac.Client, openbao: OpenBaoDevServer
) -> None:
    """Readers sign with the plugin's token: read the key, sign with it; never rotate or export."""
    values = {"jwt_accessor": "acc", "kv_mount": fed.kv.mount, "prefix": fed.kv.prefix}
    values["creds_mount"] = "azure"
    text = render_all({**values, "transit_mount": fed.transit.mount, "issuer_key": fed.key})
    name = f"plugin-{fed.transit.mount}"
    root_client.sys.create_or_update_policy(name, text["plugin"])
    created = root_client.auth.token.create(policies=[name], no_default_policy=True, ttl="10m")
    token = created["auth"]["client_token"]
    limited = connect(openbao.addr, token=token)
    mount, key = fed.transit.mount, fed.key
    expected = {
        f"{mount}/keys/{key}": ["read"],
        f"{mount}/sign/{key}/sha2-256": ["update"],
        f"{mount}/sign/{key}": ["deny"],
        f"{mount}/sign/{key}/sha2-512": ["deny"],
        f"{mount}/keys/{key}/rotate": ["deny"],
        f"{mount}/keys/{key}/config": ["deny"],
        f"{mount}/export/public-key/{key}": ["deny"],
        f"{mount}/keys/other": ["deny"],
        f"{mount}/sign/other/sha2-256": ["deny"],
    }
    for path, capabilities in expected.items():
        answer = root_client.adapter.post(
            "/v1/sys/capabilities", json={"token": token, "paths": [path]}
        )
        assert sorted(answer["data"][path]) == capabilities, path
    # And it is enough: a read signs through the limited token.
    fed.store.store_secret("web", federated(fed.now() - timedelta(hours=1)))
    kv = VaultKV(limited, fed.kv.mount, fed.kv.prefix)
    got = resolve_credential(kv, "A", Phase.APPLY, fed.now(), POLICY, ReadCache(0, 0), fed.signer)
    assert got.federated is not None
    # A plugin policy rendered for another key signs nothing with this one.
    other = render_all({**values, "transit_mount": fed.transit.mount, "issuer_key": "other"})
    root_client.sys.create_or_update_policy(name, other["plugin"])
    with pytest.raises(VaultForbidden, match=f"may not sign with Transit key '{fed.key}'"):
        resolve_credential(kv, "A", Phase.APPLY, fed.now(), POLICY, ReadCache(0, 0), fed.signer)


def test_a_warm_read_costs_one_transit_call_the_signature(
    fed: Federated, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The key read is reused for a few seconds of the clock; every read still signs anew."""
    calls: list[str] = []
    read_key, sign = Transit.read_key, Transit.sign

    def counted_read(self: Transit, name: str) -> TransitKey:
        calls.append("read")
        return read_key(self, name)

    def counted_sign(self: Transit, name: str, version: int, data: bytes) -> Signature:
        calls.append("sign")
        return sign(self, name, version, data)

    monkeypatch.setattr(Transit, "read_key", counted_read)
    monkeypatch.setattr(Transit, "sign", counted_sign)
    fed.store.store_secret("web", federated(fed.now() - timedelta(hours=1)))
    tokens = [fed.resolve() for _ in range(3)]
    assert calls == ["read", "sign", "sign", "sign"]
    assert len({t.federated.token.reveal() for t in tokens if t.federated}) == 3
    fed.clock.advance(KEY_CACHE_TTL)  # the cached read has aged out: read again
    fed.resolve()
    assert calls[-2:] == ["read", "sign"]


def test_a_key_made_again_under_its_name_is_never_signed_with_a_stale_read(
    fed: Federated,
) -> None:
    fed.store.store_secret("web", federated(fed.now() - timedelta(hours=1)))
    first = fed.resolve()  # the key read is cached now
    assert first.federated is not None
    client = fed.transit.client
    path = f"/v1/{fed.transit.mount}/keys/{fed.key}"
    client.adapter.post(f"{path}/config", json={"deletion_allowed": True})
    client.adapter.delete(path)
    remade = fed.transit.ensure_key(fed.key).versions[1].created
    # The cached read names version 1 of the old key, published long ago; the new
    # version 1 signs something that does not verify with it, so the read is dropped
    # and the fresh one says the new key is not published long enough yet.
    with pytest.raises(NotReadyError) as refused:
        fed.resolve()
    assert refused.value.ready_at == remade + AHEAD
