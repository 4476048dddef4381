"""The gRPC credential resolver: the ready credential of ``(stack, phase)`` for a runner.

Served by ``azsidecar resolver`` or embedded in the daemon
(:func:`sidecar.resolver.server.start_resolver`); called by the runner helper
(:class:`sidecar.resolver.client.ResolverClient`) when the secrets-engine
plugin is not mounted.
"""
