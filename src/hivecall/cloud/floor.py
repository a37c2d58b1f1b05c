"""The floor: which agents in a cloud call answer what a person just said.

Several agents can share one room. Each runs in its own worker job and decides on its own, from
the same inputs (the agents in the room, in join order, and the utterance), so they agree
without talking to each other:

- Agents hear people only: another agent's speech never reaches this rule.
- An agent answers an utterance that names it (a whole word, any case: "Echo?", "hey echo,").
- Several names in one utterance: each named agent answers, in the order named, and the floor
  goes to the last one named.
- Nobody named: the agent holding the floor answers. The floor is the agent last named; before
  anyone is named it is the call's first agent (the one the call was started with).
- An agent alone in the room always answers.

A name is matched by its words: "claude-code" is "claude code" or "claude-code" in an utterance,
and letters and digits split words ("echo2" is also "echo 2"). Where names overlap, the longer
one wins ("claude code" names claude-code, not claude).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, replace

# Runs of letters or runs of digits: the words of a name and of an utterance.
_WORD = re.compile(r"[^\W\d_]+|\d+")


def words(text: str) -> tuple[str, ...]:
    return tuple(w.casefold() for w in _WORD.findall(text))


@dataclass(frozen=True)
class Floor:
    """What every agent in the room knows: the agents present, in join order (the call's
    first agent first), and the agent last named (None before anyone was)."""

    agents: tuple[str, ...]
    holder: str | None = None

    @property
    def current(self) -> str | None:
        """Who answers an utterance that names nobody."""
        if self.holder is not None and self.holder in self.agents:
            return self.holder
        return self.agents[0] if self.agents else None

    def with_agents(self, agents: Sequence[str]) -> Floor:
        """The same floor after agents joined or left (the holder is kept while present)."""
        return replace(self, agents=tuple(agents))


@dataclass(frozen=True)
class Turn:
    """Who answers one utterance, in order, and the floor afterwards."""

    named: tuple[str, ...]
    answerers: tuple[str, ...]
    floor: Floor

    def answers(self, me: str) -> bool:
        return me in self.answerers

    def before(self, me: str) -> tuple[str, ...]:
        """The agents that answer this utterance before `me` does."""
        if me not in self.answerers:
            return ()
        return self.answerers[: self.answerers.index(me)]


def named(utterance: str, agents: Sequence[str]) -> tuple[str, ...]:
    """The agents an utterance names, in the order it first names them."""
    keys: dict[tuple[str, ...], str] = {}
    for agent in agents:
        key = words(agent)
        if key and key not in keys:  # two agents with the same words: the earlier one
            keys[key] = agent
    by_length = sorted(keys, key=len, reverse=True)
    said = words(utterance)
    found: list[str] = []
    i = 0
    while i < len(said):
        for key in by_length:
            if said[i : i + len(key)] == key:
                if keys[key] not in found:
                    found.append(keys[key])
                i += len(key)
                break
        else:
            i += 1
    return tuple(found)


def turn(floor: Floor, utterance: str) -> Turn:
    """Apply the rule to one utterance. An utterance without words (noise) changes nothing and
    nobody answers it."""
    if not words(utterance) or not floor.agents:
        return Turn((), (), floor)
    names = named(utterance, floor.agents)
    if len(floor.agents) == 1:
        alone = floor.agents[0]
        return Turn(names, (alone,), replace(floor, holder=alone))
    if names:
        return Turn(names, names, replace(floor, holder=names[-1]))
    current = floor.current
    return Turn((), (current,) if current else (), floor)
