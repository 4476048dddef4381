"""What the plugin's paths need from one mount, as protocols; no path imports the backend.

:class:`sidecar.plugin.backend.AzureBackend` is the one implementation; it
builds its paths by handing itself to them. Each path module depends on the
smallest of these it needs, so a path can be tested against a fake mount and
the backend can change without the paths knowing. ``config`` needs only its
own record: its protocol, ``ConfigMount``, is beside ``PluginConfig`` in
:mod:`sidecar.plugin.path_config`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Protocol, TypeVar

from sidecar.plugin.path_config import PluginConfig
from sidecar.resolve import FederatedSigner, ReadCache
from sidecar.timing import TimingPolicy
from sidecar.vault import VaultKV
from sidecar.vault_login import VaultLogin

T = TypeVar("T")


class KVMount(Protocol):
    """A mount whose paths read the product's KV data."""

    async def with_kv(self, call: Callable[[VaultKV], T]) -> T:
        """Run ``call`` with the KV adapter (in a thread); log in again once if denied."""
        ...


class CredsMount(KVMount, Protocol):
    """What ``creds/<stack>/<phase>`` needs: the clock, the timing rules, logins, a cache."""

    @property
    def clock(self) -> Callable[[], datetime]: ...

    @property
    def read_cache(self) -> ReadCache: ...

    async def timing_policy(self) -> TimingPolicy: ...

    async def federated_signer(self) -> FederatedSigner:
        """What signs a federated credential's token: the configured Transit key."""
        ...

    async def login_metadata(self, accessor: str) -> Mapping[str, str]:
        """The caller's own login metadata, by its token accessor."""
        ...


class HealthMount(Protocol):
    """What ``health`` needs: the configuration, and the plugin's own Vault login."""

    @property
    def login(self) -> VaultLogin | None: ...

    async def load_config(self) -> PluginConfig | None: ...
