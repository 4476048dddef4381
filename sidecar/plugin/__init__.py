"""The ``azure`` secrets engine as an OpenBao/Vault plugin (go-plugin protocol 5 over gRPC).

Layers, outside in: :mod:`~sidecar.plugin.serve` (process, handshake, TLS
server, shutdown), the gRPC services (:mod:`~sidecar.plugin.backend_service`,
:mod:`~sidecar.plugin.broker`, :mod:`~sidecar.plugin.services`), the path
framework (:mod:`~sidecar.plugin.framework`) and one module per path.
"""
