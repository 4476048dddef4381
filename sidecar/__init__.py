"""Azure credential sidecar for Vault / OpenBao.

Keeps every integration's Azure AD application supplied with client secrets
created ahead of time, and hands a run only a secret old enough to have
replicated across Azure AD.
"""

__version__ = "0.1.0"
