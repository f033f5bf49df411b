"""What the host tells the device each T3 step, in one copy.

The scheduler's plan is plain Python and the device needs it as tensors. A tensor built from a
Python list is, on a GPU, a blocking copy from pageable memory and a stream synchronize; a step
once made fifteen of them, and the CPU could never run ahead of the GPU. Instead each step
writes everything it has to say into one pinned host buffer, through its numpy view, and one
non-blocking copy moves it to a device buffer of the same layout, read there in slices:

- the slot table, a row per slot and a column per :class:`Column`, float32 (positions, counts
  and token ids are exact integers in float32 up to 2**24);
- after it, what the step appends: the slot moves, the text token ids of joining sequences.

The whole table is staged every step, 56 bytes a slot: that one copy costs what a partial update
would, and the device never holds a slot's settings that the scheduler no longer does.
"""

from __future__ import annotations

from collections.abc import Sequence
from enum import IntEnum

import numpy as np
import torch


class Column(IntEnum):
    UNIFORM = 0  # the slot's draw for this step, in [0, 1)
    SAMPLE = 1  # 1: draw and feed a token; 0: ride along (results thrown away)
    POSITION = 2  # where the fed token's keys and values go in the slot's cache
    SPEECH_POSITION = 3  # the fed token's index among the speech tokens
    TEMPERATURE = 4
    TOP_K = 5
    MIN_P = 6
    TOP_P = 7
    PENALTY = 8
    GREEDY = 9
    CFG_WEIGHT = 10
    EOS_ALLOWED = 11  # 0: a fixed token count, EOS masked
    TEXT_START = 12  # the cache position of the slot's first text token (alignment_probe)
    TEXT_LENGTH = 13  # its text tokens


class Staging:
    """A pinned host buffer and its device twin: ``begin``, fill, ``upload``, read on device."""

    def __init__(self, slots: int, context: int, device: torch.device) -> None:
        self.slots = slots
        self.table_size = slots * len(Column)
        size = self.table_size + 2 * slots + slots * context  # table, moves, joining texts
        cuda = device.type == "cuda"
        self.host = torch.zeros(size, dtype=torch.float32, pin_memory=cuda)
        self.view = self.host.numpy()
        self.device_buffer = torch.zeros(size, dtype=torch.float32, device=device)
        self.table = self.device_buffer[: self.table_size].view(slots, len(Column))
        # The host buffer is rewritten only once its last copy is done.
        self._copied = torch.cuda.Event() if cuda else None
        self.used = self.table_size

    def begin(self) -> np.ndarray:
        """The host side of the slot table (slots, columns), zeroed: free slots stay zero."""
        if self._copied is not None:
            self._copied.synchronize()
        self.view[: self.table_size] = 0.0
        self.used = self.table_size
        return self.view[: self.table_size].reshape(self.slots, len(Column))

    def put(self, values: Sequence[int] | Sequence[float]) -> int:
        """Append ``values`` after the table; their offset in the buffer."""
        start, stop = self.used, self.used + len(values)
        if stop > len(self.view):
            raise ValueError(f"a T3 step stages {stop} values; its buffer holds {len(self.view)}")
        self.view[start:stop] = values
        self.used = stop
        return start

    def upload(self) -> None:
        """Copy what was written since ``begin`` to the device, without waiting for it."""
        used = self.used
        self.device_buffer[:used].copy_(self.host[:used], non_blocking=True)
        if self._copied is not None:
            self._copied.record()

    def region(self, start: int, length: int) -> torch.Tensor:
        """Values ``put`` at ``start``, on the device, as token ids or slot indices."""
        return self.device_buffer[start : start + length].long()
