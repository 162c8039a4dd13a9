"""The `textmend` command, run in-process with `main([...])` against the real server."""

from __future__ import annotations

import argparse
import base64
import io
import json
import os
import random
import re
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from textmend.v1 import textmend_pb2
from textmend_client import __version__, commands
from textmend_client.cli import build_parser, in_input_order, main
from textmend_client.commands import JsonlInput

MOJIBAKE = "café — it’s".encode().decode("cp1252").encode()
CLEAN = "café — it’s"


def _subcommands() -> dict[str, argparse.ArgumentParser]:
    parser = build_parser()
    (commands,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return dict(commands.choices)


def _stdin(monkeypatch: pytest.MonkeyPatch, data: bytes) -> None:
    monkeypatch.setattr("sys.stdin", io.TextIOWrapper(io.BytesIO(data), encoding="utf-8"))


@pytest.fixture
def mojibake_file(tmp_path):
    path = tmp_path / "article.txt"
    path.write_bytes(MOJIBAKE)
    return path


# --- help and usage --------------------------------------------------------------------------


def test_subcommands_exist() -> None:
    assert set(_subcommands()) == {"repair", "health", "report", "check", "backfill"}


@pytest.mark.parametrize("command", sorted(_subcommands()))
def test_every_subcommand_has_help(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main([command, "--help"]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"usage: textmend {command}")
    for action in _subcommands()[command]._actions:
        assert action.help, (
            f"textmend {command}: {action.option_strings or action.dest} has no help"
        )
    for action in build_parser()._actions:
        assert action.help


def test_help_lists_every_subcommand(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    for command in _subcommands():
        assert command in out


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"textmend {__version__}"


@pytest.mark.parametrize(
    "argv",
    [
        [],
        ["frobnicate"],
        ["repair"],
        ["repair", "x.txt", "--format", "yaml"],
        ["repair", "x.txt", "--policy", "mojibake"],
        ["repair", "--jsonl", "--format", "diff"],
        ["repair", "x.txt", "--min-confidence", "90"],
        ["check", "x.txt", "--min-confidence", "high"],
    ],
)
def test_usage_errors_exit_1(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert "Traceback" not in err


# --- repair ----------------------------------------------------------------------------------


def test_repair_prints_exactly_the_text(
    target: str, mojibake_file, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["repair", str(mojibake_file), "--server", target]) == 0
    assert capsys.readouterr().out == CLEAN


def test_min_confidence_keeps_the_text_of_edits_rated_below_it(
    target: str, capsys: pytest.CaptureFixture[str]
) -> None:
    article = Path(__file__).parent / "fixtures" / "fortune-openai-departures.txt"
    assert main(["repair", str(article), "--server", target]) == 0
    assert "公司。”他稱他們" in capsys.readouterr().out
    argv = ["repair", str(article), "--server", target, "--min-confidence", "0.8"]
    assert main(argv) == 0
    assert "公司?!彼Q他們" in capsys.readouterr().out  # that repair is rated 0.48
    items = [{"id": "a", "text": article.read_text("utf-8"), "min_confidence": 0.8}]
    code, responses = _cli_process(["repair", "--jsonl", "--server", target], _jsonl(items))
    assert code == 0
    assert "公司?!彼Q他們" in responses[0]["text"]


def test_repair_reads_stdin(
    target: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    _stdin(monkeypatch, "Привет, мир. Всё хорошо.".encode("cp1251"))
    assert main(["repair", "-", "--server", target, "--encoding", "windows-1251"]) == 0
    assert capsys.readouterr().out == "Привет, мир. Всё хорошо."


def test_server_from_environment(
    target: str, mojibake_file, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    monkeypatch.setenv("TEXTMEND_SERVER", target)
    assert main(["repair", str(mojibake_file)]) == 0
    assert capsys.readouterr().out == CLEAN


def test_format_json_has_proto_field_names(
    target: str, mojibake_file, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["repair", str(mojibake_file), "--server", target, "--format", "json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["text"] == CLEAN
    assert data["id"] == "article.txt"
    assert data["verdict"] == "VERDICT_REPAIRED"
    assert data["content_bytes"] == str(len(MOJIBAKE))
    assert "original_length" in data
    edit = data["edits"][0]
    assert edit["category"] == "CATEGORY_MOJIBAKE"
    assert {"original_start", "original_end", "cleaned_start", "cleaned_end"} <= set(edit)
    assert "originalStart" not in json.dumps(data)
    assert data["diff"].startswith("--- a/article.txt")


def test_format_diff_plain(target: str, mojibake_file, capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["repair", str(mojibake_file), "--server", target, "--format", "diff"]
    assert main([*argv, "--color", "never"]) == 0
    out = capsys.readouterr().out
    assert "\x1b[" not in out
    assert "--- a/article.txt" in out
    assert f"+{CLEAN}" in out
    assert "repaired ·" in out
    fixed = [line for line in out.splitlines() if line.lstrip().startswith("fixed")]
    assert fixed and all("mojibake" in line for line in fixed)
    assert any("1:4" in line and "'é'" in line for line in fixed)


def test_format_diff_color(target: str, mojibake_file, capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["repair", str(mojibake_file), "--server", target, "--format", "diff"]
    assert main([*argv, "--color", "always"]) == 0
    out = capsys.readouterr().out
    assert "\x1b[32m" in out and "\x1b[31m" in out
    # auto: capsys is not a terminal, so no colour
    assert main(argv) == 0
    assert "\x1b[" not in capsys.readouterr().out


def test_format_diff_of_clean_text(target: str, tmp_path, capsys) -> None:
    path = tmp_path / "clean.txt"
    path.write_text("Nothing to see here.\n", encoding="utf-8")
    assert main(["repair", str(path), "--server", target, "--format", "diff"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("clean ·")
    assert "0 edits" in out


# --- errors ----------------------------------------------------------------------------------


def test_server_error_is_one_line(target: str, tmp_path, capsys) -> None:
    path = tmp_path / "empty.txt"
    path.write_bytes(b"")
    assert main(["repair", str(path), "--server", target]) == 3
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.startswith("textmend: error: INVALID_ARGUMENT: content is empty")
    assert captured.err.count("\n") == 1


def test_unknown_charset_error(target: str, mojibake_file, capsys) -> None:
    assert main(["repair", str(mojibake_file), "--server", target, "--encoding", "x-klingon"]) == 3
    err = capsys.readouterr().err
    assert err.startswith("textmend: error: INVALID_ARGUMENT: ")
    assert "x-klingon" in err


def test_missing_file_is_io_error(target: str, tmp_path, capsys) -> None:
    assert main(["repair", str(tmp_path / "nope.txt"), "--server", target]) == 2
    err = capsys.readouterr().err
    assert err.startswith("textmend: error: ")
    assert "nope.txt" in err
    assert "Traceback" not in err


def _unused_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_unreachable_server(mojibake_file, capsys) -> None:
    server = f"127.0.0.1:{_unused_port()}"
    assert main(["repair", str(mojibake_file), "--server", server, "--timeout", "5"]) == 3
    assert capsys.readouterr().err.startswith("textmend: error: UNAVAILABLE: ")
    assert main(["health", "--server", server, "--timeout", "5"]) == 3
    assert "UNAVAILABLE" in capsys.readouterr().err


def test_unreachable_server_with_fewer_lines_than_channels(tmp_path, capsys) -> None:
    """One JSON line and eight channels: the streams with nothing to send half-closed on a
    channel that had failed, and gRPC's own `ExecuteBatchError` came out as a traceback."""
    server = f"127.0.0.1:{_unused_port()}"
    lines = tmp_path / "one.jsonl"
    lines.write_text('{"id": "1", "text": "cafÃ©"}\n', encoding="utf-8")
    argv = ["repair", "--jsonl", str(lines), "--server", server, "--timeout", "5"]
    assert main(argv) == 3
    captured = capsys.readouterr()
    errors = [line for line in captured.err.splitlines() if line.startswith("textmend:")]
    assert len(errors) == 1 and errors[0].startswith("textmend: error: UNAVAILABLE: ")
    assert "Traceback" not in captured.err
    # A document sent has its line, with the failure (every document sent gets one; the
    # stream may fail before it takes the line, and then there is none to write).
    written = [json.loads(line) for line in captured.out.splitlines()]
    assert len(written) <= 1
    assert all(w["id"] == "1" and w["error"]["code"] == "UNAVAILABLE" for w in written)


# --- health ----------------------------------------------------------------------------------


def test_health(target: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["health", "--server", target]) == 0
    assert capsys.readouterr().out == "SERVING\n"
    assert main(["health", "--server", target, "--service", "textmend.v1.TextMend"]) == 0
    capsys.readouterr()
    assert main(["health", "--server", target, "--service", "no.such.Service"]) == 3
    # One line that names the service, not the gRPC exception's multi-line repr.
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no service named 'no.such.Service'" in err


# --- JSON Lines ------------------------------------------------------------------------------


def _jsonl(items: list[dict]) -> bytes:
    return "".join(json.dumps(item, ensure_ascii=False) + "\n" for item in items).encode()


def test_jsonl_keeps_input_order(
    target: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    items = [{"id": f"doc-{i}", "text": f"Dokument Nummer {i}: schön."} for i in range(20)]
    items[3] = {"id": "doc-3", "text": "cafÃ©"}
    items[7] = {
        "id": "doc-7",
        "content_b64": base64.b64encode("Ελληνικά κείμενα".encode("iso-8859-7")).decode(),
        "declared_encoding": "iso-8859-7",
    }
    _stdin(monkeypatch, _jsonl(items))
    assert main(["repair", "--jsonl", "--server", target]) == 0
    lines = capsys.readouterr().out.splitlines()
    responses = [json.loads(line) for line in lines]
    assert [r["id"] for r in responses] == [item["id"] for item in items]
    assert responses[3]["text"] == "café"
    assert responses[7]["text"] == "Ελληνικά κείμενα"
    assert responses[7]["encoding"]["declared"] == "iso-8859-7"
    assert responses[0]["text"] == "Dokument Nummer 0: schön."
    assert all("\n" not in line for line in lines)


def test_jsonl_document_errors(target: str, monkeypatch, capsys) -> None:
    items = [{"id": "a", "text": "fine"}, {"id": "b", "text": ""}, {"id": "c", "text": "also"}]
    _stdin(monkeypatch, _jsonl(items))
    assert main(["repair", "--jsonl", "--server", target]) == 3
    captured = capsys.readouterr()
    responses = [json.loads(line) for line in captured.out.splitlines()]
    assert [r["id"] for r in responses] == ["a", "b", "c"]
    assert responses[1]["error"]["code"] == "INVALID_ARGUMENT"
    assert "error" not in responses[0] and "error" not in responses[2]
    assert captured.err.startswith("textmend: error: 1 of 3 documents failed")


def test_jsonl_ids_default_to_line_numbers(target: str, monkeypatch, capsys) -> None:
    _stdin(
        monkeypatch, b'{"text": "one"}\n\n{"text": "three", "id": null}\n{"id": 7, "text": "x"}\n'
    )
    assert main(["repair", "--jsonl", "--server", target]) == 0
    responses = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [(r["id"], r["text"]) for r in responses] == [("1", "one"), ("3", "three"), ("7", "x")]


@pytest.mark.parametrize(
    ("data", "complaint"),
    [
        (b'{"id": "a", "text": "ok"}\n{"id": "b", "text": \n', "line 2: not valid JSON"),
        (b'{"id": "a", "text": "ok"}\n["a list"]\n', "line 2: expected a JSON object"),
        (b'{"id": "a", "text": "x"}\n{"id": "a", "text": "y"}\n', "line 2: duplicate id 'a'"),
        (b'{"id": "a"}\n', "line 1: give exactly one of"),
        (b'{"id": ["a"], "text": "x"}\n', "line 1: id must be a string or an integer, not list"),
        (b'{"id": true, "text": "x"}\n', "line 1: id must be a string or an integer, not bool"),
        (b'{"id": "a", "content_b64": "%%%"}\n', 'line 1: "content_b64" is not valid base64'),
        (
            b'{"id": "a", "text": "x", "declared_encodng": "latin-1"}\n',
            "line 1: unknown key 'declared_encodng': did you mean 'declared_encoding'?",
        ),
        (
            b'{"id": "a", "text": "x"}\n{"id": "b", "text": "y", "minConfidence": 0.9}\n',
            "line 2: unknown key 'minConfidence': did you mean 'min_confidence'?",
        ),
    ],
)
def test_jsonl_bad_lines(target: str, monkeypatch, capsys, data: bytes, complaint: str) -> None:
    _stdin(monkeypatch, data)
    assert main(["repair", "--jsonl", "--server", target]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.startswith(f"textmend: error: {complaint}")


def test_jsonl_lines_may_carry_their_own_metadata(target: str, monkeypatch, capsys) -> None:
    """Keys far from every request field (a line's url, its fetch time) are left alone."""
    line = {"id": "a", "text": "caf\u00c3\u00a9", "url": "https://example.org/", "uid": 7}
    _stdin(monkeypatch, _jsonl([line]))
    assert main(["repair", "--jsonl", "--server", target]) == 0
    [response] = [json.loads(out) for out in capsys.readouterr().out.splitlines()]
    assert response["text"] == "café"


def test_in_input_order_reorders() -> None:
    ids = [str(i) for i in range(50)]
    shuffled = ids[:]
    random.Random(4).shuffle(shuffled)
    responses = [textmend_pb2.RepairResponse(id=i) for i in shuffled]
    assert [r.id for r in in_input_order(ids, responses)] == ids


def test_format_diff_shows_invisible_characters(target: str, tmp_path, capsys) -> None:
    path = tmp_path / "zw.txt"
    path.write_text("The zero\u200bwidth space and a be\x07ll hide here.\n", encoding="utf-8")
    for color in ("never", "always"):
        argv = ["repair", str(path), "--server", target, "--format", "diff", "--color", color]
        assert main(argv) == 0
        out = re.sub(r"\x1b\[[0-9;]*m", "", capsys.readouterr().out)
        assert "\u200b" not in out and "\x07" not in out
        assert "zero\\u200b" in out
        assert "'\\u0007' → ''" in out


def test_client_does_not_import_the_engine() -> None:
    code = (
        "import sys, textmend_client, textmend_client.cli; "
        "sys.exit(1 if any(m.startswith('textmend_server') for m in sys.modules) else 0)"
    )
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0


def test_check_command_lints_a_directory(target: str, tmp_path, capsys) -> None:
    (tmp_path / "clean.txt").write_text("All “fine” here.\n", encoding="utf-8")
    (tmp_path / "broken.txt").write_text("first line\nso cafÃ© it is\n", encoding="utf-8")
    assert main(["check", str(tmp_path), "--server", target]) == 1
    out = capsys.readouterr().out
    assert f"{tmp_path / 'broken.txt'}:2:7: mojibake:" in out
    assert "clean.txt" not in out
    assert main(["check", str(tmp_path / "clean.txt"), "--server", target]) == 0


def test_report_command_writes_one_html_file(target: str, tmp_path, capsys) -> None:
    (tmp_path / "broken.txt").write_text("so cafÃ© it is</p>\n", encoding="utf-8")
    output = tmp_path / "out" / "report.html"
    output.parent.mkdir()
    assert (
        main(["report", str(tmp_path / "broken.txt"), "-o", str(output), "--server", target]) == 0
    )
    page = output.read_text(encoding="utf-8")
    assert page.lstrip().lower().startswith("<!doctype html>")
    assert "Ã©" in page and "é<" in page and "mojibake" in page


def test_batch_repairs_a_tree_and_resumes(target: str, tmp_path, capsys) -> None:
    source = tmp_path / "in"
    (source / "sub").mkdir(parents=True)
    (source / "a.txt").write_bytes("cafÃ© one\n".encode())
    (source / "sub" / "b.txt").write_bytes("clean “two”\n".encode())
    (source / "sub" / "c.gbk").write_bytes("公司的人都說他們很好。這是一個測試。".encode("gbk") * 3)
    (source / "image.png").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(200))
    single = tmp_path / "single.txt"
    single.write_bytes(b"be\x07ll here\n")
    output = tmp_path / "out"
    argv = ["repair", str(source), str(single), "--output-dir", str(output), "--server", target]
    assert main(argv) == 0
    captured = capsys.readouterr()
    assert (output / "a.txt").read_text(encoding="utf-8") == "café one\n"
    assert (output / "sub" / "b.txt").read_text(encoding="utf-8") == "clean “two”\n"
    assert (output / "sub" / "c.gbk").read_text(encoding="utf-8").startswith("公司的人")
    assert (output / "single.txt").read_text(encoding="utf-8") == "bell here\n"
    assert not (output / "image.png").exists()
    assert "skipped" in captured.err and "image.png" in captured.err
    assert re.search(r"repaired\s+2\n", captured.out)
    assert not list(output.rglob("*.textmend-partial"))
    # A second run finds every output written and repairs nothing again.
    (output / "a.txt").write_text("kept as it is", encoding="utf-8")
    assert main(argv) == 0
    assert re.search(r"already done\s+4\n", capsys.readouterr().out)
    assert (output / "a.txt").read_text(encoding="utf-8") == "kept as it is"


def test_batch_counts_files_past_a_limit_as_too_large(target: str, tmp_path, capsys) -> None:
    """A file with a line over the server's --max-line-kb, or over the request size, is
    skipped with a warning and counted as such: not as binary, not as a server failure."""
    source = tmp_path / "in"
    source.mkdir()
    (source / "ok.txt").write_text("fine\n", encoding="utf-8")
    (source / "one-line.txt").write_bytes(b"x" * (1100 << 10))  # a 1,100 KiB line
    (source / "image.png").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(200))
    argv = ["repair", str(source), "--output-dir", str(tmp_path / "out"), "--server", target]
    assert main(argv) == 0
    captured = capsys.readouterr()
    assert re.search(r"^skipped \(binary\)\s+1$", captured.out, re.M), captured.out
    assert re.search(r"^skipped \(too large\)\s+1$", captured.out, re.M), captured.out
    assert re.search(r"^server failures\s+0$", captured.out, re.M), captured.out
    assert "one-line.txt: RESOURCE_EXHAUSTED" in captured.err
    # Over the client's own limit: refused unsent, counted the same way.
    (source / "one-line.txt").unlink()
    (source / "big.txt").write_bytes(b"a long document line\n" * 60_000)  # 1.2 MiB
    argv[3] = str(tmp_path / "out2")
    assert main([*argv, "--max-message-mb", "1"]) == 0
    captured = capsys.readouterr()
    assert re.search(r"^skipped \(too large\)\s+1$", captured.out, re.M), captured.out
    assert "big.txt: larger than the 1 MB" in captured.err


def test_batch_shows_invisible_characters_in_file_names(target: str, tmp_path, capsys) -> None:
    """A file name is the caller's data: an override or an escape in it is shown as a code
    point, never sent to the terminal (as `check` and `report` already did)."""
    source = tmp_path / "in"
    source.mkdir()
    (source / "ok.txt").write_text("fine\n", encoding="utf-8")
    (source / "evil\u202egnp.exe\x1b[31m").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(200))
    argv = ["repair", str(source), "--output-dir", str(tmp_path / "out"), "--server", target]
    assert main(argv) == 0
    err = capsys.readouterr().err
    assert "skipped" in err and "evil⟨U+202E⟩gnp.exe⟨U+001B⟩[31m" in err
    assert "\u202e" not in err and "\x1b" not in err


def test_batch_refuses_two_inputs_written_to_one_output(target: str, tmp_path, capsys) -> None:
    # Both directories hold a.txt: one output would have been lost without a word.
    for name in ("x", "y"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "a.txt").write_text(f"from {name}\n", encoding="utf-8")
    output = tmp_path / "out"
    argv = ["repair", str(tmp_path / "x"), str(tmp_path / "y"), "--output-dir", str(output)]
    assert main([*argv, "--server", target]) == 2
    assert "would both be written to" in capsys.readouterr().err
    assert not output.exists()


def test_batch_with_its_output_inside_its_input_resumes(target: str, tmp_path, capsys) -> None:
    source = tmp_path / "in"
    source.mkdir()
    (source / "a.txt").write_bytes("cafÃ© one\n".encode())
    argv = ["repair", str(source), "--output-dir", str(source / "out"), "--server", target]
    assert main(argv) == 0
    assert main(argv) == 0  # the first run's outputs are not read as inputs
    assert re.search(r"already done\s+1\n", capsys.readouterr().out)
    assert (source / "out" / "a.txt").read_text(encoding="utf-8") == "café one\n"
    assert not (source / "out" / "out").exists()


def test_batch_skips_links_and_pipes_it_meets_and_reads_odd_names(
    target: str, tmp_path, capsys
) -> None:
    source = tmp_path / "in"
    source.mkdir()
    outside = tmp_path / "secret.txt"
    outside.write_text("not part of the tree\n", encoding="utf-8")
    (source / "link.txt").symlink_to(outside)
    (source / "linked-dir").symlink_to(tmp_path, target_is_directory=True)
    os.mkfifo(source / "pipe")  # reading it would wait for a writer forever
    name = os.fsdecode(b"caf\xe9.txt")  # a file name that is not UTF-8
    (source / name).write_bytes("cafÃ© two\n".encode())
    output = tmp_path / "out"
    argv = ["repair", str(source), "--output-dir", str(output), "--server", target]
    assert main(argv) == 0
    captured = capsys.readouterr()
    assert (output / name).read_text(encoding="utf-8") == "café two\n"
    assert sorted(p.name for p in output.iterdir()) == [name]
    assert re.search(r"skipped \(links, pipes\)\s+3\n", captured.out)
    assert "a symbolic link" in captured.err and "not a regular file" in captured.err


def test_check_refuses_a_file_larger_than_a_request_unread(target: str, tmp_path, capsys) -> None:
    from textmend_client.client import TextMendClient
    from textmend_client.files import repair_files

    big = tmp_path / "big.txt"
    with open(big, "wb") as handle:
        handle.truncate(3 << 20)  # sparse: 3 MiB that take no room
    with TextMendClient(target, max_message_mb=1) as client:
        [outcome] = list(repair_files([str(big)], client))
    assert outcome.status == "too_large" and "1 MB" in str(outcome.error)
    assert outcome.content == b""


def test_report_is_not_written_over_an_input(target: str, tmp_path, capsys) -> None:
    notes = tmp_path / "notes.txt"
    notes.write_text("cafÃ©\n", encoding="utf-8")
    assert main(["report", str(notes), "-o", str(notes), "--server", target]) == 2
    assert "is one of the inputs" in capsys.readouterr().err
    assert notes.read_text(encoding="utf-8") == "cafÃ©\n"


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ('{"text": "a", "policy": "mojibake"}', '"policy" must map categories'),
        ('{"text": "a", "policy": [1]}', '"policy" must map categories'),
        ('{"text": "a", "omit_diff": "false"}', '"omit_diff" must be true or false'),
    ],
)
def test_jsonl_lines_with_fields_of_the_wrong_type_are_usage_errors(
    monkeypatch, capsys, line: str, message: str
) -> None:
    _stdin(monkeypatch, (line + "\n").encode())
    assert main(["repair", "--jsonl", "--server", "127.0.0.1:9"]) == 1
    assert f"line 1: {message}" in capsys.readouterr().err


@pytest.mark.parametrize("value", ["inf", "nan", "-1", "abc"])
def test_a_timeout_must_be_a_positive_finite_number(value: str, capsys) -> None:
    assert main(["repair", "--timeout", value, "x.txt"]) != 0
    assert "argument --timeout" in capsys.readouterr().err


def test_batch_says_how_many_files_were_not_tried_when_the_server_is_gone(tmp_path, capsys) -> None:
    source = tmp_path / "in"
    source.mkdir()
    for k in range(12):
        (source / f"f{k}.txt").write_text(f"cafÃ© {k}\n", encoding="utf-8")
    # A loopback port nothing listens on: connections are refused.
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    argv = ["repair", str(source), "--output-dir", str(tmp_path / "out")]
    assert main([*argv, "--server", f"127.0.0.1:{port}"]) == 3
    err = capsys.readouterr().err
    assert re.search(r"\d+ of 12 files were not tried; run the same command again", err)


def test_batch_needs_an_output_dir_for_several_paths(tmp_path, capsys) -> None:
    assert main(["repair", str(tmp_path), str(tmp_path)]) == 1
    assert "--output-dir" in capsys.readouterr().err


def test_progress_line_reports_rates_and_eta() -> None:
    from textmend_client.batch import Progress

    stream = io.StringIO()
    progress = Progress(4, stream, interval=0.0)
    progress.started -= 2.0  # two seconds into the run
    progress.advance(1_000_000)
    progress.advance(1_000_000)
    line = stream.getvalue().splitlines()[-1]
    assert line.startswith("[############............] 2/4 documents")
    assert "docs/s" in line and "MB/s" in line and "ETA 0:00:0" in line


def _cli_process(argv: list[str], stdin: bytes) -> tuple[int, list[dict]]:
    """Run the command in a process of its own: `--processes` forks, which is safe only in a
    process that has no gRPC channel yet (this test process has many), as in real use."""
    done = subprocess.run(
        [sys.executable, "-m", "textmend_client.cli", *argv],
        input=stdin,
        capture_output=True,
        timeout=120,
    )
    return done.returncode, [json.loads(line) for line in done.stdout.decode().splitlines()]


@pytest.mark.parametrize("processes", ["1", "2"])
def test_jsonl_fields_write_what_they_name(target: str, processes: str) -> None:
    items = [{"id": f"d{i}", "text": f"Zeile {i}: schön."} for i in range(7)]
    items[2] = {"id": "d2", "text": "cafÃ© au lait"}
    items[5] = {"id": "d5", "text": ""}
    argv = ["repair", "--jsonl", "--server", target, "--processes", processes]
    code, responses = _cli_process([*argv, "--fields", "text,edits"], _jsonl(items))
    assert code == 3  # d5 is empty: an error line
    assert [r["id"] for r in responses] == [item["id"] for item in items]
    assert responses[2]["text"] == "café au lait" and responses[2]["edits"]
    assert responses[5]["error"]["code"] == "INVALID_ARGUMENT"
    for r in responses[:5]:
        assert set(r) <= {"id", "text", "edits"}
    # By default everything but the diff, which the server is not asked to make.
    code, responses = _cli_process(argv, _jsonl(items[:3]))
    assert code == 0
    assert {"text", "encoding", "edits", "verdict"} <= set(responses[2])
    assert "diff" not in responses[2]
    code, responses = _cli_process([*argv, "--fields", "diff"], _jsonl(items[:3]))
    assert code == 0
    assert set(responses[2]) == {"id", "diff"} and responses[2]["diff"].startswith("--- a/d2")


def test_jsonl_input_is_checked_whole_then_read_again_as_it_is_sent(target: str, tmp_path) -> None:
    # Standard input that is a regular file, positioned after a header: both processes read
    # their part again from where the input began, without moving each other's offset.
    items = [{"id": f"d{i}", "text": f"Zeile {i}: schön."} for i in range(12)]
    items[4] = {"id": "d4", "text": "cafÃ© au lait"}
    header = b"not part of the input\n"
    path = tmp_path / "in.jsonl"
    path.write_bytes(header + _jsonl(items).replace(b"\n", b"\n\n", 3))
    argv = ["-m", "textmend_client.cli", "repair", "--jsonl", "--server", target]
    with open(path, "rb") as handle:
        os.lseek(handle.fileno(), len(header), os.SEEK_SET)
        done = subprocess.run(
            [sys.executable, *argv, "--processes", "2", "--fields", "text"],
            stdin=handle,
            capture_output=True,
            timeout=120,
        )
    assert done.returncode == 0, done.stderr
    responses = [json.loads(line) for line in done.stdout.decode().splitlines()]
    assert [r["id"] for r in responses] == [item["id"] for item in items]
    assert responses[4]["text"] == "café au lait"
    # A bad last line stops the run before any document is sent, from a file or a pipe.
    path.write_bytes(_jsonl(items) + b'{"id": "d99", "text": 5}\n')
    for how in ("path", "pipe"):
        args = [sys.executable, *argv] + ([str(path)] if how == "path" else [])
        done = subprocess.run(
            args, input=None if how == "path" else path.read_bytes(), capture_output=True
        )
        assert done.returncode == 1 and done.stdout == b""
        assert b"line 13:" in done.stderr


@pytest.mark.parametrize("hold", [0, commands.JSONL_HOLD_BYTES])
def test_jsonl_input_sends_no_more_than_it_checked(tmp_path, monkeypatch, hold: int) -> None:
    # Held from the check, or (an input larger than the budget) read again to send.
    monkeypatch.setattr(commands, "JSONL_HOLD_BYTES", hold)
    path = tmp_path / "in.jsonl"
    path.write_bytes(_jsonl([{"text": "eins"}, {"text": "zwei"}]))
    with open(path, "rb") as handle:
        source = JsonlInput(handle, {})
        with open(path, "ab") as more:  # written to after the check
            more.write(_jsonl([{"text": "drei"}]))
        assert len(source) == 2 and list(source.sizes) == [4, 4]
        assert [r.id for r in source.requests()] == ["1", "2"]
        assert [r.id for r in source.requests(1, 2)] == ["2"]
    piped = JsonlInput(io.BytesIO(b'{"text": "eins"}\n\n{"text": "zwei"}'), {})
    assert [r.content for r in piped.requests()] == [b"eins", b"zwei"]
    piped.close()


def test_repair_of_a_directory_says_how_to_repair_one(tmp_path, capsys) -> None:
    """Not the OS's bare `Is a directory`: the usage that does it."""
    assert main(["repair", str(tmp_path)]) == 1
    assert "is a directory: give an --output-dir" in capsys.readouterr().err


def test_fields_needs_jsonl_and_known_names(tmp_path, capsys) -> None:
    path = tmp_path / "a.txt"
    path.write_text("x")
    assert main(["repair", str(path), "--fields", "text"]) == 1
    assert main(["repair", "--jsonl", "--fields", "txt"]) == 1
    assert "unknown field 'txt'" in capsys.readouterr().err


@pytest.mark.parametrize("timeout", [0, -1.0, float("nan"), float("inf")])
def test_a_call_timeout_that_cannot_work_is_refused(target: str, timeout: float) -> None:
    # `timeout=0` had silently meant the client's default.
    from textmend_client.client import TextMendClient

    with TextMendClient(target) as client, pytest.raises(ValueError, match="timeout"):
        client.repair(b"text", timeout=timeout)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"policy": {"mojibake": "bogus"}}, "unknown action"),
        ({"min_confidence": 1.5}, "from 0 to 1"),
        ({"id": "i" * 3000}, "over the server's limit"),
        ({"policy": {"nosuchcategory": "fix"}}, "unknown category"),  # refused by the server
    ],
)
def test_a_bad_request_is_invalid_input_whichever_side_refuses_it(
    target: str, options: dict, message: str
) -> None:
    """One `except TextMendError` (or `InvalidInput`) catches every refused request, whether
    the client refused it before sending it or the server did."""
    from textmend_client import InvalidInput, TextMendClient

    with TextMendClient(target) as client, pytest.raises(InvalidInput, match=message) as caught:
        client.repair(b"text", **options)
    assert caught.value.code.name == "INVALID_ARGUMENT"


def test_content_type_takes_any_media_type(target: str, tmp_path, capsys) -> None:
    # An RSS feed named as such keeps its tags; its mojibake is still repaired.
    feed = tmp_path / "feed.txt"
    feed.write_bytes("<rss><item><title>cafÃ©</title></item></rss>".encode())
    argv = ["repair", str(feed), "--server", target]
    assert main([*argv, "--content-type", "application/rss+xml"]) == 0
    assert capsys.readouterr().out == "<rss><item><title>café</title></item></rss>"
    assert main([*argv, "--content-type", "not a type"]) == 1
    assert "expected a media type" in capsys.readouterr().err


def test_max_message_mb_sets_the_clients_limit(target: str, tmp_path, monkeypatch, capsys) -> None:
    """The command can match a server started with another --max-message-mb: here a limit
    below the document, which the client itself then refuses to send."""
    path = tmp_path / "two-mib.txt"
    path.write_bytes(b"plain text line\n" * (2 << 16))
    assert main(["repair", str(path), "--server", target, "--format", "json"]) == 0
    capsys.readouterr()
    assert main(["repair", str(path), "--server", target, "--max-message-mb", "1"]) == 3
    assert "this client's max_message_mb limit" in capsys.readouterr().err
    monkeypatch.setenv("TEXTMEND_MAX_MESSAGE_MB", "1")
    assert build_parser().parse_args(["repair", str(path)]).max_message_mb == 1
    assert main(["repair", str(path), "--max-message-mb", "4096"]) == 1
    assert "must be at most 2047, not 4096" in capsys.readouterr().err
