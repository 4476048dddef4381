"""Randomised fault schedules against the real processes, with an independent invariant checker.

``schedule`` is pure (a function of the seed); ``harness`` starts OpenBao as a
raft cluster, the emulator, the daemons, the plugin and the resolver and
applies a schedule; ``invariants`` checks what must hold, reading Vault with
hvac and Azure through the emulator's admin API, without the product's code.
"""
