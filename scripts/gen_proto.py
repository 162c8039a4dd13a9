"""Generate the Python stubs for proto/textmend/v1/textmend.proto.

The stubs are committed under client/textmend/v1/ so that `pip install .` needs no code
generator. Run this after editing the proto; `--check` exits 1 when the committed stubs differ
from what the proto generates (scripts/test.sh runs it before the tests).

    python scripts/gen_proto.py          # regenerate in place
    python scripts/gen_proto.py --check  # verify, change nothing
"""

from __future__ import annotations

import argparse
import filecmp
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PROTO_ROOT = ROOT / "proto"
PROTO = PROTO_ROOT / "textmend" / "v1" / "textmend.proto"
OUT_ROOT = ROOT / "client"
PACKAGE = Path("textmend") / "v1"
GENERATED = ["textmend_pb2.py", "textmend_pb2.pyi", "textmend_pb2_grpc.py", "textmend_pb2_grpc.pyi"]


def generate(out_root: Path) -> None:
    """Run protoc (from grpcio-tools) with the Python, gRPC and mypy plugins into out_root."""
    from grpc_tools import protoc  # imported here: only needed at generation time

    out_root.mkdir(parents=True, exist_ok=True)
    bindir = Path(sys.executable).parent
    args = [
        "grpc_tools.protoc",
        f"-I{PROTO_ROOT}",
        f"--plugin=protoc-gen-mypy={bindir / 'protoc-gen-mypy'}",
        f"--plugin=protoc-gen-mypy_grpc={bindir / 'protoc-gen-mypy_grpc'}",
        f"--python_out={out_root}",
        f"--grpc_python_out={out_root}",
        f"--mypy_out={out_root}",
        f"--mypy_grpc_out={out_root}",
        str(PROTO),
    ]
    if protoc.main(args) != 0:
        raise SystemExit("protoc failed; see the message above")
    for pkg in (out_root / "textmend", out_root / PACKAGE):
        init = pkg / "__init__.py"
        if not init.exists():
            init.write_text('"""Generated from proto/textmend/v1/textmend.proto."""\n')
        (pkg / "py.typed").touch()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail if committed stubs are stale")
    args = parser.parse_args(argv)
    if not args.check:
        generate(OUT_ROOT)
        print(f"generated {', '.join(GENERATED)} in {OUT_ROOT / PACKAGE}")
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        generate(Path(tmp))
        stale = [
            name
            for name in GENERATED
            if not (OUT_ROOT / PACKAGE / name).exists()
            or not filecmp.cmp(Path(tmp) / PACKAGE / name, OUT_ROOT / PACKAGE / name, shallow=False)
        ]
    if stale:
        print(f"stale generated stubs: {', '.join(stale)}; run: python scripts/gen_proto.py")
        return 1
    print("generated stubs are current")
    return 0


if __name__ == "__main__":
    sys.exit(main())
