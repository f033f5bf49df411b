"""Read one checkpoint file into one module, as strictly as upstream's ``from_local`` does.

Upstream loads every file with ``strict=True`` except English ``s3gen.safetensors``
(``strict=False``). Strict files must match key for key. Where upstream tolerates a mismatch, we
tolerate the same, with two limits: every tolerated key is logged by name, and a missing key that
inference needs fails (upstream would run it with random values). Only what the constructor
computes itself may be missing: fixed-math buffers (mel filters, STFT windows) and BatchNorm's
step counters, which evaluation never reads. A Single Language Pack's decoder (``s3gen_v3.pt``)
lacks the two S3 tokenizer buffers: it loads strictly for every learned key, the constructor's
buffers filling in what it lacks.
"""

from __future__ import annotations

import logging
from enum import Enum
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file

from ..errors import InvalidCheckpointError

log = logging.getLogger(__name__)

# Buffers the constructors compute from fixed formulas: a file need not carry them.
DERIVED_BUFFERS = ("tokenizer._mel_filters", "tokenizer.window")
SHOWN_KEYS = 8  # how many key names an error message lists


def read_state(path: Path) -> dict[str, Any]:
    """A state dict from ``.safetensors`` or a ``torch.save`` file (``.pt``), on the CPU."""
    if path.suffix == ".safetensors":
        state: dict[str, Any] = dict(load_file(str(path)))
    else:
        state = torch.load(path, map_location="cpu", weights_only=True)
    if "model" in state:  # upstream unwraps a training checkpoint the same way
        state = state["model"][0]
    return state


class Strictness(Enum):
    STRICT = "strict"  # key for key (upstream's strict=True)
    LEARNED = "learned"  # key for key, except buffers the module computes itself
    LOOSE = "loose"  # upstream's strict=False: extra keys ignored, computed buffers may miss


def load_weights(module: torch.nn.Module, path: Path, strictness: Strictness, hint: str) -> None:
    """Load ``path`` into ``module``; raise :class:`InvalidCheckpointError` naming the file and
    the keys when it does not fit. ``hint`` ends every error (e.g. which setting to check)."""
    try:
        missing, unexpected = module.load_state_dict(read_state(path), strict=False)
    except RuntimeError as error:  # shapes differ: even strict=False refuses
        reason = str(error).splitlines()[-1].strip() or str(error).splitlines()[0]
        raise InvalidCheckpointError(
            f"The weights in {path} do not fit the model ({reason}). {hint}"
        ) from None
    strict = strictness is Strictness.STRICT
    needed = list(missing) if strict else [k for k in missing if not _derived(k)]
    refused = [] if strictness is Strictness.LOOSE else list(unexpected)
    if needed or refused:
        raise InvalidCheckpointError(_mismatch(path, needed, refused, hint))
    tolerated_missing = [k for k in missing if k not in needed]
    if tolerated_missing or unexpected:
        log.info(
            "%s: loaded as upstream's loaders do (%s); ignored %d unexpected key(s) [%s]; "
            "%d missing key(s) the model computes itself [%s]",
            path.name,
            strictness.value,
            len(unexpected),
            ", ".join(unexpected),
            len(tolerated_missing),
            ", ".join(tolerated_missing),
        )


def log_dropped(path: Path, keys: list[str]) -> None:
    """One line naming the keys loaded from ``path`` and then deleted, as upstream deletes them."""
    if keys:
        log.info("%s: dropped after loading, as upstream does: %s", path.name, ", ".join(keys))


def _derived(key: str) -> bool:
    return key in DERIVED_BUFFERS or key.endswith(".num_batches_tracked")


def _mismatch(path: Path, missing: list[str], unexpected: list[str], hint: str) -> str:
    parts = []
    if missing:
        parts.append(f"{len(missing)} missing key(s): {_names(missing)}")
    if unexpected:
        parts.append(f"{len(unexpected)} unexpected key(s): {_names(unexpected)}")
    return f"The weights in {path} do not fit the model: {'; '.join(parts)}. {hint}"


def _names(keys: list[str]) -> str:
    shown = ", ".join(keys[:SHOWN_KEYS])
    return shown + (f" and {len(keys) - SHOWN_KEYS} more" if len(keys) > SHOWN_KEYS else "")
