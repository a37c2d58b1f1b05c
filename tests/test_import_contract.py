"""The house's import contract: front doors import the core, never each other.

The **front doors** are the ways in: `hivecall.web` (the hub's HTTP routes and pages),
`hivecall.compat` (the OpenAI- and Ollama-compatible API), `hivecall.hivemind` (the HiveMind
node), `hivecall.cloud` (the LiveKit worker) and `hivecall.voice.local` (keyless
WebRTC calls).

**Speech** (`hivecall.speech`) is the machinery that turns audio into text and text into
audio, with no idea of who is calling: voice activity detection, speech-to-text, text-to-speech,
the loader that keeps their models and the one recognition and synthesis thread per process.
Local calls and HiveMind satellites both use it, so it is core.

**The composition root** (`hivecall.app`, `hivecall.hub`, `hivecall.cli`, `hivecall.__main__`,
`hivecall.openapi`, which describes every door's routes in one document) wires the doors to the
core and may import anything.

Everything else is **the core** (bridge, turns, calls, agents, runtimes, store, auth, …).

The rules, over every import in src/hivecall (at module level, under TYPE_CHECKING, or inside a
function: a lazy import couples the modules all the same):

1. a front door never imports another front door;
2. the core (store/, agents/ and speech above all) never imports a front door.

Relative imports are resolved; `from package import name` counts as an import of the submodule
`package.name` when that module exists.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

import hivecall

SRC = Path(hivecall.__file__).parent

FRONT_DOORS = (
    "hivecall.web",
    "hivecall.compat",
    "hivecall.hivemind",
    "hivecall.cloud",
    "hivecall.voice.local",
)
SPEECH = ("hivecall.speech",)
ROOT = ("hivecall.app", "hivecall.hub", "hivecall.cli", "hivecall.__main__", "hivecall.openapi")

# Edges that break the rules today, each with why and what empties it. Remove an entry once its
# edge is gone (test_allowed_edges_still_exist says when); never add one to get a test green.
ALLOWED: dict[tuple[str, str], str] = {}


@dataclass(frozen=True)
class Violation:
    module: str
    line: int
    target: str
    rule: str

    def __str__(self) -> str:
        return f"{self.module}:{self.line} imports {self.target} ({self.rule})"


def _within(name: str, packages: tuple[str, ...]) -> str | None:
    for p in packages:
        if name == p or name.startswith(p + "."):
            return p
    return None


def door_of(module: str) -> str | None:
    """The front door a module belongs to; None for the core and the composition root."""
    if _within(module, SPEECH):
        return None
    return _within(module, FRONT_DOORS)


def _modules(src: Path, package: str) -> dict[str, Path]:
    out = {}
    for path in sorted(src.rglob("*.py")):
        parts = list(path.relative_to(src).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join([package, *parts])] = path
    return out


def _targets(node: ast.AST, module: str, is_package: bool, known: set[str]) -> list[str]:
    if isinstance(node, ast.Import):
        return [a.name for a in node.names]
    if not isinstance(node, ast.ImportFrom):
        return []
    base = node.module or ""
    if node.level:
        here = module.split(".") if is_package else module.split(".")[:-1]
        anchor = here[: len(here) - (node.level - 1)]
        base = ".".join([*anchor, *([base] if base else [])])
    subs = [f"{base}.{a.name}" for a in node.names if f"{base}.{a.name}" in known]
    return subs or [base]


def violations(src: Path, package: str = "hivecall") -> list[Violation]:
    """Every import in the package at `src` that breaks the contract, in file order."""
    modules = _modules(src, package)
    known = set(modules)
    found = []
    for module, path in modules.items():
        if _within(module, ROOT):
            continue
        mine = door_of(module)
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for node in ast.walk(tree):
            for target in _targets(node, module, path.name == "__init__.py", known):
                theirs = door_of(target)
                if theirs is None or theirs == mine:
                    continue
                rule = "front door imports another" if mine else "core imports a front door"
                found.append(Violation(module, getattr(node, "lineno", 0), target, rule))
    return sorted(found, key=lambda v: (v.module, v.line, v.target))


def test_front_doors_import_the_core_never_each_other() -> None:
    broken = [v for v in violations(SRC) if (v.module, v.target) not in ALLOWED]
    assert not broken, "\n".join(str(v) for v in broken)


def test_allowed_edges_still_exist() -> None:
    edges = {(v.module, v.target) for v in violations(SRC)}
    gone = [f"{m} -> {t}" for m, t in ALLOWED if (m, t) not in edges]
    assert not gone, "remove these ALLOWED entries, the imports are gone: " + ", ".join(gone)


def test_a_forbidden_import_is_reported_with_module_and_line(tmp_path: Path) -> None:
    pkg = tmp_path / "hivecall"
    files = {
        "__init__.py": "",
        "app.py": "from hivecall.web import routes\nfrom hivecall.compat import api\n",
        "bridge.py": "def run() -> None:\n    from hivecall.compat.api import chat\n",
        "web/__init__.py": "",
        "web/routes.py": "import json\n\nfrom hivecall import bridge\nfrom ..compat import api\n",
        "compat/__init__.py": "",
        "compat/api.py": "from hivecall import bridge\nfrom . import shapes\n",
        "compat/shapes.py": "",
        "speech/__init__.py": "",
        "speech/stt.py": "from hivecall.voice.local import conversation\n",
        "voice/__init__.py": "",
        "voice/local/__init__.py": "",
        "voice/local/conversation.py": "from hivecall.speech import stt\n",
    }
    for name, text in files.items():
        (pkg / name).parent.mkdir(parents=True, exist_ok=True)
        (pkg / name).write_text(text)

    assert [str(v) for v in violations(pkg)] == [
        "hivecall.bridge:2 imports hivecall.compat.api (core imports a front door)",
        "hivecall.speech.stt:1 imports hivecall.voice.local.conversation"
        " (core imports a front door)",
        "hivecall.web.routes:4 imports hivecall.compat.api (front door imports another)",
    ]
