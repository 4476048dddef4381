"""Bad input (issue 9) over the wire: gRPC Resolve requests and plugin HTTP requests."""

from __future__ import annotations

from collections.abc import Iterator
from urllib.parse import quote

import grpc
import pytest
import requests
from grpc_health.v1 import health_pb2, health_pb2_grpc
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sidecar.resolver import rpc
from sidecar.resolver.proto.resolver_pb2 import ResolveRequest
from tests.hvac_read import read_json
from tests.runner.conftest import RunnerWorld

_NASTY = ["", "..", "../x", "a/../b", "abc\n", "a\x00b", "naïve", "x" * 10_000, "plan", "A"]
names = st.one_of(st.sampled_from(_NASTY), st.text(max_size=40))
_SETTINGS = settings(
    max_examples=50,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
_OK_CODES = {
    grpc.StatusCode.INVALID_ARGUMENT,
    grpc.StatusCode.NOT_FOUND,
    grpc.StatusCode.PERMISSION_DENIED,
    grpc.StatusCode.UNAUTHENTICATED,
}


@pytest.fixture
def channel(world: RunnerWorld) -> Iterator[grpc.Channel]:
    handle = world.resolver()
    chan = grpc.insecure_channel(f"127.0.0.1:{handle.port}")
    yield chan
    chan.close()
    handle.stop(grace=0)


@_SETTINGS
@given(stack=names, phase=names, root=st.booleans())
def test_resolve_answers_bad_requests_with_a_client_error(
    world: RunnerWorld, channel: grpc.Channel, stack: str, phase: str, root: bool
) -> None:
    token = world.root.token if root else "not-a-token"
    stub = rpc.ResolverStub(channel)
    with pytest.raises(grpc.RpcError) as info:
        stub.resolve(
            ResolveRequest(stack=stack, phase=phase),
            metadata=((rpc.TOKEN_METADATA, token),),
            timeout=10,
        )
    assert info.value.code() in _OK_CODES, (info.value.code(), info.value.details())
    assert info.value.details()
    health = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=5)
    assert health.status == health_pb2.HealthCheckResponse.SERVING


values = st.one_of(
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False),  # JSON has neither
    st.booleans(),
    st.lists(st.integers(), max_size=2),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
    st.sampled_from(["-5s", "99999999999999999999d", "x" * 10_000, "../x", "\x00"]),
)


@_SETTINGS
@given(
    path=st.one_of(
        st.tuples(names, names).map(
            lambda p: f"creds/{quote(p[0], safe='')}/{quote(p[1], safe='')}"
        ),
        names.map(lambda n: f"stacks/{quote(n, safe='')}"),
    )
)
def test_plugin_read_paths_answer_bad_names_with_4xx(world: RunnerWorld, path: str) -> None:
    pids = world.bao.pb.plugin_pids()
    response = requests.get(
        f"{world.addr}/v1/azure/{path}", headers={"X-Vault-Token": world.root.token}, timeout=10
    )
    assert response.status_code < 500, (response.status_code, response.text[:300])
    if response.status_code == 404:
        pass  # Vault's "nothing here": {"errors": []}, as for any missing path
    elif response.status_code >= 400 and response.text:
        assert response.json().get("errors"), response.text[:300]
    elif response.status_code >= 400:
        # OpenBao's HTTP layer refuses some paths (control or non-printable
        # characters, empty segments) with an empty 400 before any backend sees
        # them: the built-in KV mount answers the same path the same way.
        assert response.status_code == 400
        builtin = requests.get(
            f"{world.addr}/v1/secret/data/{path}",
            headers={"X-Vault-Token": world.root.token},
            timeout=10,
        )
        assert (builtin.status_code, builtin.text) == (400, "")
    assert world.bao.pb.plugin_pids() == pids


FUZZ_MOUNT = "azure-fuzz"


def fuzz_mount(world: RunnerWorld) -> None:
    """A second mount of the plugin, so accepted odd values never touch ``azure/``."""
    mounts = world.root.adapter.get("/v1/sys/mounts")
    if f"{FUZZ_MOUNT}/" not in mounts.get("data", mounts):
        world.root.sys.enable_secrets_engine("azsidecar", path=FUZZ_MOUNT)
        world.root.write_data(
            f"{FUZZ_MOUNT}/config", data={"vault_addr": world.addr, "token": "x", "prefix": "p"}
        )


@_SETTINGS
@given(
    field=st.sampled_from(
        ["propagation_delay", "ready_safety_margin", "vault_addr", "kv_mount", "prefix", "ca_cert"]
    ),
    value=values,
)
def test_plugin_config_refuses_wrong_types_and_huge_values(
    world: RunnerWorld, field: str, value: object
) -> None:
    fuzz_mount(world)
    pids = world.bao.pb.plugin_pids()
    before = read_json(world.root, f"{FUZZ_MOUNT}/config")["data"]
    response = requests.post(
        f"{world.addr}/v1/{FUZZ_MOUNT}/config",
        headers={"X-Vault-Token": world.root.token},
        json={field: value},
        timeout=10,
    )
    assert response.status_code < 500, (response.status_code, response.text[:300])
    if response.status_code >= 400:
        assert response.json().get("errors"), response.text[:300]
        assert read_json(world.root, f"{FUZZ_MOUNT}/config")["data"] == before
    assert world.bao.pb.plugin_pids() == pids
