"""The plugin refuses to start unless OpenBao starts it the way it can serve."""

from __future__ import annotations

import pytest

from sidecar.plugin.handshake import COOKIE_KEY, handshake_line
from tests.plugin.hosting import host_cert, plugin_env, start_plugin

CERT = host_cert()


@pytest.mark.parametrize(
    ("overrides", "drop", "message"),
    [
        ({}, COOKIE_KEY, "secrets-engine plugin"),
        ({COOKIE_KEY: "wrong"}, None, "secrets-engine plugin"),
        ({"PLUGIN_PROTOCOL_VERSIONS": "3,4"}, None, "protocol versions"),
        ({"PLUGIN_PROTOCOL_VERSIONS": ""}, None, "protocol versions"),
        ({"BAO_PLUGIN_METADATA_MODE": "true"}, None, "metadata mode"),
        ({"VAULT_PLUGIN_METADATA_MODE": "true"}, None, "metadata mode"),
        ({}, "PLUGIN_CLIENT_CERT", "AutoMTLS"),
    ],
)
def test_refuses_to_start(overrides: dict[str, str], drop: str | None, message: str) -> None:
    env = plugin_env(CERT, **overrides)
    if drop:
        env.pop(drop)
    process = start_plugin(env)
    stdout, stderr = process.communicate(timeout=30)
    assert process.returncode != 0
    assert message in stderr
    assert stdout == ""  # stdout carries the handshake line or nothing


def test_handshake_line_is_go_plugin_shaped() -> None:
    line = handshake_line("/tmp/x/plugin.sock", b"\x01\x02\x03\x04")
    assert line == "1|5|unix|/tmp/x/plugin.sock|grpc|AQIDBA"  # base64 without padding
