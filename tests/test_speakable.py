"""Written answers become sayable text."""

from __future__ import annotations

from hivecall.speakable import CUT_NOTE, speakable


def test_markdown_is_dropped_and_code_summarised() -> None:
    text = (
        "## Result\n\nI **fixed** the `parse()` bug in [parser.py](src/parser.py).\n\n"
        "```python\ndef parse():\n    return 1\n```\n\n- tests pass\n- lint is clean\n"
        "See https://github.com/acme/app/pull/7 for details."
    )
    out = speakable(text)
    for mark in ("**", "##", "`", "](", "```", "def parse"):
        assert mark not in out
    assert "I fixed the parse() bug in parser.py." in out
    assert "block of python code here, 2 lines" in out
    assert "tests pass. lint is clean." in out
    assert "a link to github.com" in out


def test_plain_text_is_left_alone() -> None:
    assert speakable("All good, nothing to do.") == "All good, nothing to do."
    assert speakable("snake_case_name stays") == "snake_case_name stays"


def test_long_answers_are_cut_at_a_sentence() -> None:
    text = " ".join(f"Sentence number {i} is here." for i in range(200))
    out = speakable(text, max_chars=300)
    assert len(out) <= 300
    assert out.endswith(CUT_NOTE)
    assert out[: -len(CUT_NOTE)].endswith(".")


def test_tables_read_as_rows() -> None:
    out = speakable("| name | state |\n|---|---|\n| api | up |\n| db | down |")
    assert out == "name, state. api, up. db, down."
