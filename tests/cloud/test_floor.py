"""The floor rule: which agents answer an utterance in a room with several agents."""

from __future__ import annotations

import pytest

from hivecall.cloud.floor import Floor, named, turn, words

TWO = ("echo", "claude")
THREE = ("echo", "claude", "claude-code")


@pytest.mark.parametrize(
    ("utterance", "agents", "expected"),
    [
        ("Echo, run the tests", TWO, ("echo",)),
        ("hey echo, run the tests", TWO, ("echo",)),
        ("Echo?", TWO, ("echo",)),
        ("ECHO!", TWO, ("echo",)),
        ("what did echo's tests say", TWO, ("echo",)),
        ("run the tests", TWO, ()),
        ("echoes are loud", TWO, ()),  # a whole word, not a prefix
        ("the echolocation of bats", TWO, ()),
        ("claude and echo, both of you", TWO, ("claude", "echo")),
        ("echo, then Claude, then echo again", TWO, ("echo", "claude")),
        ("claude code, refactor this", THREE, ("claude-code",)),  # the longer name wins
        ("claude-code: refactor", THREE, ("claude-code",)),
        ("claude, explain; claude code, refactor", THREE, ("claude", "claude-code")),
        ("echo 2, you there?", ("echo", "echo2"), ("echo2",)),
        ("echo2, you there?", ("echo", "echo2"), ("echo2",)),
        ("echo, you there?", ("echo", "echo2"), ("echo",)),
        ("gpt4.1 please", ("gpt4.1",), ("gpt4.1",)),
        ("", TWO, ()),
    ],
)
def test_who_an_utterance_names(
    utterance: str, agents: tuple[str, ...], expected: tuple[str, ...]
) -> None:
    assert named(utterance, agents) == expected


@pytest.mark.parametrize(
    ("floor", "utterance", "answerers", "holder_after"),
    [
        # Before anyone is named, the call's first agent holds the floor.
        (Floor(TWO), "run the tests", ("echo",), None),
        # Naming an agent: it answers and takes the floor.
        (Floor(TWO), "Claude, what changed?", ("claude",), "claude"),
        (Floor(TWO, "claude"), "and the tests?", ("claude",), "claude"),
        (Floor(TWO, "claude"), "echo, your turn", ("echo",), "echo"),
        # Two names: each answers in the order named, the floor goes to the last one.
        (Floor(TWO), "claude and echo, status?", ("claude", "echo"), "echo"),
        (Floor(TWO), "echo and claude, status?", ("echo", "claude"), "claude"),
        # A name of an agent that is not in the room is nobody: the holder answers.
        (Floor(TWO, "claude"), "goose, are you there?", ("claude",), "claude"),
        # The holder left: the floor falls back to the first agent present.
        (Floor(("claude", "goose"), "echo"), "anyone?", ("claude",), "echo"),
        # Alone, an agent answers everything, named or not.
        (Floor(("echo",)), "hello", ("echo",), "echo"),
        (Floor(("echo",)), "claude, hello", ("echo",), "echo"),
        # Noise (no words) is answered by nobody and changes nothing.
        (Floor(TWO, "claude"), " ... ", (), "claude"),
        (Floor(("echo",)), "", (), None),
        # Nobody in the room: nobody answers.
        (Floor(()), "hello", (), None),
    ],
)
def test_who_answers_and_who_holds_the_floor(
    floor: Floor, utterance: str, answerers: tuple[str, ...], holder_after: str | None
) -> None:
    result = turn(floor, utterance)
    assert result.answerers == answerers
    assert result.floor.holder == holder_after
    assert result.floor.agents == floor.agents


def test_every_agent_decides_the_same_from_the_same_inputs() -> None:
    """No shared state: each agent applies the rule to what it heard and they agree."""
    conversation = [
        "hello everyone",
        "claude, what broke?",
        "and why?",
        "echo and claude, fix it together",
        "thanks",
        "echo, run the tests",
        "again please",
    ]
    expected = [
        ("echo",),
        ("claude",),
        ("claude",),
        ("echo", "claude"),
        ("claude",),
        ("echo",),
        ("echo",),
    ]
    floors = {me: Floor(TWO) for me in TWO}
    for utterance, who in zip(conversation, expected, strict=True):
        for me in TWO:
            result = turn(floors[me], utterance)
            assert result.answerers == who
            assert result.answers(me) == (me in who)
            floors[me] = result.floor
        assert floors["echo"] == floors["claude"]


def test_answer_order_when_several_are_named() -> None:
    result = turn(Floor(THREE), "claude-code, echo and claude: report")
    assert result.answerers == ("claude-code", "echo", "claude")
    assert result.before("claude-code") == ()
    assert result.before("echo") == ("claude-code",)
    assert result.before("claude") == ("claude-code", "echo")
    assert result.before("goose") == ()
    assert result.floor.holder == "claude"


def test_agents_joining_and_leaving_keep_the_holder_while_present() -> None:
    floor = turn(Floor(TWO), "claude, hi").floor
    assert floor.with_agents(("echo", "claude", "goose")).current == "claude"
    assert floor.with_agents(("echo", "goose")).current == "echo"
    assert floor.with_agents(()).current is None


def test_words_split_letters_digits_and_punctuation() -> None:
    assert words("Hey, Echo2! claude-code's gpt4.1") == (
        "hey",
        "echo",
        "2",
        "claude",
        "code",
        "s",
        "gpt",
        "4",
        "1",
    )
    assert words("Ça va, Zoë?") == ("ça", "va", "zoë")
