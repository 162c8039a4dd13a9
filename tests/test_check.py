"""`run_check`, the linter view, against the real server: output lines, JSON and exit codes."""

from __future__ import annotations

import io
import json
import re
import socket
from pathlib import Path

import pytest

from textmend_client import TextMendClient
from textmend_client.check import check_lines, run_check

MOJIBAKE_DOC = "Menu of the day\ncafÃ© au lait, 3 euros\n"


def _check(paths: list[Path | str], client: TextMendClient, **options: object):
    out, err = io.StringIO(), io.StringIO()
    code = run_check([str(p) for p in paths], client, out=out, err=err, **options)
    return code, out.getvalue(), err.getvalue()


@pytest.fixture
def clean_file(tmp_path: Path) -> Path:
    path = tmp_path / "clean.txt"
    path.write_text("Nothing wrong here.\nA second, ordinary line.\n", encoding="utf-8")
    return path


@pytest.fixture
def broken_file(tmp_path: Path) -> Path:
    path = tmp_path / "broken.txt"
    path.write_text(MOJIBAKE_DOC, encoding="utf-8")
    return path


def test_clean_file_exits_0_and_prints_nothing(clean_file, client) -> None:
    code, out, err = _check([clean_file], client)
    assert (code, out, err) == (0, "", "")


def test_mojibake_is_reported_at_its_line_and_column(broken_file, client) -> None:
    code, out, err = _check([broken_file], client)
    assert code == 1, err
    lines = out.splitlines()
    assert lines, "a file that needs repair printed nothing"
    assert re.fullmatch(
        re.escape(f"{broken_file}:2:4: mojibake: ") + r".+: 'Ã©' -> 'é'", lines[0]
    ), lines
    assert err == ""


def test_json_format_parses_and_carries_positions(broken_file, clean_file, client) -> None:
    code, out, _ = _check([broken_file, clean_file], client, format="json")
    assert code == 1
    report = json.loads(out)
    documents = {doc["path"]: doc for doc in report["documents"]}
    assert set(documents) == {str(broken_file), str(clean_file)}
    broken, clean = documents[str(broken_file)], documents[str(clean_file)]
    assert broken["needs_repair"] and broken["verdict"] == "repaired"
    (problem,) = broken["problems"]
    assert (problem["line"], problem["column"], problem["category"]) == (2, 4, "mojibake")
    assert (problem["original"], problem["replacement"], problem["kind"]) == ("Ã©", "é", "edit")
    assert not clean["needs_repair"] and clean["problems"] == []
    assert report["skipped"] == report["errors"] == []


def test_directory_is_checked_recursively(tmp_path: Path, client) -> None:
    (tmp_path / "docs" / "deep").mkdir(parents=True)
    (tmp_path / "docs" / "ok.txt").write_text("All is well.\n", encoding="utf-8")
    (tmp_path / "docs" / "deep" / "bad.txt").write_text(MOJIBAKE_DOC, encoding="utf-8")
    (tmp_path / "docs" / "empty.txt").write_bytes(b"")
    (tmp_path / "docs" / "logo.png").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(64))
    (tmp_path / "docs" / ".git").mkdir()
    (tmp_path / "docs" / ".git" / "notes").write_text(MOJIBAKE_DOC, encoding="utf-8")

    code, out, err = _check([tmp_path / "docs"], client)

    assert code == 1
    bad = tmp_path / "docs" / "deep" / "bad.txt"
    assert out.splitlines() and all(line.startswith(f"{bad}:2:4: ") for line in out.splitlines())
    # The binary file is skipped with a warning; .git is not entered.
    assert "logo.png: skipped" in err and "binary" in err
    assert ".git" not in out + err


def test_directory_of_clean_files_exits_0(tmp_path: Path, client) -> None:
    for name in ("a.txt", "b.md"):
        (tmp_path / name).write_text(f"{name} is fine.\n", encoding="utf-8")
    assert _check([tmp_path], client) == (0, "", "")


def test_missing_path_exits_2(tmp_path: Path, client) -> None:
    missing = tmp_path / "no-such-file.txt"
    code, out, err = _check([missing], client)
    assert code == 2
    assert out == ""
    assert f"{missing}: cannot read: No such file or directory" in err


def test_io_error_outranks_needs_repair(tmp_path: Path, broken_file, client) -> None:
    # Named on the command line, a link is read (a walk would skip it): it leads nowhere.
    dangling = tmp_path / "dangling.txt"
    dangling.symlink_to(tmp_path / "gone.txt")
    code, out, err = _check([tmp_path, dangling], client)
    assert code == 2
    assert f"{broken_file}:2:4: mojibake" in out  # the other files are still checked
    assert "dangling.txt: cannot read" in err


def test_bidi_override_fails_the_check(tmp_path: Path, client) -> None:
    path = tmp_path / "trojan.txt"
    path.write_text("access = 'user \u202e \u2066// admin\u2069 \u2066'\n", encoding="utf-8")
    code, out, _ = _check([path], client)
    assert code == 1
    assert f"{path}:1:16: bidi_control: " in out
    assert "\\u202e" in out and "\u202e" not in out  # escaped, so the terminal shows it


def test_unreachable_server_exits_3(broken_file) -> None:
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with TextMendClient(f"127.0.0.1:{port}", timeout=5, channels=1) as nobody:
        code, out, err = _check([broken_file, broken_file], nobody)
    assert code == 3
    assert out == ""
    assert "UNAVAILABLE" in err
    assert err.count("UNAVAILABLE") == 1  # stops at the first failure


def test_check_lines_follow_text_order(client) -> None:
    response = client.repair("first cafÃ©\nsecond â€œquotedâ€\x9d\n")
    lines = check_lines("doc", response)
    positions = [tuple(map(int, line.split(":")[1:3])) for line in lines]
    assert positions == sorted(positions) and positions[0] == (1, 10)
    assert len(lines) == len(response.edits) + len(response.findings)
