"""The life cycle every credential kind shares, decided without I/O.

Every kind (a client secret, a certificate, later a federated credential)
goes the same way: write an intent, create the credential in Azure named
after it, store it in Vault, clear the intent, renew before expiry, remove
it when retired. :mod:`.actions` holds what a plan asks an executor to do,
:mod:`.reconcile` the rules that hold Azure and Vault to each other, and
:mod:`.plan` the planner a kind parameterises with a :class:`~.plan.Kind`.
"""
