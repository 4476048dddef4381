"""The plugin's stored token never goes to an address it was not given for (issue 16, point 5).

``azure/config`` writes merge; a write that changes ``vault_addr`` or
``ca_cert`` must carry the credentials again, or it is refused, so the stored
token is never sent to the new destination. A listener standing in for an
attacker's address records every byte it receives.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from datetime import UTC, datetime

import hvac.exceptions
import pytest

from sidecar.model import Phase
from sidecar.runner.source import read_plugin
from tests.hvac_read import read_json
from tests.runner.conftest import RunnerWorld, seed


class Capture:
    """A TCP listener that keeps whatever is sent to it and answers HTTP 503."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.received = bytearray()
        self.port = self.sock.getsockname()[1]
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with conn:
                conn.settimeout(2)
                try:
                    self.received += conn.recv(65536)
                    conn.sendall(b"HTTP/1.1 503 Unavailable\r\nContent-Length: 0\r\n\r\n")
                except OSError:
                    pass

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def capture() -> Iterator[Capture]:
    c = Capture()
    yield c
    c.close()


def test_changing_vault_addr_without_the_token_is_refused_and_the_token_stays_home(
    world: RunnerWorld, capture: Capture
) -> None:
    seed(world.store, datetime.now(UTC))
    elsewhere = f"http://127.0.0.1:{capture.port}"
    for change in ({"vault_addr": elsewhere}, {"vault_addr": elsewhere, "prefix": "x"}):
        with pytest.raises(hvac.exceptions.InvalidRequest, match="requires the credentials"):
            world.root.write_data("azure/config", data=change)
    with pytest.raises(hvac.exceptions.InvalidRequest, match="ca_cert requires the credentials"):
        world.root.write_data("azure/config", data={"ca_cert": "-----BEGIN CERTIFICATE-----x"})
    assert read_json(world.root, "azure/config")["data"]["vault_addr"] == world.addr
    # The plugin still reads with its token at the old address, and nothing left for the new one.
    run = world.login("A", "plan")
    assert read_plugin(run, "azure", "A", Phase.PLAN).integration == "I1"
    assert world.plugin_token.encode() not in capture.received
    assert capture.received == b""


def test_a_new_address_with_a_new_token_gets_only_the_new_token(
    world: RunnerWorld, capture: Capture
) -> None:
    seed(world.store, datetime.now(UTC))
    elsewhere = f"http://127.0.0.1:{capture.port}"
    world.root.write_data("azure/config", data={"vault_addr": elsewhere, "token": "s.new-token"})
    # Unchanged destination: other fields still merge without the token.
    world.root.write_data("azure/config", data={"propagation_delay": "0"})
    with pytest.raises(hvac.exceptions.VaultError):
        world.root.read("azure/creds/A/plan")
    assert b"s.new-token" in capture.received
    assert world.plugin_token.encode() not in capture.received
