"""What a local caller says to the call itself: "stop" cancels, "how is it going?" asks for
progress; anything longer stays a request for the agent."""

from __future__ import annotations

import pytest

from hivecall.voice.local.commands import CANCEL, STATUS, command


@pytest.mark.parametrize(
    "said",
    [
        "Stop.",
        "Stop!",
        "stop",
        "STOP",
        "Stop, stop.",
        "Cancel that.",
        "Cancel that, please.",
        "Never mind.",
        "Nevermind.",
        "Okay, never mind.",
        "Forget it.",
        "Hey coder, stop.",
        "coder stop now",
        "No, wait, cancel it.",
        "Abort.",
        "Stop working, thank you.",
    ],
)
def test_cancel_phrases(said: str) -> None:
    assert command(said, "coder") == "cancel"


@pytest.mark.parametrize(
    "said",
    ["How is it going?", "How's it going?", "How\u2019s it going?", "Any progress?",
     "Okay, what's the status?", "Are you done yet?", "coder, how is it going?"],
)  # fmt: skip
def test_status_phrases(said: str) -> None:
    assert command(said, "coder") == "status"


@pytest.mark.parametrize(
    "said",
    [
        "Stop the server and restart it.",
        "Don't stop.",
        "Cancel my three o'clock meeting.",
        "What is the status of the build?",
        "Never mind the tests, fix the linter.",
        "How is it going with the migration on staging?",
        "Please run the tests again.",
        "coder",
        "",
        "...",
    ],
)
def test_requests_are_not_commands(said: str) -> None:
    assert command(said, "coder") is None


def test_the_agent_name_is_only_taken_off_the_front() -> None:
    assert command("Stop coder.", "coder") is None  # "stop coder" could be a request
    assert command("Stop.", "") == "cancel"
    assert command("Stop.", "Build-Bot") == "cancel"
    assert command("build bot, stop", "Build-Bot") == "cancel"


def test_the_lists_are_normalized_phrases() -> None:
    for phrase in CANCEL | STATUS:
        assert phrase == phrase.lower().strip()
        assert command(phrase) is not None
