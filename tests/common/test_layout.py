"""The layout tells the truth about the architecture: who may import whom, read from the source.

- ``app`` (the master) imports nothing from ``worker``; ``worker`` nothing from ``app``; what
  both need lives in ``common``, which imports neither, nor torch.
- The engine (``worker/engine``) imports no web or IPC code, so a CLI, a test or a worker can
  drive it alike.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

# package (path under the repository) -> module prefixes it must never import
RULES: dict[str, tuple[str, ...]] = {
    "app": ("worker", "torch", "chatterbox"),
    "worker": ("app",),
    "common": ("app", "worker", "torch", "chatterbox", "transformers"),
    "worker/engine": ("app", "common.protocol", "zmq", "fastapi", "starlette", "uvicorn"),
}


def imported_modules(source: str, module: str) -> set[str]:
    """Absolute names of every module ``source`` (the module ``module``) imports."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: resolve against the importing module's package
                package = module.split(".")[: -node.level]
                base = ".".join([*package, node.module] if node.module else package)
            else:
                base = node.module or ""
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)
    return found


def violations(root: Path, package: str, forbidden: tuple[str, ...]) -> list[str]:
    bad = []
    for path in sorted((root / package).rglob("*.py")):
        module = ".".join(path.relative_to(root).with_suffix("").parts)
        for name in sorted(imported_modules(path.read_text(), module)):
            if any(name == f or name.startswith(f + ".") for f in forbidden):
                bad.append(f"{path.relative_to(root)} imports {name}")
    return bad


@pytest.mark.parametrize("package", list(RULES))
def test_packages_import_only_what_their_layer_may(package: str) -> None:
    assert violations(REPO, package, RULES[package]) == []


def test_the_rule_catches_a_master_module_reaching_into_the_worker(tmp_path: Path) -> None:
    (tmp_path / "app" / "routes").mkdir(parents=True)
    (tmp_path / "app" / "routes" / "voices.py").write_text("from worker.voice_cache import X\n")
    (tmp_path / "app" / "pool.py").write_text("from . import gpus\nimport torch.cuda\n")
    (tmp_path / "worker" / "engine").mkdir(parents=True)
    (tmp_path / "worker" / "engine" / "pipeline.py").write_text("from ...app import server\n")
    assert violations(tmp_path, "app", RULES["app"]) == [
        "app/pool.py imports torch.cuda",
        "app/routes/voices.py imports worker.voice_cache",
        "app/routes/voices.py imports worker.voice_cache.X",
    ]
    assert violations(tmp_path, "worker/engine", RULES["worker/engine"])


def test_the_module_map_lists_exactly_the_modules_in_the_tree() -> None:
    text = (REPO / "docs" / "ARCHITECTURE.md").read_text()
    mapped = set(re.findall(r"^\| `((?:app|common|worker)/[\w/]+\.py)` \|", text, re.MULTILINE))
    present = {
        str(path.relative_to(REPO))
        for package in ("app", "common", "worker")
        for path in (REPO / package).rglob("*.py")
    }
    assert sorted(present - mapped) == [], "modules missing from docs/ARCHITECTURE.md"
    assert sorted(mapped - present) == [], "docs/ARCHITECTURE.md maps modules that do not exist"
