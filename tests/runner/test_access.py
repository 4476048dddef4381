"""One templated runner policy governs the plugin and the resolver alike (real OpenBao, JWT)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import grpc
import hvac
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from sidecar.errors import NotFoundError, VaultForbidden
from sidecar.model import Phase
from sidecar.resolver import rpc
from sidecar.resolver.client import ResolverClient
from sidecar.resolver.proto.resolver_pb2 import ResolveRequest
from sidecar.resolver.server import ResolverHandle
from sidecar.runner.source import read_plugin
from sidecar.vault import VaultKV, connect
from tests.runner.conftest import RunnerWorld, guid, seed


@pytest.fixture
def seeded(world: RunnerWorld) -> RunnerWorld:
    seed(world.store, datetime.now(UTC))
    return world


@pytest.fixture
def resolver(seeded: RunnerWorld) -> Iterator[ResolverHandle]:
    handle = seeded.resolver()
    yield handle
    handle.stop(grace=0)


@pytest.fixture
def client(resolver: ResolverHandle) -> Iterator[ResolverClient]:
    c = ResolverClient(f"127.0.0.1:{resolver.port}", timeout=10)
    yield c
    c.close()


def _denied_kv_paths(world: RunnerWorld, token: hvac.Client) -> None:
    kv = VaultKV(token, "secret", world.prefix)
    for call in (
        lambda: kv.read("credentials/I1"),
        lambda: kv.read("stacks/A"),
        lambda: kv.read("integrations/I1"),
        lambda: kv.read_metadata("credentials/I1"),
        lambda: kv.list("stacks"),
        lambda: kv.list(""),
    ):
        with pytest.raises(VaultForbidden):
            call()


def test_a_plan_token_reads_its_stack_plan_and_nothing_else(
    seeded: RunnerWorld, client: ResolverClient
) -> None:
    plan = seeded.login("A", "plan")
    via_plugin = read_plugin(plan, "azure", "A", Phase.PLAN)
    via_resolver = client.resolve(str(plan.token), "A", Phase.PLAN)
    for cred in (via_plugin, via_resolver):
        assert cred.integration == "I1"
        assert cred.client_secret.reveal() == "secret-of-I1"
        assert cred.tenant_id == guid("tenant-I1")
        assert cred.subscription_id == guid("sub-I1")
    assert via_plugin == via_resolver
    for stack, phase in (("A", Phase.APPLY), ("B", Phase.PLAN)):
        with pytest.raises(VaultForbidden):
            read_plugin(plan, "azure", stack, phase)
        with pytest.raises(VaultForbidden, match="may not read"):
            client.resolve(str(plan.token), stack, phase)
    _denied_kv_paths(seeded, plan)


def test_an_apply_token_reads_its_stack_apply(seeded: RunnerWorld, client: ResolverClient) -> None:
    apply = seeded.login("A", "apply")
    assert read_plugin(apply, "azure", "A", Phase.APPLY).integration == "I2"
    assert client.resolve(str(apply.token), "A", Phase.APPLY).integration == "I2"
    with pytest.raises(VaultForbidden):
        client.resolve(str(apply.token), "A", Phase.PLAN)
    _denied_kv_paths(seeded, apply)


def test_the_resolver_answers_unauthenticated_and_not_found(
    seeded: RunnerWorld, resolver: ResolverHandle, client: ResolverClient
) -> None:
    channel = grpc.insecure_channel(f"127.0.0.1:{resolver.port}")
    stub = rpc.ResolverStub(channel)
    codes = {}
    for name, metadata in (("none", ()), ("bad", ((rpc.TOKEN_METADATA, "s.bogus"),))):
        with pytest.raises(grpc.RpcError) as info:
            stub.resolve(ResolveRequest(stack="A", phase="plan"), metadata=metadata, timeout=10)
        codes[name] = info.value.code()
    with pytest.raises(grpc.RpcError) as info:
        stub.resolve(
            ResolveRequest(stack="../x", phase="plan"),
            metadata=((rpc.TOKEN_METADATA, "t"),),
            timeout=10,
        )
    codes["bad name"] = info.value.code()
    assert codes == {
        "none": grpc.StatusCode.UNAUTHENTICATED,
        "bad": grpc.StatusCode.UNAUTHENTICATED,
        "bad name": grpc.StatusCode.INVALID_ARGUMENT,
    }
    health = health_pb2_grpc.HealthStub(channel)
    for service in ("", rpc.SERVICE):
        answer = health.Check(health_pb2.HealthCheckRequest(service=service), timeout=10)
        assert answer.status == health_pb2.HealthCheckResponse.SERVING
    channel.close()
    root = str(seeded.root.token)
    with pytest.raises(NotFoundError, match="no stack named 'C'"):
        client.resolve(root, "C", Phase.PLAN)


def test_the_operator_policy_never_reads_a_secret_value(seeded: RunnerWorld) -> None:
    operator = connect(seeded.addr, token=seeded.token_with("operator"))
    kv = VaultKV(operator, "secret", seeded.prefix)
    with pytest.raises(VaultForbidden):
        kv.read("credentials/I1")
    with pytest.raises(VaultForbidden):
        kv.read("management/certificate")
    assert kv.read_metadata("credentials/I1").current_version == 1
    assert kv.read("stacks/A").data["read"] == "I1"
    assert kv.list("stacks") == ["A", "B"]
    kv.write("stacks/C", {"name": "C", "read": "I1", "write": None}, cas=0)
    with pytest.raises(VaultForbidden):
        read_plugin(operator, "azure", "A", Phase.PLAN)


def test_the_sidecar_policy_stays_inside_its_prefix(seeded: RunnerWorld) -> None:
    sidecar = connect(seeded.addr, token=seeded.token_with("sidecar"))
    own = VaultKV(sidecar, "secret", seeded.prefix)
    assert own.read("credentials/I1").data["client_secret"] == "secret-of-I1"
    own.write("state/probe", {"x": 1}, cas=0)
    own.destroy_versions("state/probe", [1])
    own.delete_all("state/probe")
    VaultKV(seeded.root, "secret", "elsewhere").write("probe", {"x": 1}, cas=None)
    other = VaultKV(sidecar, "secret", "elsewhere")
    for call in (
        lambda: other.read("probe"),
        lambda: other.write("probe", {"x": 2}, cas=None),
        lambda: other.list(""),
        lambda: VaultKV(sidecar, "secret", seeded.prefix + "x").read("credentials/I1"),
    ):
        with pytest.raises(VaultForbidden):
            call()
    with pytest.raises(VaultForbidden):
        read_plugin(sidecar, "azure", "A", Phase.PLAN)
