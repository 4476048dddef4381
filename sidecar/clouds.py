"""Microsoft's clouds: where to sign in, where Graph and ARM live, which scopes to ask for.

From Microsoft's documentation: "Microsoft Graph national cloud deployments"
(learn.microsoft.com/graph/deployments) gives the Entra ID token service
and Graph service roots per cloud; a ``.default`` scope must use the domain of
that cloud's Graph root ("Access national cloud deployments with the
Microsoft Graph SDKs", learn.microsoft.com/graph/sdks/national-clouds). The
Resource Manager roots are those of the Azure SDKs' cloud settings
(AzureClouds in azure-sdk-for-js: ``management.usgovcloudapi.net``,
``management.chinacloudapi.cn``). US Government L5 (DoD) uses another Graph
root (``dod-graph.microsoft.us``): set ``azure.graph_url`` for it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

CloudName = Literal["public", "usgovernment", "china"]


@dataclass(frozen=True)
class Cloud:
    login_url: str
    graph_url: str
    arm_url: str

    @property
    def graph_scope(self) -> str:
        return f"{self.graph_url}/.default"

    @property
    def arm_scope(self) -> str:
        return f"{self.arm_url}/.default"


CLOUDS: dict[str, Cloud] = {
    "public": Cloud(
        "https://login.microsoftonline.com",
        "https://graph.microsoft.com",
        "https://management.azure.com",
    ),
    "usgovernment": Cloud(
        "https://login.microsoftonline.us",
        "https://graph.microsoft.us",
        "https://management.usgovcloudapi.net",
    ),
    "china": Cloud(
        "https://login.chinacloudapi.cn",
        "https://microsoftgraph.chinacloudapi.cn",
        "https://management.chinacloudapi.cn",
    ),
}
