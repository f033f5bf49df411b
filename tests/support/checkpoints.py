"""Tiny random-weight checkpoints of the real upstream classes, built once per test session."""

from __future__ import annotations

from pathlib import Path

from common.variants import Variant
from worker.engine.model.random_checkpoint import write_checkpoint

# A test that runs tests in an interpreter of its own names its session's checkpoints here, so
# that they are not built again (seconds each).
CHECKPOINTS_ENV = "TEST_CHECKPOINTS_DIR"


class Checkpoints:
    """Builds each variant's tiny checkpoint on first use, once per session; one already in
    ``root`` (a parent session's, handed to a test's own interpreter) is used as it is."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.built: dict[Variant, Path] = {}

    def __call__(self, variant: Variant = Variant.ENGLISH) -> Path:
        if variant not in self.built:
            target = self.root / variant.value
            built = (target / "random_weights.json").exists()  # written last, by a rename
            self.built[variant] = target if built else write_checkpoint(variant, "tiny", target)
        return self.built[variant]


def linked_copy(source: Path, target: Path, *, leave_out: tuple[str, ...] = ()) -> Path:
    """A checkpoint directory of symlinks to ``source``'s files (cheap to alter one file of)."""
    target.mkdir(parents=True)
    for path in source.iterdir():
        if path.name not in leave_out:
            (target / path.name).symlink_to(path)
    return target
