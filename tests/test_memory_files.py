"""Memory files are the workspace's own: a link that points out of it is never read."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from hivecall.agents.context import memory_files

SECRET_TEXT = "the contents of a file outside the workspace"


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    secrets = tmp_path / "home" / ".ssh"
    secrets.mkdir(parents=True)
    (secrets / "id_rsa").write_text(SECRET_TEXT)
    (secrets / "notes.md").write_text(SECRET_TEXT)
    return secrets


def shown(workspace: Path) -> dict[str, str]:
    return {m.path: m.text for m in memory_files(str(workspace))}


def test_a_memory_file_linked_out_of_the_workspace_is_not_read(
    workspace: Path, outside: Path
) -> None:
    (workspace / "CLAUDE.md").symlink_to(outside / "id_rsa")
    (workspace / "AGENTS.md").write_text("Use pytest.")
    assert shown(workspace) == {"AGENTS.md": "Use pytest."}


def test_a_memory_folder_file_linked_out_is_not_read(workspace: Path, outside: Path) -> None:
    (workspace / "memory").mkdir()
    (workspace / "memory" / "x.md").symlink_to(Path("..") / ".." / "home" / ".ssh" / "id_rsa")
    (workspace / "memory" / "y.md").write_text("Deploys on Fridays are off.")
    assert (workspace / "memory" / "x.md").read_text() == SECRET_TEXT  # the link works
    assert shown(workspace) == {"memory/y.md": "Deploys on Fridays are off."}


def test_a_memory_folder_linked_out_is_not_read(workspace: Path, outside: Path) -> None:
    (workspace / ".hivecall").mkdir()
    (workspace / ".hivecall" / "memory").symlink_to(outside, target_is_directory=True)
    assert shown(workspace) == {}


def test_a_link_that_stays_inside_is_followed(workspace: Path) -> None:
    (workspace / "docs").mkdir()
    (workspace / "docs" / "agents.md").write_text("Run make check before pushing.")
    (workspace / "AGENTS.md").symlink_to(Path("docs") / "agents.md")
    assert shown(workspace) == {"AGENTS.md": "Run make check before pushing."}


def test_a_workspace_reached_through_a_link_still_reads_its_files(tmp_path: Path) -> None:
    real = tmp_path / "real-workspace"
    real.mkdir()
    (real / "AGENTS.md").write_text("Use pytest.")
    (tmp_path / "ws-link").symlink_to(real, target_is_directory=True)
    assert shown(tmp_path / "ws-link") == {"AGENTS.md": "Use pytest."}


def test_only_regular_files_are_read(workspace: Path) -> None:
    os.mkfifo(workspace / "CLAUDE.md")  # opening a FIFO to read would wait for a writer
    (workspace / "GEMINI.md").mkdir()
    (workspace / "AGENTS.md").symlink_to("/dev/zero")
    (workspace / ".goosehints").symlink_to(workspace / ".goosehints")  # a loop
    assert shown(workspace) == {}


def test_a_big_memory_file_is_trimmed(workspace: Path) -> None:
    (workspace / "AGENTS.md").write_text("x" * 100 + "\n" + "y" * 1_000_000)
    [memory] = memory_files(str(workspace))
    assert memory.truncated and len(memory.text) == 2000
