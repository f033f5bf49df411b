"""The layout tells the truth about the architecture: who may import whom, read from the source.

- ``app`` (the master) imports nothing from ``worker``; ``worker`` nothing from ``app``; what
  both need lives in ``common``, which imports neither, nor torch.
- The engine (``worker/engine``) imports no web or IPC code, so a CLI, a test or a worker can
  drive it alike.
- Inside the engine, T3 and S3Gen never import each other (they meet in the pipeline), and
  ``text`` is plain Python: no torch, nor anything that loads it.
- In the master, the speech core (``app/speech``) knows no web framework nor any protocol: the
  adapters map its errors; the pool knows neither the core nor the web.

A module breaks a rule by importing a forbidden module itself or through any module of the tree
it imports, however deep.
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
    "worker/engine/t3": ("worker.engine.s3gen",),
    "worker/engine/s3gen": ("worker.engine.t3",),
    "worker/engine/text": ("torch", "chatterbox", "transformers"),
    "app/speech": ("app.web", "app.protocols", "app.routes", "fastapi", "starlette", "uvicorn"),
    "app/pool": (
        "app.speech",
        "app.protocols",
        "app.web",
        "app.routes",
        "app.audio",
        "fastapi",
        "starlette",
        "uvicorn",
    ),
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


def module_file(root: Path, module: str) -> Path | None:
    """The file of ``module`` in the tree under ``root``, if it is one of the tree's."""
    base = root.joinpath(*module.split("."))
    for path in (base.with_suffix(".py"), base / "__init__.py"):
        if path.is_file():
            return path
    return None


def reached(root: Path, path: Path) -> dict[str, str]:
    """Every module ``path`` imports, itself or through the tree's modules it imports: each
    name with the tree's module that imports it."""
    found: dict[str, str] = {}
    todo = [path]
    seen = {path}
    while todo:
        current = todo.pop()
        module = ".".join(current.relative_to(root).with_suffix("").parts)
        for name in imported_modules(current.read_text(), module):
            found.setdefault(name, module)
            target = module_file(root, name)
            if target is not None and target not in seen:
                seen.add(target)
                todo.append(target)
    return found


def violations(root: Path, package: str, forbidden: tuple[str, ...]) -> list[str]:
    bad = []
    for path in sorted((root / package).rglob("*.py")):
        module = ".".join(path.relative_to(root).with_suffix("").parts)
        for name, importer in sorted(reached(root, path).items()):
            if any(name == f or name.startswith(f + ".") for f in forbidden):
                through = "" if importer == module else f" (through {importer})"
                bad.append(f"{path.relative_to(root)} imports {name}{through}")
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


def test_the_rule_catches_the_engine_stages_reaching_across(tmp_path: Path) -> None:
    engine = tmp_path / "worker" / "engine"
    for package in ("t3", "s3gen", "text"):
        (engine / package).mkdir(parents=True)
    (engine / "model_loop.py").write_text("import torch\n")
    (engine / "s3gen" / "stream.py").write_text("X = 1\n")
    (engine / "t3" / "runner.py").write_text("from ..s3gen.stream import X\n")
    (engine / "s3gen" / "batcher.py").write_text("from worker.engine.t3 import runner\n")
    (engine / "text" / "feed.py").write_text("from .. import model_loop\n")
    assert violations(tmp_path, "worker/engine/t3", RULES["worker/engine/t3"]) == [
        "worker/engine/t3/runner.py imports worker.engine.s3gen.stream",
        "worker/engine/t3/runner.py imports worker.engine.s3gen.stream.X",
    ]
    assert violations(tmp_path, "worker/engine/s3gen", RULES["worker/engine/s3gen"]) == [
        "worker/engine/s3gen/batcher.py imports worker.engine.t3",
        "worker/engine/s3gen/batcher.py imports worker.engine.t3.runner",
    ]
    assert violations(tmp_path, "worker/engine/text", RULES["worker/engine/text"]) == [
        "worker/engine/text/feed.py imports torch (through worker.engine.model_loop)"
    ]


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


def test_every_package_opens_saying_what_it_owns() -> None:
    bare = [
        str(path.relative_to(REPO))
        for package in ("app", "common", "worker")
        for path in (REPO / package).rglob("__init__.py")
        if not ast.get_docstring(ast.parse(path.read_text()))
    ]
    assert bare == []


def test_no_engine_module_is_over_300_lines() -> None:
    lines = {
        str(path.relative_to(REPO)): len(path.read_text().splitlines())
        for path in (REPO / "worker" / "engine").rglob("*.py")
    }
    assert {path: n for path, n in lines.items() if n > 300} == {}
