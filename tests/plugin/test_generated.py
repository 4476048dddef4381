"""The committed protobuf modules are exactly what protoc makes of the .proto files."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import sidecar

ROOT = Path(sidecar.__file__).resolve().parent.parent
PROTO_DIR = Path("sidecar/plugin/proto")


def test_generated_modules_match_their_protos(tmp_path: Path) -> None:
    protos = sorted(str(p.relative_to(ROOT)) for p in (ROOT / PROTO_DIR).glob("*.proto"))
    assert protos
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
            f"--grpclib_python_out={tmp_path}",
            *protos,
        ],
        cwd=ROOT,
        env=env,
        check=True,
        capture_output=True,
    )
    generated = sorted(p.relative_to(tmp_path) for p in (tmp_path / PROTO_DIR).iterdir())
    committed = sorted(
        p.relative_to(ROOT)
        for p in (ROOT / PROTO_DIR).iterdir()
        if p.name.endswith(("_pb2.py", "_pb2.pyi", "_grpc.py"))
    )
    assert generated == committed
    for path in generated:
        assert (tmp_path / path).read_bytes() == (ROOT / path).read_bytes(), (
            f"{path} is stale: regenerate it (see sidecar/plugin/proto/README.md)"
        )
