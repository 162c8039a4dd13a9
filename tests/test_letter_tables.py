"""The word-list letter-pair table (`langmodel.WORD_LIST_TABLE`): what it holds, and that
scripts/build_letter_tables.py still builds it from the pinned Debian packages."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from textmend_server import langmodel

REPO = Path(__file__).resolve().parent.parent


def test_every_language_of_the_table_is_modelled_in_its_script() -> None:
    table = json.loads(langmodel.WORD_LIST_TABLE.read_text(encoding="utf-8"))
    assert set(table) == {"sq", "et", "af", "eo", "tk"}
    for lang, body in table.items():
        assert lang in langmodel.LANGUAGES[body["script"]]
        for source in body["sources"]:
            assert source["package"] and source["version"] and source["licence"]
            assert source["words"] > 0
        # Counts of pairs in the models' letter form: lower-case letters and word boundaries.
        letters = {ch for pair in body["pairs"] for ch in pair}
        assert letters == set(langmodel.letter_form("".join(letters), body["script"]))
        assert body["pairs"][" a"] > 0 and all(n > 0 for n in body["pairs"].values())


def test_a_word_list_model_knows_its_own_letters() -> None:
    albanian, lithuanian = langmodel.model("sq"), langmodel.model("lt")
    # `ë` is among Albanian's commonest letters; Lithuanian writes `ė` where windows-1257 has it.
    assert albanian.pair_cost("në") < 5.0 < albanian.pair_cost("nė")
    assert langmodel.cost("Fjalëkalimi yt nuk është aktiv.").lang == "sq"
    assert lithuanian.pair_cost("në") > albanian.pair_cost("në")


@pytest.mark.skipif(shutil.which("apt-get") is None, reason="needs apt-get and a Debian mirror")
def test_the_table_is_what_the_build_script_makes_of_the_pinned_packages(
    tmp_path: Path,
) -> None:
    result = subprocess.run(
        [sys.executable, "scripts/build_letter_tables.py", "--check", "--cache", str(tmp_path)],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
    )
    if result.returncode == 2:  # the mirror unreachable, or a pinned version no longer on it
        pytest.skip(f"could not fetch the pinned packages: {result.stderr.strip()[-300:]}")
    assert result.returncode == 0, result.stderr
