"""Tiny random-weight checkpoints of the real upstream classes, built once per test session."""

from __future__ import annotations

from pathlib import Path

from common.variants import Variant
from worker.engine.model.random_checkpoint import write_checkpoint


class Checkpoints:
    """Builds each variant's tiny checkpoint on first use, once per session."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.built: dict[Variant, Path] = {}

    def __call__(self, variant: Variant = Variant.ENGLISH) -> Path:
        if variant not in self.built:
            self.built[variant] = write_checkpoint(variant, "tiny", self.root / variant.value)
        return self.built[variant]


def linked_copy(source: Path, target: Path, *, leave_out: tuple[str, ...] = ()) -> Path:
    """A checkpoint directory of symlinks to ``source``'s files (cheap to alter one file of)."""
    target.mkdir(parents=True)
    for path in source.iterdir():
        if path.name not in leave_out:
            (target / path.name).symlink_to(path)
    return target
