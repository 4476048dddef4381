"""Every shipped policy against every product path, allowed or denied, through a real OpenBao.

Rows are identities (a token with the sidecar, plugin or operator policy; runner
tokens from a JWT login for stack A plan and A apply); columns are product paths
and operations. The expectation of each cell comes from what the policy is for
(the README's "Security model", vault-config/README.md), least privilege, not from
the HCL. Each cell is checked twice: ``sys/capabilities-self`` for that token, and
the operation itself over HTTP (403 = denied; any other answer means the ACL let it
through). The policies are rendered from ``policies/`` under names of this module's
own, so other tests rewriting ``azsidecar-*`` cannot change them mid-table.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import requests

from sidecar.management import generate_key_pair, store_certificate
from sidecar.policies import render_all
from sidecar.store import Store
from sidecar.transit import Transit
from sidecar.vault import VaultKV, connect
from tests.runner.conftest import ROOT, RunnerBao, RunnerWorld, seed

KV = "secret"
#: The issuer's Transit key as the shipped policies name it by default.
TRANSIT = "transit"
ISSUER_KEY = "azsidecar-issuer"
IDENTITIES = ("sidecar", "plugin", "operator", "runner-A-plan", "runner-A-apply")

KV_OPS = (
    "read",
    "create",
    "update",
    "delete",
    "meta-read",
    "meta-write",
    "meta-delete",
    "destroy",
)


@dataclass(frozen=True)
class Cell:
    """One column: a path, an operation on it, and who may do it."""

    column: str
    op: str
    allowed: frozenset[str]
    # Given the module's table: (path for capabilities-self, capabilities any of which
    # admits the operation, the HTTP request performing it).
    plan: Callable[[Table], tuple[str, set[str], Request]]


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    body: dict[str, Any] | None = None
    prepare: str = ""  # "present" / "absent": what root makes of the KV key first


@dataclass
class Table:
    world: RunnerWorld
    role: dict[str, Any]
    tokens: dict[str, str]
    caps: dict[str, dict[str, list[str]]]

    @property
    def prefix(self) -> str:
        return self.world.prefix


# --- what each identity is for ---------------------------------------------------------

ALL_KV = frozenset(KV_OPS) | {"list"}
# The daemon: everything under its prefix (records, secrets, management key, state).
IN_PREFIX = (
    "integrations",
    "credentials",
    "stacks",
    "management/identity",
    "management/certificate",
    "state",
    "prefix root",
)
SIDECAR = dict.fromkeys(IN_PREFIX, ALL_KV)
# The plugin / resolver: read stacks, integrations and credentials (data and index), list
# stacks and integrations. Nothing else, and no writes.
PLUGIN = {
    "integrations": frozenset({"read", "list"}),
    "credentials": frozenset({"read", "meta-read"}),
    "stacks": frozenset({"read", "list"}),
}
# The operator: writes stacks, reads integration records, reads metadata everywhere under
# the prefix; never a secret value nor the management key, never state data, no
# integration writes (creating / deleting integrations runs with the sidecar policy).
OPERATOR = {
    "integrations": frozenset({"read", "meta-read", "list"}),
    "credentials": frozenset({"meta-read", "list"}),
    "stacks": frozenset({"read", "create", "update", "delete", "meta-read", "list"})
    | {"meta-delete"},
    "management/identity": frozenset({"meta-read", "list"}),
    "management/certificate": frozenset({"meta-read"}),
    "state": frozenset({"meta-read", "list"}),
    "prefix root": frozenset({"list"}),
}
KV_ALLOWED = {"sidecar": SIDECAR, "plugin": PLUGIN, "operator": OPERATOR}

# (column, key read, key mutated, directory listed)
KV_AREAS = (
    ("integrations", "integrations/I1", "integrations/probe", "integrations/"),
    ("credentials", "credentials/I1", "credentials/probe", "credentials/"),
    ("stacks", "stacks/A", "stacks/probe", "stacks/"),
    ("management/identity", "management/identity", "management/identity", "management/"),
    ("management/certificate", "management/certificate", "management/certificate", None),
    ("state", "state/leader", "state/probe", "state/"),
)


def _kv_plan(key: str, op: str, outside: bool = False) -> Callable[[Table], Any]:
    def plan(t: Table) -> tuple[str, set[str], Request]:
        base = f"{t.prefix}-other" if outside else t.prefix
        full = f"{base}/{key}"
        body = {"data": {"probe": op}}
        return {
            "read": (f"{KV}/data/{full}", {"read"}, Request("GET", f"{KV}/data/{full}")),
            "create": (
                f"{KV}/data/{full}",
                {"create"},
                Request("POST", f"{KV}/data/{full}", body, "absent"),
            ),
            "update": (
                f"{KV}/data/{full}",
                {"update"},
                Request("POST", f"{KV}/data/{full}", body, "present"),
            ),
            "delete": (
                f"{KV}/data/{full}",
                {"delete"},
                Request("DELETE", f"{KV}/data/{full}", None, "present"),
            ),
            "meta-read": (
                f"{KV}/metadata/{full}",
                {"read"},
                Request("GET", f"{KV}/metadata/{full}"),
            ),
            "meta-write": (
                f"{KV}/metadata/{full}",
                {"update"},
                Request("POST", f"{KV}/metadata/{full}", {"custom_metadata": {"p": op}}, "present"),
            ),
            "meta-delete": (
                f"{KV}/metadata/{full}",
                {"delete"},
                Request("DELETE", f"{KV}/metadata/{full}", None, "present"),
            ),
            "destroy": (
                f"{KV}/destroy/{full}",
                {"update"},
                Request("POST", f"{KV}/destroy/{full}", {"versions": [1]}, "present"),
            ),
            "list": (
                f"{KV}/metadata/{full}",
                {"list"},
                Request("LIST", f"{KV}/metadata/{full}"),
            ),
        }[op]

    return plan


def _who(column: str, op: str) -> frozenset[str]:
    return frozenset(name for name, table in KV_ALLOWED.items() if op in table.get(column, ()))


def _cells() -> list[Cell]:
    cells = []
    for column, read_key, mutate_key, directory in KV_AREAS:
        for op in KV_OPS:
            key = read_key if op in ("read", "meta-read") else mutate_key
            cells.append(Cell(column, op, _who(column, op), _kv_plan(key, op)))
        if directory:
            cells.append(Cell(column, "list", _who(column, "list"), _kv_plan(directory, "list")))
    cells.append(Cell("prefix root", "list", _who("prefix root", "list"), _kv_plan("", "list")))
    for op in KV_OPS:
        key = "x" if op in ("read", "meta-read") else "probe"
        cells.append(Cell("outside", op, frozenset(), _kv_plan(key, op, outside=True)))
    cells.append(Cell("outside", "list", frozenset(), _kv_plan("", "list", outside=True)))

    def fixed(path: str, caps: set[str], request: Request) -> Callable[[Table], Any]:
        return lambda t: (path, caps, request)

    for stack, phase in (("A", "plan"), ("A", "apply"), ("B", "plan")):
        path = f"azure/creds/{stack}/{phase}"
        who = frozenset({f"runner-{stack}-{phase}"}) & set(IDENTITIES)
        cells.append(Cell(path, "read", who, fixed(path, {"read"}, Request("GET", path))))
    cells.append(
        Cell(
            "azure/config",
            "read",
            frozenset(),
            fixed("azure/config", {"read"}, Request("GET", "azure/config")),
        )
    )
    cells.append(
        Cell(
            "azure/config",
            "write",
            frozenset(),
            lambda t: (
                "azure/config",
                {"create", "update"},
                Request("POST", "azure/config", _config(t.world)),
            ),
        )
    )
    # The plugin looks up callers' logins by accessor (issue 16, point 2); nobody else may.
    lookup = "auth/token/lookup-accessor"
    cells.append(
        Cell(
            lookup,
            "update",
            frozenset({"plugin"}),
            lambda t: (lookup, {"update"}, Request("POST", lookup, {"accessor": "none"})),
        )
    )
    # The issuer's Transit key (issue 18): readers (the plugin policy) read it and sign with
    # it to hand out federated tokens; nobody here creates, rotates, configures or exports it.
    key = f"{TRANSIT}/keys/{ISSUER_KEY}"
    sign = f"{TRANSIT}/sign/{ISSUER_KEY}/sha2-256"
    probe = {"input": "cHJvYmU=", "signature_algorithm": "pkcs1v15"}
    transit_cells: tuple[tuple[str, str, frozenset[str], set[str], Request], ...] = (
        (key, "read", frozenset({"plugin"}), {"read"}, Request("GET", key)),
        (sign, "update", frozenset({"plugin"}), {"update"}, Request("POST", sign, probe)),
        (
            f"{TRANSIT}/sign/{ISSUER_KEY}/sha2-512",
            "update",
            frozenset(),
            {"update"},
            Request("POST", f"{TRANSIT}/sign/{ISSUER_KEY}/sha2-512", probe),
        ),
        (
            f"{key}/rotate",
            "update",
            frozenset(),
            {"update"},
            Request("POST", f"{key}/rotate", {}),
        ),
        (
            f"{key}/config",
            "update",
            frozenset(),
            {"update"},
            Request("POST", f"{key}/config", {"min_decryption_version": 1}),
        ),
        (
            f"{TRANSIT}/export/public-key/{ISSUER_KEY}",
            "read",
            frozenset(),
            {"read"},
            Request("GET", f"{TRANSIT}/export/public-key/{ISSUER_KEY}"),
        ),
        (
            f"{TRANSIT}/keys/other",
            "create",
            frozenset(),
            {"create", "update"},
            Request("POST", f"{TRANSIT}/keys/other", {"type": "rsa-2048"}),
        ),
    )
    for path, op, who, caps, request in transit_cells:
        cells.append(Cell(path, op, who, fixed(path, caps, request)))
    policy = "sys/policies/acl/azsidecar-runner"
    cells.append(
        Cell(
            "sys/policies/acl", "read", frozenset(), fixed(policy, {"read"}, Request("GET", policy))
        )
    )
    role = "auth/jwt/role/azsidecar-runner"
    cells.append(
        Cell("auth/jwt/role", "read", frozenset(), fixed(role, {"read"}, Request("GET", role)))
    )
    cells.append(
        Cell(
            "auth/jwt/role",
            "write",
            frozenset(),
            lambda t: (role, {"create", "update"}, Request("POST", role, t.role)),
        )
    )
    return cells


CELLS = _cells()


def _config(world: RunnerWorld) -> dict[str, Any]:
    return {
        "vault_addr": world.addr,
        "token": world.plugin_token,
        "prefix": world.prefix,
        "propagation_delay": "0",
    }


# --- the server ------------------------------------------------------------------------


def _policy_name(prefix: str, name: str) -> str:
    return f"table-{prefix}-{name}"


@pytest.fixture(scope="module")
def table(runner_bao: RunnerBao) -> Table:
    prefix = f"t-{uuid.uuid4().hex[:12]}"
    root = runner_bao.pb.client
    values = {
        "jwt_accessor": runner_bao.accessor,
        "kv_mount": KV,
        "prefix": prefix,
        "creds_mount": "azure",
    }
    for name, text in render_all(values).items():
        root.sys.create_or_update_policy(_policy_name(prefix, name), text)
    store = Store(VaultKV(root, KV, prefix))
    world = RunnerWorld(runner_bao, prefix, store, "")

    def token(name: str) -> str:
        created = root.auth.token.create(policies=[_policy_name(prefix, name)], ttl="10m")
        return str(created["auth"]["client_token"])

    world.plugin_token = token("plugin")
    root.write_data("azure/config", data=_config(world))
    seed(store, datetime.now(UTC))
    kv = VaultKV(root, KV, prefix)
    kv.write("management/identity", {"tenant_id": "t", "client_id": "c"}, cas=None)
    # A real certificate version, as `management init --generate` stores it; made now.
    pair = generate_key_pair("table", datetime.now(UTC), timedelta(days=1))
    store_certificate(store, pair, key_id="k", uploaded_at=datetime.now(UTC))
    kv.write("state/leader", {"holder": "nobody"}, cas=None)
    VaultKV(root, KV, f"{prefix}-other").write("x", {"x": 1}, cas=None)
    if f"{TRANSIT}/" not in root.adapter.get("/v1/sys/mounts")["data"]:
        root.sys.enable_secrets_engine("transit", path=TRANSIT)
    Transit(root, TRANSIT).ensure_key(ISSUER_KEY)

    # The shipped JWT role, granting this module's runner policy.
    role = json.loads((ROOT / "vault-config" / "runner-role.json").read_text())
    role["token_policies"] = [_policy_name(prefix, "runner")]
    role_name = f"table-{prefix}"
    root.adapter.post(f"/v1/auth/jwt/role/{role_name}", json=role)

    tokens = {name: token(name) for name in ("sidecar", "operator")}
    tokens["plugin"] = world.plugin_token
    for phase in ("plan", "apply"):
        login = connect(world.addr, jwt=("jwt", role_name, world.jwt("A", phase)))
        tokens[f"runner-A-{phase}"] = str(login.token)

    t = Table(
        world, json.loads((ROOT / "vault-config" / "runner-role.json").read_text()), tokens, {}
    )
    paths = sorted({cell.plan(t)[0] for cell in CELLS})
    for name, tok in tokens.items():
        answer = _http(t, tok, "POST", "sys/capabilities-self", {"paths": paths})
        assert answer.status_code == 200, answer.text
        data = answer.json()
        t.caps[name] = {p: list(data[p]) for p in paths}
    return t


def _http(t: Table, token: str, method: str, path: str, body: Any = None) -> requests.Response:
    return requests.request(
        method,
        f"{t.world.addr}/v1/{path}",
        headers={"X-Vault-Token": token},
        json=body,
        timeout=10,
    )


def _prepare(t: Table, request: Request) -> None:
    root = str(t.world.root.token)
    if not request.prepare:
        return
    meta = request.path.replace(f"{KV}/data/", f"{KV}/metadata/", 1)
    meta = meta.replace(f"{KV}/destroy/", f"{KV}/metadata/", 1)
    data = meta.replace(f"{KV}/metadata/", f"{KV}/data/", 1)
    if request.prepare == "absent":
        assert _http(t, root, "DELETE", meta).status_code == 204
    else:
        answer = _http(t, root, "POST", data, {"data": {"seeded": True}})
        assert answer.status_code == 200, answer.text


@pytest.mark.parametrize("cell", CELLS, ids=[f"{c.column}:{c.op}" for c in CELLS])
@pytest.mark.parametrize("who", IDENTITIES)
def test_policy_table(table: Table, who: str, cell: Cell) -> None:
    expected = who in cell.allowed
    path, needed, request = cell.plan(table)
    caps = set(table.caps[who][path])
    by_capabilities = "deny" not in caps and bool(caps & needed)
    _prepare(table, request)
    answer = _http(table, table.tokens[who], request.method, request.path, request.body)
    assert answer.status_code < 500 or answer.status_code == 403, answer.text
    by_server = answer.status_code != 403
    if by_server and cell.column.startswith("azure/creds/"):
        assert answer.status_code == 200, answer.text
        assert answer.json()["data"]["client_secret"].startswith("secret-of-I")
    word = {True: "allowed", False: "denied"}
    assert (word[by_capabilities], word[by_server]) == (word[expected], word[expected]), (
        f"{who} on {request.method} {request.path}: expected {word[expected]}, "
        f"capabilities-self says {sorted(caps)}, the server answered {answer.status_code}"
    )
