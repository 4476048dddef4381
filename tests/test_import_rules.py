"""The import rules of docs/ARCHITECTURE.md, checked on the source with ``ast``.

Every ``import`` of a ``sidecar`` module counts, wherever it is written
(module level, inside a function, under ``TYPE_CHECKING``): a type-only import
is still a dependency. The rules:

* Layers, lowest first: core, support, adapters, records, services, cli. A
  module imports only from its own layer or lower ones.
* Core is pure: it imports no third-party package and none of the standard
  library's ways to reach the outside (sockets, processes, signals, files by
  path, threads, HTTP).
* The tools stand apart: the emulator imports nothing else of ``sidecar``;
  devstack only core; no product layer imports a tool (only cli and demo do).
* The Vault plugin is an entry point: only cli and demo import it.
* The credential kinds' packages (``rotation``, ``certs``) do not import each other.
* No cycles: neither between modules, nor between units (a top-level module
  or a subpackage of ``sidecar``).

``KNOWN`` lists the imports that break a rule today and are being removed
by work in flight; each names its rule. An entry that no longer occurs fails
the test, so the list only shrinks.
"""

from __future__ import annotations

import ast
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "sidecar"

CORE = "core"
SUPPORT = "support"
ADAPTERS = "adapters"
RECORDS = "records"
SERVICES = "services"
CLI = "cli"
TOOLS = "tools"
ORDER = (CORE, SUPPORT, ADAPTERS, RECORDS, SERVICES, CLI)

# Module or package -> layer; the longest matching prefix wins.
LAYERS: dict[str, str] = {
    # Pure vocabulary and decisions: functions of state, policy and `now`.
    "sidecar": CORE,  # the package itself: __version__
    "sidecar.errors": CORE,
    "sidecar.clock": CORE,
    "sidecar.durations": CORE,
    "sidecar.timing": CORE,
    "sidecar.model": CORE,
    "sidecar.phases": CORE,  # Phase and the default mount: the runner helper needs no more
    "sidecar.kinds": CORE,  # CredentialKind: a word of every answer, as light as phases
    "sidecar.ready": CORE,
    "sidecar.sensitive": CORE,
    "sidecar.answers": CORE,  # what readers say to each other: creds path, names, refusals
    "sidecar.fieldcheck": CORE,
    "sidecar.login_scope": CORE,
    "sidecar.clouds": CORE,
    "sidecar.server_version": CORE,
    "sidecar.vault_token": CORE,  # when to renew or log in again
    "sidecar.rotation.planner": CORE,
    "sidecar.certs.planner": CORE,
    "sidecar.lifecycle": CORE,  # the life cycle every credential kind shares
    "sidecar.probes": CORE,  # verified readiness: the probe record and the measured lag
    "sidecar.issuer.planner": CORE,  # which signing-key version signs, is published, retires
    "sidecar.issuer.documents": CORE,  # JWT header and claims, JWKS, discovery as data
    # In-process plumbing that talks to no external system.
    "sidecar.config": SUPPORT,
    "sidecar.policies": SUPPORT,
    "sidecar.crashpoints": SUPPORT,
    "sidecar.logs": SUPPORT,
    "sidecar.metrics": SUPPORT,
    "sidecar.http_listener": SUPPORT,
    "sidecar.tls_files": SUPPORT,
    "sidecar.keypairs": SUPPORT,  # key pairs made in memory, PKCS#12 bundles
    # One module per external system.
    "sidecar.vault": ADAPTERS,
    "sidecar.vault_login": ADAPTERS,
    "sidecar.vault_transport": ADAPTERS,  # the login requests, over either transport
    "sidecar.vault_http": ADAPTERS,  # the runner helper's stdlib transport
    "sidecar.graph": ADAPTERS,
    "sidecar.transit": ADAPTERS,  # Vault's Transit engine: the issuer's signing key
    # The owner of every KV path.
    "sidecar.store": RECORDS,
    # What the daemon, the readers and the operator commands do.
    "sidecar.management": SERVICES,
    "sidecar.lease": SERVICES,
    "sidecar.orphans": SERVICES,
    "sidecar.integrations": SERVICES,
    "sidecar.stacks": SERVICES,
    "sidecar.resolve": SERVICES,
    "sidecar.rotation": SERVICES,
    "sidecar.certs": SERVICES,
    "sidecar.runtime": SERVICES,
    "sidecar.daemon": SERVICES,
    "sidecar.health": SERVICES,
    "sidecar.probing": SERVICES,
    "sidecar.doctor": SERVICES,
    "sidecar.resolver": SERVICES,
    "sidecar.plugin": SERVICES,
    "sidecar.runner": SERVICES,
    "sidecar.issuer": SERVICES,  # the OIDC issuer: signing through Transit, the documents
    "sidecar.cli": CLI,
    # Development and demonstration, outside the product's layers.
    "sidecar.emulator": TOOLS,
    "sidecar.devstack": TOOLS,
    "sidecar.demo": TOOLS,
}

# What core may not import: anything third-party, and these standard modules.
OUTSIDE = {
    "asyncio",
    "http",
    "os",
    "pathlib",
    "selectors",
    "shutil",
    "signal",
    "socket",
    "socketserver",
    "ssl",
    "subprocess",
    "tempfile",
    "threading",
    "urllib",
}

# (importer, imported, rule): wrong-way imports being removed by work in flight.
KNOWN: set[tuple[str, str, str]] = set()


@dataclass(frozen=True)
class Import:
    importer: str
    imported: str
    line: int


def module_names() -> dict[str, Path]:
    found = {}
    for path in PACKAGE.rglob("*.py"):
        parts = list(path.relative_to(ROOT).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


MODULES = module_names()


def _resolve(name: str) -> str | None:
    """The sidecar module ``name`` refers to (``pkg.mod.attr`` -> ``pkg.mod``)."""
    while name:
        if name in MODULES:
            return name
        name = name.rpartition(".")[0]
    return None


def _package_of(module: str) -> str:
    path = MODULES[module]
    return module if path.name == "__init__.py" else module.rpartition(".")[0]


def imports_of(module: str) -> Iterator[tuple[str, int]]:
    """Every imported name of ``module`` (absolute, relative ones resolved), with its line."""
    tree = ast.parse(MODULES[module].read_text(), str(MODULES[module]))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, node.lineno
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                package = _package_of(module).split(".")
                anchor = ".".join(package[: len(package) - node.level + 1])
                base = f"{anchor}.{base}" if base else anchor
            for alias in node.names:
                # `from pkg import mod` imports pkg.mod when it is a module, else pkg.
                submodule = f"{base}.{alias.name}"
                yield (submodule if submodule in MODULES else base), node.lineno


def sidecar_imports() -> list[Import]:
    found = []
    for module in sorted(MODULES):
        for name, line in imports_of(module):
            target = _resolve(name)
            if target is not None and target != module:
                found.append(Import(module, target, line))
    return found


IMPORTS = sidecar_imports()


def _within(module: str, package: str) -> bool:
    return module == package or module.startswith(package + ".")


def _claims(prefix: str, module: str) -> bool:
    """Whether a LAYERS entry covers ``module`` (the package itself covers only its __init__)."""
    return module == prefix if prefix == "sidecar" else _within(module, prefix)


def layer(module: str) -> str:
    return LAYERS[max((p for p in LAYERS if _claims(p, module)), key=len)]


def unit(module: str) -> str:
    """A top-level module or a subpackage of sidecar (``sidecar.plugin.backend`` -> plugin)."""
    return ".".join(module.split(".")[:2])


def _violations(rule: str) -> list[str]:
    broken = []
    for imp in IMPORTS:
        if not _breaks(rule, imp.importer, imp.imported):
            continue
        if (imp.importer, imp.imported, rule) in KNOWN:
            continue
        broken.append(f"{MODULES[imp.importer].relative_to(ROOT)}:{imp.line} -> {imp.imported}")
    return broken


def _breaks(rule: str, importer: str, imported: str) -> bool:
    a, b = layer(importer), layer(imported)
    if rule == "layers":
        if a == TOOLS or b == TOOLS:
            return False
        return ORDER.index(b) > ORDER.index(a)
    if rule == "tools-apart":
        if _within(importer, "sidecar.emulator"):
            return not _within(imported, "sidecar.emulator")
        if _within(importer, "sidecar.devstack"):
            return not (_within(imported, "sidecar.devstack") or b == CORE)
        return b == TOOLS and a not in (CLI, TOOLS)
    if rule == "plugin-entry-point":
        return (
            _within(imported, "sidecar.plugin")
            and not _within(importer, "sidecar.plugin")
            and not (_within(importer, "sidecar.cli") or _within(importer, "sidecar.demo"))
        )
    if rule == "kinds-apart":
        kinds = ("sidecar.rotation", "sidecar.certs")
        return any(
            _within(importer, x) and _within(imported, y) for x in kinds for y in kinds if x != y
        )
    raise AssertionError(rule)


RULES = ("layers", "tools-apart", "plugin-entry-point", "kinds-apart")


def test_every_module_has_a_layer() -> None:
    for module in MODULES:
        assert any(_claims(p, module) for p in LAYERS), module
    for prefix in LAYERS:
        assert prefix in MODULES, f"{prefix} names no module"


@pytest.mark.parametrize("rule", RULES)
def test_import_rule(rule: str) -> None:
    broken = _violations(rule)
    assert not broken, f"imports breaking rule {rule!r}:\n" + "\n".join(broken)


def test_known_exceptions_still_occur() -> None:
    found = {(i.importer, i.imported) for i in IMPORTS}
    for importer, imported, rule in sorted(KNOWN):
        assert rule in RULES, rule
        assert _breaks(rule, importer, imported), (importer, imported, rule)
        assert (importer, imported) in found, f"fixed: remove {importer} -> {imported} from KNOWN"


def test_core_reaches_nothing_outside() -> None:
    stdlib = sys.stdlib_module_names
    broken = []
    for module in MODULES:
        if layer(module) != CORE:
            continue
        for name, line in imports_of(module):
            top = name.split(".")[0]
            if top in ("sidecar", "__future__"):
                continue
            if top not in stdlib or top in OUTSIDE:
                broken.append(f"{MODULES[module].relative_to(ROOT)}:{line} imports {name}")
    assert not broken, "core reaches outside:\n" + "\n".join(broken)


def _cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one node (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(edges.get(node, ())):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return found


def test_no_cycles_between_modules() -> None:
    edges: dict[str, set[str]] = {}
    for imp in IMPORTS:
        # The emulator's helper modules (seeding, persistence) take its state object,
        # named only for the type checker; the tools are not the product.
        if layer(imp.importer) == TOOLS and layer(imp.imported) == TOOLS:
            continue
        # A package's __init__ may gather its own modules; that is not a cycle.
        if imp.imported.startswith(imp.importer + "."):
            continue
        edges.setdefault(imp.importer, set()).add(imp.imported)
    cycles = _cycles(edges)
    assert not cycles, "modules importing each other: " + "; ".join(" <-> ".join(c) for c in cycles)


def test_no_cycles_between_units() -> None:
    edges: dict[str, set[str]] = {}
    for imp in IMPORTS:
        a, b = unit(imp.importer), unit(imp.imported)
        if a != b:
            edges.setdefault(a, set()).add(b)
    cycles = _cycles(edges)
    assert not cycles, "units importing each other: " + "; ".join(" <-> ".join(c) for c in cycles)


def test_the_checks_see_a_cycle_and_a_wrong_way_import() -> None:
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _breaks("layers", "sidecar.model", "sidecar.store")
    assert not _breaks("layers", "sidecar.store", "sidecar.model")
    assert _breaks("tools-apart", "sidecar.daemon", "sidecar.devstack.openbao")
    assert _breaks("tools-apart", "sidecar.emulator.app", "sidecar.errors")
    assert _breaks("plugin-entry-point", "sidecar.resolve", "sidecar.plugin.names")
    assert any(i.importer == "sidecar.plugin.backend" for i in IMPORTS)
