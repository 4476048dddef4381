# Stand-in for python:3.11-slim, built by tests/compose/standins.py only when
# the official image is not in the local engine (no registry reachable here).
# Debian bookworm's own Python 3.11 as a venv on /usr/local, so `python` and
# `pip` are on PATH where the official image has them.
FROM azsidecar-standin/debian:bookworm
LABEL org.azsidecar.standin="python:3.11-slim"
ENV LANG=C.UTF-8
# The host's CA bundle and pip settings, so pip reaches the index this machine uses.
COPY ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
COPY pip.conf /etc/pip.conf
RUN python3 -m venv /usr/local \
 && /usr/local/bin/python --version
CMD ["python3"]
