"""Verified readiness: sign-in probes of new credentials and the lag they measure.

``rule`` holds the pure part (the probe record, how a probe result updates
it, when the next probe is due, whether a credential is verified); ``lag``
turns finished records into the observed lag and the effective delay;
the daemon's I/O loop that signs in and stores the records is
:mod:`sidecar.probing`. Everything here is pure.
"""
