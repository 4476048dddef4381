"""A real OpenBao HA cluster: N ``bao server`` processes on loopback with raft storage.

Used by the test suite to play Vault as a cluster: nodes are killed and restarted
by their own PIDs while the product runs against whichever node is active.

Each node has its own API and cluster port on 127.0.0.1 (TLS disabled on the API
listener; cluster traffic is TLS by construction), its own raft directory and
log file under the cluster's workdir, and ``retry_join`` blocks naming the other
nodes. The cluster is initialised over the HTTP API with one key share; the
unseal key and the root token stay in this object's memory only, never in process
arguments or files.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

import requests

from sidecar.devstack.openbao import find_bao, free_port, stop_process_group
from sidecar.errors import SidecarError

#: ``/v1/sys/health`` on a node that does not answer: killed, or not listening yet.
DOWN = 0


@dataclass
class RaftNode:
    """One member of the cluster: its ports, directory and (when running) process."""

    index: int
    node_id: str
    api_port: int
    cluster_port: int
    workdir: Path
    process: subprocess.Popen[bytes] | None = None

    @property
    def addr(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    @property
    def cluster_addr(self) -> str:
        return f"https://127.0.0.1:{self.cluster_port}"

    @property
    def config_path(self) -> Path:
        return self.workdir / "config.hcl"

    @property
    def log_path(self) -> Path:
        return self.workdir / "bao.log"

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None


class OpenBaoRaftCluster:
    """``size`` OpenBao servers with integrated (raft) storage, initialised and unsealed.

    ``performance_multiplier`` scales raft's timers; 1 is the fastest (what a
    test wants: a new leader within seconds), production defaults to 5.
    """

    def __init__(
        self,
        size: int = 3,
        workdir: str | None = None,
        performance_multiplier: int = 1,
        session: requests.Session | None = None,
        plugin_dir: str | None = None,
    ) -> None:
        if size < 1:
            raise SidecarError("a raft cluster needs at least one node")
        self.size = size
        self.performance_multiplier = performance_multiplier
        #: Every node's ``plugin_directory`` (the plugin must be there on each node).
        self.plugin_dir = plugin_dir
        self._own_workdir = workdir is None
        self.workdir = Path(workdir or tempfile.mkdtemp(prefix="azsidecar-raft-"))
        self.nodes: list[RaftNode] = []
        self._http = session or requests.Session()
        self._root_token: str | None = None
        self._unseal_key: str | None = None

    # -- public -----------------------------------------------------------------------

    @property
    def root_token(self) -> str:
        if self._root_token is None:
            raise SidecarError("the cluster is not initialised yet")
        return self._root_token

    @property
    def addrs(self) -> list[str]:
        return [node.addr for node in self.nodes]

    def start(self, timeout: float = 60.0) -> OpenBaoRaftCluster:
        """Start every node, initialise the first, unseal all, wait for one raft cluster."""
        deadline = time.monotonic() + timeout
        self._allocate()
        for node in self.nodes:
            self._write_config(node)
            self._spawn(node)
        first = self.nodes[0]
        self._wait(deadline, lambda: self.health(0) != DOWN, f"{first.node_id} to listen")
        init = self._request("PUT", first, "sys/init", {"secret_shares": 1, "secret_threshold": 1})
        body = init.json()
        self._root_token = str(body["root_token"])
        self._unseal_key = str((body.get("keys_base64") or body["keys"])[0])
        self._unseal(first, deadline)
        self._wait(deadline, lambda: self.health(0) == 200, f"{first.node_id} to become active")
        # Autopilot promotes a joined node to voter once it has been healthy this
        # long (10 s by default); a test cluster need not wait that.
        self._request(
            "POST",
            first,
            "sys/storage/raft/autopilot/configuration",
            {"server_stabilization_time": "1s"},
        )
        for node in self.nodes[1:]:
            self._unseal(node, deadline)
        self._wait(deadline, self._all_voters, f"all {self.size} nodes to be raft voters")
        self.wait_for_leader(timeout=max(1.0, deadline - time.monotonic()))
        self._enable_kv(deadline)
        return self

    def health(self, index: int) -> int:
        """The HTTP status of ``/v1/sys/health`` on node ``index``: 200 active,
        429 standby, 503 sealed, 501 not initialised; :data:`DOWN` if unreachable."""
        node = self.nodes[index]
        if not node.running:
            return DOWN
        try:
            response = self._http.get(f"{node.addr}/v1/sys/health", timeout=2)
        except requests.RequestException:
            return DOWN
        return response.status_code

    def leader(self) -> int | None:
        """The index of the active node, or None while there is none."""
        for node in self.nodes:
            if self.health(node.index) == 200:
                return node.index
        return None

    def wait_for_leader(self, exclude: Iterable[int] = (), timeout: float = 60.0) -> int:
        """Block until a node not in ``exclude`` is active; return its index."""
        excluded = set(exclude)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = self.leader()
            if found is not None and found not in excluded:
                return found
            time.sleep(0.05)
        raise SidecarError(f"no active OpenBao node (excluding {sorted(excluded)}) in {timeout}s")

    def raft_configuration(self) -> list[dict[str, Any]]:
        """The raft peers as the active node reports them (``sys/storage/raft/configuration``)."""
        for node in self.nodes:
            if not node.running:
                continue
            try:
                response = self._request("GET", node, "sys/storage/raft/configuration")
            except SidecarError:
                continue
            servers = response.json()["data"]["config"]["servers"]
            return [dict(s) for s in servers]
        raise SidecarError("no node answered sys/storage/raft/configuration")

    def kill(self, index: int) -> None:
        """SIGKILL node ``index`` (its whole process group): a crash, not a shutdown."""
        node = self.nodes[index]
        process, node.process = node.process, None
        stop_process_group(process, signal.SIGKILL)

    def restart(self, index: int, timeout: float = 60.0) -> None:
        """Start a killed node again on its old ports and data, and unseal it."""
        node = self.nodes[index]
        if node.running:
            raise SidecarError(f"{node.node_id} is still running")
        deadline = time.monotonic() + timeout
        self._spawn(node)
        self._unseal(node, deadline)
        self._wait(deadline, lambda: self.health(index) in (200, 429), f"{node.node_id} to rejoin")

    def stop(self) -> None:
        for node in self.nodes:
            process, node.process = node.process, None
            stop_process_group(process)

    def cleanup(self) -> None:
        self.stop()
        self._root_token = self._unseal_key = None
        if os.environ.get("AZSIDECAR_TEST_KEEP_BAO_LOGS"):
            return
        if self._own_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> OpenBaoRaftCluster:
        try:
            return self.start()
        except BaseException:
            self.cleanup()
            raise

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.cleanup()

    # -- internals --------------------------------------------------------------------

    def _allocate(self) -> None:
        taken: set[int] = set()

        def port() -> int:
            while (found := free_port()) in taken:
                pass
            taken.add(found)
            return found

        self.nodes = []
        for i in range(self.size):
            workdir = self.workdir / f"node{i}"
            (workdir / "raft").mkdir(parents=True, exist_ok=True)
            self.nodes.append(RaftNode(i, f"node{i}", port(), port(), workdir))

    def _write_config(self, node: RaftNode) -> None:
        # No ``disable_mlock``: OpenBao 2.x dropped mlock and warns about the key.
        joins = "".join(
            f'  retry_join {{\n    leader_api_addr = "{other.addr}"\n  }}\n'
            for other in self.nodes
            if other is not node
        )
        node.config_path.write_text(
            f'storage "raft" {{\n'
            f'  path = "{node.workdir / "raft"}"\n'
            f'  node_id = "{node.node_id}"\n'
            f"  performance_multiplier = {self.performance_multiplier}\n"
            f"{joins}"
            f"}}\n"
            f'listener "tcp" {{\n'
            f'  address = "127.0.0.1:{node.api_port}"\n'
            f'  cluster_address = "127.0.0.1:{node.cluster_port}"\n'
            f"  tls_disable = true\n"
            f"}}\n"
            f'api_addr = "{node.addr}"\n'
            f'cluster_addr = "{node.cluster_addr}"\n'
            f"ui = false\n"
            + (f'plugin_directory = "{self.plugin_dir}"\n' if self.plugin_dir else "")
        )

    def _spawn(self, node: RaftNode) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("BAO_", "VAULT_"))}
        with open(node.log_path, "ab") as log:
            node.process = subprocess.Popen(
                [find_bao(), "server", f"-config={node.config_path}"],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=env,
                cwd=node.workdir,
                start_new_session=True,
            )

    def _request(
        self, method: str, node: RaftNode, path: str, body: dict[str, Any] | None = None
    ) -> requests.Response:
        headers = {"X-Vault-Token": self._root_token} if self._root_token else {}
        try:
            response = self._http.request(
                method, f"{node.addr}/v1/{path}", json=body, headers=headers, timeout=10
            )
        except requests.RequestException as exc:
            raise SidecarError(f"{node.node_id}: {path} failed ({type(exc).__name__})") from exc
        if response.status_code >= 400:
            # The body may name the path and state, never the key or the token.
            raise SidecarError(f"{node.node_id}: {path} answered {response.status_code}")
        return response

    def _unseal(self, node: RaftNode, deadline: float) -> None:
        """Submit the key until the node reports unsealed.

        A node that has not joined yet takes the key and uses it to answer the
        leader's join challenge, so the key may need submitting more than once.
        """
        assert self._unseal_key is not None
        last = ""
        while time.monotonic() < deadline:
            self._check_alive(node)
            try:
                response = self._http.put(
                    f"{node.addr}/v1/sys/unseal", json={"key": self._unseal_key}, timeout=10
                )
                if response.status_code == 200 and response.json().get("sealed") is False:
                    return
                last = f"status {response.status_code}"
            except (requests.RequestException, ValueError) as exc:
                last = type(exc).__name__
            time.sleep(0.2)
        raise SidecarError(f"{node.node_id} did not unseal: {last}")

    def _all_voters(self) -> bool:
        try:
            servers = self.raft_configuration()
        except SidecarError:
            return False
        voters = {s.get("node_id") for s in servers if s.get("voter")}
        return voters == {node.node_id for node in self.nodes}

    def _enable_kv(self, deadline: float) -> None:
        last: Exception | None = None
        while time.monotonic() < deadline:
            active = self.leader()
            if active is not None:
                try:
                    self._request(
                        "POST",
                        self.nodes[active],
                        "sys/mounts/secret",
                        {"type": "kv", "options": {"version": "2"}},
                    )
                    return
                except SidecarError as exc:
                    last = exc
            time.sleep(0.2)
        raise SidecarError(f"could not enable kv-v2 at secret/: {last}")

    def _check_alive(self, node: RaftNode) -> None:
        if node.process is not None and node.process.poll() is not None:
            tail = node.log_path.read_text(errors="replace")[-600:]
            raise SidecarError(f"{node.node_id} exited with {node.process.returncode}: {tail}")

    def _wait(self, deadline: float, condition: Callable[[], bool], what: str) -> None:
        while time.monotonic() < deadline:
            for node in self.nodes:
                self._check_alive(node)
            if condition():
                return
            time.sleep(0.1)
        raise SidecarError(f"timed out waiting for {what}")
