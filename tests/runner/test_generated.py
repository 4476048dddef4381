"""The committed resolver messages are what protoc makes of resolver.proto, and the
typed glue names the service's methods as the .proto does."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import sidecar
from sidecar.resolver import rpc
from sidecar.resolver.proto import resolver_pb2

ROOT = Path(sidecar.__file__).resolve().parent.parent
PROTO = "sidecar/resolver/proto/resolver.proto"


def test_generated_modules_match_the_proto(tmp_path: Path) -> None:
    bin_dir = str(Path(sys.executable).parent)
    env = dict(os.environ, PATH=bin_dir + os.pathsep + os.environ.get("PATH", ""))
    subprocess.run(
        [
            sys.executable,
            "-m",
            "grpc_tools.protoc",
            "-I.",
            f"--python_out={tmp_path}",
            f"--mypy_out={tmp_path}",
            PROTO,
        ],
        cwd=ROOT,
        env=env,
        check=True,
        capture_output=True,
    )
    for name in ("resolver_pb2.py", "resolver_pb2.pyi"):
        made = (tmp_path / "sidecar/resolver/proto" / name).read_bytes()
        committed = (ROOT / "sidecar/resolver/proto" / name).read_bytes()
        assert made == committed, f"{name} is stale: see sidecar/resolver/proto/README.md"


def test_the_glue_names_the_proto_service() -> None:
    service = resolver_pb2.DESCRIPTOR.services_by_name["Resolver"]
    assert service.full_name == rpc.SERVICE
    method = service.methods_by_name[rpc.RESOLVE]
    assert method.input_type.full_name == "azsidecar.resolver.v1.ResolveRequest"
    assert method.output_type.full_name == "azsidecar.resolver.v1.Credential"
    assert resolver_pb2.DESCRIPTOR.package != "pb"
