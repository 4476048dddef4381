# The azsidecar image: daemon, emulator, CLI. Python 3.11 on Debian slim; the
# project's runtime dependencies are pinned (==) in pyproject.toml.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY sidecar ./sidecar
COPY vault-config ./vault-config
# Directories that named volumes are mounted on: a new volume takes their owner.
RUN pip install -e . \
 && useradd --system --uid 10001 azsidecar \
 && mkdir -p /emulator-ca /emulator-state /run/azsidecar \
 && chown azsidecar /emulator-ca /emulator-state /run/azsidecar
USER azsidecar
ENTRYPOINT ["azsidecar"]
CMD ["--help"]
