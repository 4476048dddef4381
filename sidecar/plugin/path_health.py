"""``health``: the plugin's own Vault login, as the daemon's ``/healthz`` shows its own.

Whether the plugin's token will expire or could not be renewed, how many times
it was renewed and how many logins it took; never the token itself.
"""

from __future__ import annotations

from sidecar.plugin.framework import FieldData, Op, Path, Request, Response
from sidecar.plugin.mount import HealthMount


def path_health(backend: HealthMount) -> list[Path]:
    async def read(request: Request, data: FieldData) -> Response | None:
        login = backend.login
        if login is None:
            config = await backend.load_config()
            state = "not configured" if config is None else "not logged in yet (no read so far)"
            return Response(data={"vault_token": None, "status": state})
        status = login.status()
        return Response(
            data={
                "vault_token": status.as_dict(status.checked_at),
                "status": "failing" if status.problem else "ok",
            }
        )

    return [
        Path(
            pattern="health",
            fields={},
            operations={Op.READ: read},
            synopsis="The state of the plugin's own Vault token.",
            description="""
The plugin reads the product's KV data with its own token or login (see config).
It renews that token at two thirds of its TTL and logs in again (AppRole, JWT)
before the maximum TTL; this path shows when the token expires, the renewals
and logins so far, and a problem (status failing) when it will expire unrenewed
or a login was refused.
""",
        )
    ]
