"""azsidecar as an OIDC issuer: tokens signed by a Vault Transit key (issue #18).

* :mod:`~sidecar.issuer.planner` (core): which key version signs, which are
  published, when to rotate and retire; a function of the versions' creation
  times, the :class:`~sidecar.issuer.planner.IssuerPolicy` and ``now``.
* :mod:`~sidecar.issuer.documents` (core): the JWT header and claims, the
  JWKS and the OpenID discovery document, as plain data.
* :mod:`~sidecar.issuer.signing` (services): the glue over
  :mod:`sidecar.transit` that signs tokens and serves the documents.
* :mod:`~sidecar.issuer.export` (services): the static files for a public site.
"""
