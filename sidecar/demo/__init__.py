"""``azsidecar demo``: OpenBao, the emulator and the daemon on one machine, with CI runs."""
