"""The daemon runs the issuer: the leader maintains the Transit key, every daemon serves
its discovery document and JWKS over HTTPS (real OpenBao, a test CA made per test).

Transit stamps key versions with the real time. Tests on a :class:`ManualClock`
set it from those stamps (as tests/test_issuer.py does); the long run uses an
:class:`AcceleratedClock`, through which the issuer reads the stamps.
"""

from __future__ import annotations

import dataclasses
import json
import math
import signal
import socket
import ssl
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import hvac
import jwt
import pytest
import requests

from sidecar import metrics
from sidecar.clock import AcceleratedClock, Clock, ManualClock, SystemClock
from sidecar.config import Config, IssuerConfig, VaultConfig
from sidecar.daemon import Daemon
from sidecar.devstack.openbao import OpenBaoDevServer, free_port
from sidecar.emulator.tls import ServerTLS, prepare_server_tls
from sidecar.errors import ConfigError
from sidecar.http_listener import BoundedHTTPServer
from sidecar.issuer.documents import TokenRequest
from sidecar.issuer.listener import JWKS_MAX_STALE, JwksCache, JwksUnavailable
from sidecar.issuer.signing import IssuedToken, Issuer, transit_time
from sidecar.runtime import Runtime
from sidecar.store import Store
from sidecar.timing import TimingPolicy
from sidecar.transit import Transit
from sidecar.vault import VaultKV
from tests.processes import azsidecar, azsidecar_env, run
from tests.test_rotation_e2e import create_integrations
from tests.world import World

URL = "https://issuer.example.com/azsidecar"
REQUEST = TokenRequest(subject="azsidecar:web:plan", stack="web", phase="plan", integration="w")


@pytest.fixture
def transit_mount(root_client: hvac.Client) -> Iterator[str]:
    """Transit enabled at a fresh mount."""
    mount = f"transit-{uuid.uuid4().hex[:8]}"
    root_client.sys.enable_secrets_engine("transit", path=mount)
    yield mount
    root_client.adapter.delete(f"/v1/sys/mounts/{mount}")


@pytest.fixture
def tls(tmp_path: Path) -> ServerTLS:
    """A CA and a server certificate for localhost, made now (no key is committed)."""
    return prepare_server_tls(tmp_path / "tls")


def issuer_config(mount: str, tls: ServerTLS | None, **changes: Any) -> IssuerConfig:
    values: dict[str, Any] = {
        "url": URL,
        "transit_mount": mount,
        "key": "issuer",
        "listen": "127.0.0.1:0" if tls is not None else "",
        "tls_cert": str(tls.cert_path) if tls is not None else "",
        "tls_key": str(tls.key_path) if tls is not None else "",
    }
    values.update(changes)
    return IssuerConfig(**values)


def make_daemon(
    kv: VaultKV,
    openbao: OpenBaoDevServer,
    clock: Clock,
    settings: IssuerConfig,
    timing: TimingPolicy | None = None,
) -> Daemon:
    config = Config(
        vault=VaultConfig(addr=openbao.addr, token=openbao.root_token, prefix=kv.prefix),
        timing=timing or TimingPolicy(),
        issuer=settings,
    )
    return Daemon(Runtime(config=config, clock=clock, store=Store(kv)))


def the_issuer(daemon: Daemon) -> Issuer:
    assert daemon.issuer is not None
    return daemon.issuer


def base_url(server: BoundedHTTPServer | None) -> str:
    assert server is not None
    return f"https://localhost:{server.port}"


def newest_created(transit: Transit, key: str = "issuer") -> datetime:
    found = transit.read_key(key)
    return found.versions[found.latest_version].created


def kids(document: dict[str, Any]) -> set[str]:
    return {str(k["kid"]) for k in document["keys"]}


def verify(token: IssuedToken, jwks: dict[str, Any], issuer: str, at: datetime) -> dict[str, Any]:
    text = token.token.reveal()
    keys = jwt.PyJWKSet.from_dict(jwks)
    kid = jwt.get_unverified_header(text)["kid"]
    claims: dict[str, Any] = jwt.decode(
        text,
        key=keys[kid],
        algorithms=["RS256"],
        audience="api://AzureADTokenExchange",
        issuer=issuer,
        options={"verify_exp": False, "verify_nbf": False, "verify_iat": False},
    )
    assert claims["nbf"] <= at.timestamp() < claims["exp"]
    return claims


# -- the listener ---------------------------------------------------------------------------


def test_documents_over_https_and_a_token_verifies_against_the_served_jwks(
    kv: VaultKV, openbao: OpenBaoDevServer, transit_mount: str, tls: ServerTLS
) -> None:
    clock = ManualClock(datetime.now(UTC))
    daemon = make_daemon(kv, openbao, clock, issuer_config(transit_mount, tls))
    try:
        assert daemon.issuer_tick()  # creates the key
        issuer = the_issuer(daemon)
        clock.set(newest_created(issuer.transit) + timedelta(hours=25))
        token = issuer.sign_token(REQUEST)
        base = base_url(daemon.serve_issuer())
        session = requests.Session()
        ca = str(tls.ca_path)  # per request: REQUESTS_CA_BUNDLE would win over session.verify

        found = session.get(
            f"{base}/azsidecar/.well-known/openid-configuration", verify=ca, timeout=10
        )
        assert found.status_code == 200
        assert found.headers["Content-Type"] == "application/json"
        assert "max-age=" in found.headers["Cache-Control"]
        discovery = found.json()
        assert discovery["issuer"] == URL
        assert discovery["jwks_uri"] == f"{URL}/.well-known/jwks.json"

        jwks_path = discovery["jwks_uri"].removeprefix("https://issuer.example.com")
        served = session.get(f"{base}{jwks_path}", verify=ca, timeout=10)
        assert served.status_code == 200
        assert served.headers["Content-Type"] == "application/json"
        assert served.headers["Cache-Control"] == "public, max-age=5"
        claims = verify(token, served.json(), discovery["issuer"], clock.now())
        assert claims["iss"] == discovery["issuer"] == URL
        assert claims["sub"] == REQUEST.subject

        # PyJWT's own client fetches the JWKS over HTTPS and finds the token's key.
        client = jwt.PyJWKClient(f"{base}{jwks_path}", ssl_context=_trusting(tls))
        key = client.get_signing_key_from_jwt(token.token.reveal())
        assert key.key_id == token.kid

        for path in ("/", "/.well-known/openid-configuration", "/azsidecar/other", "/metrics"):
            missing = session.get(f"{base}{path}", verify=ca, timeout=10)
            assert missing.status_code == 404, path
            assert missing.headers["Content-Type"] == "application/json"
        head = session.head(f"{base}{jwks_path}", verify=ca, timeout=10)
        assert head.status_code == 200 and head.content == b""
        # A plaintext client gets nothing from the HTTPS listener.
        with pytest.raises(requests.exceptions.ConnectionError):
            requests.get(base.replace("https", "http") + jwks_path, timeout=5)
        assert session.get(f"{base}{jwks_path}", verify=ca, timeout=10).status_code == 200
    finally:
        daemon.close()


def _trusting(tls: ServerTLS) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(tls.ca_path))


def test_half_open_connections_do_not_starve_the_https_listener(
    kv: VaultKV, openbao: OpenBaoDevServer, transit_mount: str, tls: ServerTLS
) -> None:
    """Connections that never finish their TLS handshake hold no thread: the selector
    thread advances handshakes without blocking, and a real client is still answered."""
    daemon = make_daemon(
        kv, openbao, ManualClock(datetime.now(UTC)), issuer_config(transit_mount, tls)
    )
    idle: list[socket.socket] = []
    try:
        assert daemon.issuer_tick()
        server = daemon.serve_issuer()
        assert server is not None
        threads = threading.active_count()
        for index in range(200):
            conn = socket.create_connection(("127.0.0.1", server.port))
            if index % 2:
                conn.sendall(b"\x16\x03\x01\x00")  # the start of a ClientHello, no more
            idle.append(conn)
        started = time.monotonic()
        answer = requests.get(
            f"https://localhost:{server.port}/azsidecar/.well-known/jwks.json",
            verify=str(tls.ca_path),
            timeout=10,
        )
        assert answer.status_code == 200 and answer.json()["keys"]
        assert time.monotonic() - started < 5
        assert server.pending >= 150  # still waiting on most of them, threadlessly
        assert threading.active_count() <= threads + 4  # at most the worker pool
    finally:
        for conn in idle:
            conn.close()
        daemon.close()


def test_jwks_is_503_without_transit_and_a_cached_copy_is_served_for_a_bounded_time(
    kv: VaultKV,
    openbao: OpenBaoDevServer,
    root_client: hvac.Client,
    transit_mount: str,
    tls: ServerTLS,
) -> None:
    clock = ManualClock(datetime.now(UTC))
    broken = make_daemon(kv, openbao, clock, issuer_config("transit-missing", tls))
    try:
        base = base_url(broken.serve_issuer())
        answer = requests.get(f"{base}/azsidecar/.well-known/jwks.json", verify=str(tls.ca_path))
        assert answer.status_code == 503
        assert answer.headers["Content-Type"] == "application/json"
        assert answer.headers["Retry-After"] == "5"
        assert answer.json()["error"] == "temporarily_unavailable"
        assert "transit" not in answer.text.lower()  # Vault's paths stay in the log
        # The discovery document needs no Transit.
        discovery = requests.get(
            f"{base}/azsidecar/.well-known/openid-configuration", verify=str(tls.ca_path)
        )
        assert discovery.status_code == 200
    finally:
        broken.close()

    daemon = make_daemon(kv, openbao, clock, issuer_config(transit_mount, None))
    assert daemon.issuer_tick()
    cache = JwksCache(the_issuer(daemon))
    good, fresh = cache.get()
    assert fresh and json.loads(good.body)["keys"]
    root_client.adapter.delete(f"/v1/sys/mounts/{transit_mount}")
    failures = metrics.ISSUER_JWKS_READ_FAILURES._value.get()
    assert cache.get() == (good, True)  # still fresh: Transit is not asked
    clock.advance(timedelta(seconds=6))
    assert cache.get() == (good, False)  # Transit fails: the last good copy, said stale
    assert metrics.ISSUER_JWKS_READ_FAILURES._value.get() == failures + 1
    clock.advance(JWKS_MAX_STALE)
    with pytest.raises(JwksUnavailable):
        cache.get()
    root_client.sys.enable_secrets_engine("transit", path=transit_mount)  # for the fixture


def test_the_jwks_cache_stays_within_publish_ahead(root_client: hvac.Client) -> None:
    """A copy served (and cached by HTTP for max-age) never lacks a version that signs."""
    settings = issuer_config("transit", None, publish_ahead=timedelta(seconds=2))
    issuer = Issuer(
        Transit(root_client, "transit"),
        settings.identity(),
        ManualClock(datetime.now(UTC)),
        policy=settings.policy(),
    )
    cache = JwksCache(issuer)
    assert cache.fresh == timedelta(seconds=1)
    assert cache.max_stale == timedelta(seconds=1)
    default = JwksCache(Issuer(issuer.transit, issuer.identity, issuer.clock))
    assert (default.fresh, default.max_stale) == (timedelta(seconds=5), JWKS_MAX_STALE)


def test_the_listener_needs_tls_unless_listen_is_empty(tmp_path: Path, tls: ServerTLS) -> None:
    with pytest.raises(ConfigError, match=r"issuer\.tls_cert.*not set"):
        IssuerConfig(url=URL).listener()
    with pytest.raises(ConfigError, match=r"issuer\.tls_key.*cannot read"):
        IssuerConfig(
            url=URL, tls_cert=str(tls.cert_path), tls_key=str(tmp_path / "absent.pem")
        ).listener()
    with pytest.raises(ConfigError, match=r"issuer\.listen"):
        issuer_config("transit", tls, listen="8443").listener()
    assert issuer_config("transit", tls, listen="").listener() is None
    assert IssuerConfig().listener() is None  # no issuer at all
    assert issuer_config("transit", tls, listen="0.0.0.0:8443").listener() == ("0.0.0.0", 8443)


def test_a_daemon_refuses_a_certificate_it_cannot_load(
    kv: VaultKV, openbao: OpenBaoDevServer, tmp_path: Path, tls: ServerTLS
) -> None:
    junk = tmp_path / "junk.pem"
    junk.write_text("not a certificate\n")
    settings = issuer_config("transit", tls, tls_cert=str(junk))
    daemon = make_daemon(kv, openbao, ManualClock(datetime.now(UTC)), settings)
    with pytest.raises(ConfigError, match=r"issuer\.tls_cert") as refused:
        daemon.serve_issuer()
    assert "PRIVATE" not in str(refused.value)


def test_the_daemon_cli_refuses_to_start_without_tls_files(
    openbao: OpenBaoDevServer, tmp_path: Path
) -> None:
    config = tmp_path / "daemon.toml"
    config.write_text(
        f'[vault]\naddr = "{openbao.addr}"\nprefix = "t-{uuid.uuid4().hex[:8]}"\n'
        f'[issuer]\nurl = "{URL}"\n'
    )
    done = run(
        azsidecar("daemon", "--once", "--no-metrics", "--config", str(config)),
        azsidecar_env(openbao.root_token),
    )
    assert done.returncode != 0
    assert "issuer.tls_cert" in done.stderr + done.stdout


# -- the leader maintains ----------------------------------------------------------------


def test_only_the_leader_maintains_the_key(
    kv: VaultKV, openbao: OpenBaoDevServer, root_client: hvac.Client, transit_mount: str
) -> None:
    """Real time and seconds-long durations: Transit's stamps are the clock's own."""
    settings = issuer_config(
        transit_mount,
        None,
        publish_ahead=timedelta(seconds=1),
        rotation_period=timedelta(seconds=4),
        token_lifetime=timedelta(seconds=2),
        clock_skew=timedelta(0),
    )
    transit = Transit(root_client, transit_mount)
    transit.ensure_key("issuer")
    due = newest_created(transit) + timedelta(seconds=4.1)
    time.sleep(max(0.0, (due - datetime.now(UTC)).total_seconds()))  # a rotation is due
    daemons = [make_daemon(kv, openbao, SystemClock(), settings) for _ in range(2)]
    stop = threading.Event()
    threads = [threading.Thread(target=d.run, args=(stop,)) for d in daemons]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and not any(d.issuer_maintenances for d in daemons):
        time.sleep(0.05)
    time.sleep(1.5)  # the leader maintains again when v2 becomes eligible; no rotation
    stop.set()
    for thread in threads:
        thread.join(timeout=30)
    maintained = sorted(d.issuer_maintenances for d in daemons)
    assert maintained[0] == 0 and maintained[1] >= 1, maintained
    assert transit.read_key("issuer").latest_version == 2, "exactly one rotation"
    assert metrics.ISSUER_PUBLISHED_KEYS._value.get() == 2  # v1's tokens may still live
    assert metrics.ISSUER_SIGNING_VERSION._value.get() in (1, 2)
    # The next rotation is rotation_period after v2, read at scrape time (one daemon
    # per process in production; here the gauge reads the daemon made last).
    leader = max(daemons, key=lambda d: d.issuer_maintenances)
    assert 0 < leader._issuer_rotation_remaining() <= 4
    assert math.isnan(
        min(daemons, key=lambda d: d.issuer_maintenances)._issuer_rotation_remaining()
    )
    assert metrics.REGISTRY.get_sample_value("azsidecar_issuer_next_rotation_seconds") is not None


def test_an_issuer_failure_is_counted_and_retried_later(
    kv: VaultKV, openbao: OpenBaoDevServer
) -> None:
    clock = ManualClock(datetime.now(UTC))
    daemon = make_daemon(kv, openbao, clock, issuer_config("transit-missing", None))
    before = metrics.ISSUER_MAINTENANCE_FAILURES.labels("VaultNotFound")._value.get()
    assert not daemon.issuer_tick()
    after = metrics.ISSUER_MAINTENANCE_FAILURES.labels("VaultNotFound")._value.get()
    assert after == before + 1
    assert daemon.issuer_wake == clock.now() + timedelta(minutes=5)


# -- a long emulated run --------------------------------------------------------------------


@dataclass(frozen=True)
class Signed:
    token: IssuedToken
    at: datetime
    iat: int
    exp: int
    created: datetime  # Transit's creation_time of the signing version, in the clock's time


@pytest.mark.slow
def test_key_rotation_over_a_long_emulated_run(
    kv: VaultKV,
    openbao: OpenBaoDevServer,
    root_client: hvac.Client,
    transit_mount: str,
    tls: ServerTLS,
) -> None:
    """12 emulated hours at 1800x: a version every 3 h, published 1 h ahead, tokens of
    10 min signed every 5 min and checked against the JWKS the daemon serves."""
    factor = 1800.0
    clock = AcceleratedClock(datetime.now(UTC), factor)
    ahead, period = timedelta(hours=1), timedelta(hours=3)
    lifetime, skew = timedelta(minutes=10), timedelta(minutes=5)
    settings = issuer_config(
        transit_mount,
        tls,
        publish_ahead=ahead,
        rotation_period=period,
        token_lifetime=lifetime,
        clock_skew=skew,
    )
    daemon = make_daemon(
        kv, openbao, clock, settings, TimingPolicy(lease_ttl=timedelta(hours=3), probes=False)
    )
    signer = Issuer(  # what a reader does: its own Issuer on the same key
        Transit(root_client, transit_mount),
        settings.identity(),
        clock,
        key_name="issuer",
        policy=settings.policy(),
    )
    transit = signer.transit
    session = requests.Session()
    ca = str(tls.ca_path)  # per request: REQUESTS_CA_BUNDLE would win over session.verify
    stop = threading.Event()
    loop = threading.Thread(target=daemon.run, args=(stop,))
    signed: list[Signed] = []
    gone: dict[str, datetime] = {}  # kid -> first sample without it
    seen: set[str] = set()
    samples = 0
    try:
        jwks_url = base_url(daemon.serve_issuer()) + "/azsidecar/.well-known/jwks.json"
        loop.start()
        start = clock.now()
        end = start + timedelta(hours=12)
        while clock.now() < end:
            time.sleep(timedelta(minutes=5).total_seconds() / factor)
            try:
                token = signer.sign_token(REQUEST)
            except Exception as exc:  # not ready before the first version is published
                assert clock.now() < start + ahead + timedelta(minutes=10), exc
            else:
                header = jwt.get_unverified_header(token.token.reveal())
                body = jwt.decode(token.token.reveal(), options={"verify_signature": False})
                key = transit.read_key("issuer")
                created = transit_time(clock, key.versions[token.version].created)
                signed.append(Signed(token, clock.now(), body["iat"], body["exp"], created))
                assert header["kid"] == token.kid
                # Signed only by a version published for publish_ahead (iat is whole seconds).
                assert body["iat"] >= math.floor((created + ahead).timestamp()), token.version
            before = clock.now()
            document = session.get(jwks_url, verify=ca, timeout=10).json()
            after = clock.now()
            served = kids(document)
            samples += 1
            for kid in seen - served:
                gone.setdefault(kid, before)
            seen |= served
            for item in signed:
                if item.exp > after.timestamp():
                    assert item.token.kid in served, (
                        f"live token's key v{item.token.version} missing"
                    )
    finally:
        stop.set()
        loop.join(timeout=30)
        daemon.close()

    versions = {s.token.version for s in signed}
    assert len(versions) >= 3, f"several rotations signed tokens: {sorted(versions)}"
    assert transit.read_key("issuer").latest_version >= 4
    assert gone, "retired versions left the JWKS"
    for kid, left in gone.items():
        last = max((s.exp for s in signed if s.token.kid == kid), default=0)
        assert last <= left.timestamp(), "a key left the JWKS while a token it signed lived"
    # The daemon retired them in Transit too (min_decryption_version raised).
    assert transit.read_key("issuer").min_decryption_version > 1
    print(
        f"long run: {samples} JWKS samples, {len(signed)} tokens, signed by versions "
        f"{sorted(versions)}, {transit.read_key('issuer').latest_version} created, "
        f"{len(gone)} retired from the JWKS, {daemon.issuer_maintenances} maintenances"
    )
    # A sample every 5 emulated minutes, late under load: still one every 10 minutes.
    assert samples >= 72, samples
    assert len(signed) >= samples - 15, "every sample after the first hour signed"


# -- crash safety -------------------------------------------------------------------------


def _crash_config(path: Path, openbao: OpenBaoDevServer, mount: str, prefix: str) -> Path:
    path.write_text(
        "\n".join(
            [
                "[vault]",
                f'addr = "{openbao.addr}"',
                f'prefix = "{prefix}"',
                "[timing]",
                'lease_ttl = "3s"',  # the killed daemon's lease ends soon after
                "[issuer]",
                f'url = "{URL}"',
                f'transit_mount = "{mount}"',
                'key = "issuer"',
                'listen = ""',
                'publish_ahead = "2s"',
                'rotation_period = "10s"',
                'token_lifetime = "60s"',
                'clock_skew = "0s"',
                "",
            ]
        )
    )
    return path


@pytest.mark.parametrize("step", ["issuer_before_rotate", "issuer_after_rotate"])
def test_sigkill_around_the_transit_rotation(
    kv: VaultKV,
    openbao: OpenBaoDevServer,
    root_client: hvac.Client,
    transit_mount: str,
    tmp_path: Path,
    step: str,
) -> None:
    settings = IssuerConfig(
        url=URL,
        transit_mount=transit_mount,
        key="issuer",
        listen="",
        publish_ahead=timedelta(seconds=2),
        rotation_period=timedelta(seconds=10),
        token_lifetime=timedelta(seconds=60),
        clock_skew=timedelta(0),
    )
    issuer = Issuer(
        Transit(root_client, transit_mount),
        settings.identity(),
        SystemClock(),
        key_name="issuer",
        policy=settings.policy(),
    )
    issuer.maintain()  # version 1
    created = newest_created(issuer.transit)
    time.sleep(max(0.0, (created + timedelta(seconds=2.2) - datetime.now(UTC)).total_seconds()))
    token = issuer.sign_token(REQUEST)  # live for a minute, across the crash
    time.sleep(max(0.0, (created + timedelta(seconds=10.2) - datetime.now(UTC)).total_seconds()))

    path = _crash_config(tmp_path / "issuer.toml", openbao, transit_mount, kv.prefix)
    args = azsidecar("daemon", "--once", "--no-metrics", "--config", str(path))
    crashed = run(args, azsidecar_env(openbao.root_token, AZSIDECAR_TEST_CRASH_AT=step))
    assert crashed.returncode == -signal.SIGKILL, crashed.stderr[-2000:]
    expected = 1 if step == "issuer_before_rotate" else 2
    assert issuer.transit.read_key("issuer").latest_version == expected

    time.sleep(3.5)  # the killed daemon held the lease: the restart waits for its end
    restarted = run(args, azsidecar_env(openbao.root_token))
    assert restarted.returncode == 0, restarted.stderr[-2000:]
    key = issuer.transit.read_key("issuer")
    assert key.latest_version == 2, "one rotation, with no spare version"
    assert key.min_decryption_version <= 1, "nothing published was lost"
    jwks = issuer.jwks()
    assert token.kid in kids(jwks)
    verify(token, jwks, URL, datetime.now(UTC))


def test_an_issuer_failure_never_stops_the_credentials(world: World) -> None:
    """Transit not mounted: the leader's issuer maintenance fails, the integration's tick
    still runs and succeeds."""
    [(name, _)] = create_integrations(world, count=1, tenants=1)
    config = dataclasses.replace(world.config, issuer=issuer_config("transit-missing", None))
    daemon = Daemon(Runtime(config=config, clock=world.time, store=world.store))
    before = metrics.ISSUER_MAINTENANCE_FAILURES.labels("VaultNotFound")._value.get()
    daemon.run(threading.Event(), ticks=1)
    after = metrics.ISSUER_MAINTENANCE_FAILURES.labels("VaultNotFound")._value.get()
    assert after == before + 1
    assert daemon.issuer_maintenances == 0
    assert [r.integration for r in daemon.reports] == [name]
    assert daemon.health.last_tick is not None and not daemon.health.failing


def test_the_daemon_process_serves_the_issuer_on_issuer_addr(
    kv: VaultKV, openbao: OpenBaoDevServer, transit_mount: str, tls: ServerTLS, tmp_path: Path
) -> None:
    """``azsidecar daemon --issuer-addr``: a real process maintains the key and serves it."""
    port = free_port()
    path = tmp_path / "daemon.toml"
    path.write_text(
        "\n".join(
            [
                "[vault]",
                f'addr = "{openbao.addr}"',
                f'prefix = "{kv.prefix}"',
                "[issuer]",
                f'url = "{URL}"',
                f'transit_mount = "{transit_mount}"',
                'key = "issuer"',
                f'tls_cert = "{tls.cert_path}"',
                f'tls_key = "{tls.key_path}"',
                "",
            ]
        )
    )
    args = azsidecar(
        "daemon",
        "--no-metrics",
        "--no-resolver",
        "--issuer-addr",
        f"127.0.0.1:{port}",
        "--config",
        str(path),
    )
    process = subprocess.Popen(
        args,
        env=azsidecar_env(openbao.root_token),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    url = f"https://localhost:{port}/azsidecar/.well-known/jwks.json"
    try:
        deadline = time.monotonic() + 60
        document: dict[str, Any] = {"keys": []}
        while time.monotonic() < deadline and not document["keys"]:
            try:
                answer = requests.get(url, verify=str(tls.ca_path), timeout=5)
            except requests.exceptions.ConnectionError:
                answer = None
            if answer is not None and answer.status_code == 200:
                document = answer.json()
            else:
                time.sleep(0.2)
            assert process.poll() is None, "the daemon exited"
        assert len(document["keys"]) == 1, "the leader created the key; it is served"
    finally:
        process.send_signal(signal.SIGTERM)
        _, errors = process.communicate(timeout=30)
    assert process.returncode == 0, errors[-2000:]
    assert "OIDC issuer documents on https://127.0.0.1:" in errors
