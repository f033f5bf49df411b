"""Counting host-device transfers where there is no GPU: what a step would cost on one.

On a CPU every tensor lives on the host, so nothing is ever copied between devices; but the
calls that would copy on a GPU are the same calls. :class:`TransferCounter` watches them while
it is active, as torch function and dispatch modes:

- **syncs**, transfers that make the host wait for the device: a tensor built from Python data
  (``torch.tensor(list)``, indexing with a Python list; ``aten.lift_fresh`` of one element or
  more: on a GPU a pageable copy and a stream synchronize), a scalar read (``.item()``,
  ``float(t)``, ``bool(t)``: ``aten._local_scalar_dense``), ``.tolist()``, ``.cpu()``, and a
  blocking ``.to(device)`` in our own code (upstream's and transformers' modules call
  ``.to(x.device)`` on tensors already there, a no-op on a GPU too; where upstream keeps a tensor
  on the host, as HiFT's stft window, the engine moves it once at start);
- **uploads**, copies that do not: ``copy_`` or ``.to`` with ``non_blocking=True`` (from a pinned
  buffer, queued on the stream).

The engine keeps host-side data in Python and numpy, never in torch tensors (a staging buffer is
filled through its numpy view), so every counted call is one the device would see. Python
scalars broadcast into an operation (``t * 0.5``, ``t[i] = 1.0``) travel as kernel arguments, not
copies, and are not counted. On a GPU, ``torch.cuda.set_sync_debug_mode`` says the same of real
syncs (``scripts/bench_gpu.py`` counts them that way).

``strict=True`` also counts the syncs a GPU makes inside operators whose result size or check
depends on a value, easy to miss from the outside: ``aten.equal`` (``torch.istft``'s window
check), a 0-dim tensor from Python data (``torch.tensor(0, device=...)``, as upstream's learned
position embedding makes per call), ``nonzero``, ``masked_select`` and indexing with a boolean
mask. The default leaves them out, as the tests of the T3 step and the S3Gen batch were written
against it; the benchmark counts strictly.
"""

from __future__ import annotations

import itertools
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch.overrides import TorchFunctionMode
from torch.utils._python_dispatch import TorchDispatchMode

_SYNC_METHODS = {"tolist", "cpu"}
_REPOSITORY = str(Path(__file__).resolve().parents[2]) + os.sep
_TORCH = f"{os.sep}torch{os.sep}"
# A scalar read reaches a dispatch mode as ``_local_scalar_dense``, except under
# ``torch.inference_mode()``, where ``item`` and ``is_nonzero`` arrive undecomposed.
_SCALAR_READS = {
    torch.ops.aten._local_scalar_dense.default,
    torch.ops.aten.item.default,
    torch.ops.aten.is_nonzero.default,
}
# What ``strict`` adds: each makes the host wait for the device on a GPU.
_VALUE_DEPENDENT = {
    torch.ops.aten.equal.default,
    torch.ops.aten.nonzero.default,
    torch.ops.aten.masked_select.default,
}


@dataclass
class TransferCount:
    syncs: int = 0
    uploads: int = 0
    calls: list[str] = field(default_factory=list)  # what was counted, in order: for messages


class _Functions(TorchFunctionMode):
    def __init__(self, count: TransferCount, resident: set[int]) -> None:
        super().__init__()
        self.count = count
        self.resident = resident

    def __torch_function__(
        self, func: Callable[..., Any], types: Any, args: Any = (), kwargs: Any = None
    ) -> Any:
        kwargs = kwargs or {}
        name = getattr(func, "__name__", "")
        if name in _SYNC_METHODS:
            self._sync(name)
        elif name in ("to", "copy_") and kwargs.get("non_blocking"):
            self.count.uploads += 1
            self.count.calls.append(f"upload:{name}")
        elif (
            name == "to"
            and _names_a_device(args[1:], kwargs)
            and id(args[0]) not in self.resident
            and _called_by_us()
        ):
            self._sync("to(device)")
        return func(*args, **kwargs)

    def _sync(self, what: str) -> None:
        self.count.syncs += 1
        self.count.calls.append(what)


class _Dispatch(TorchDispatchMode):
    def __init__(self, count: TransferCount, strict: bool) -> None:
        super().__init__()
        self.count = count
        self.strict = strict

    def __torch_dispatch__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        result = func(*args, **(kwargs or {}))
        lifted = func is torch.ops.aten.lift_fresh.default and (self.strict or result.dim() > 0)
        if lifted or func in _SCALAR_READS or (self.strict and _value_dependent(func, args)):
            self.count.syncs += 1
            self.count.calls.append(str(func))
        return result


def _value_dependent(func: Any, args: Any) -> bool:
    if func in _VALUE_DEPENDENT:
        return True
    if func is torch.ops.aten.index.Tensor and len(args) > 1:
        return any(isinstance(i, torch.Tensor) and i.dtype == torch.bool for i in args[1])
    return False


def _called_by_us() -> bool:
    """Whether the innermost caller outside torch is this repository's code: upstream's and
    transformers' modules call ``.to(x.device)`` on what already lives there (the rotary
    embedding's frequencies, every step), a no-op on a GPU too."""
    frame = sys._getframe(2)
    while frame is not None and _TORCH in frame.f_code.co_filename:
        frame = frame.f_back  # type: ignore[assignment]
    name = frame.f_code.co_filename if frame is not None else ""
    return name.startswith(_REPOSITORY) and "site-packages" not in name


def _names_a_device(args: Any, kwargs: dict[str, Any]) -> bool:
    values = [*args, kwargs.get("device")]
    return any(isinstance(v, (str, torch.device)) for v in values)


class TransferCounter:
    """``with TransferCounter() as count:`` counts the transfers of the code inside.

    ``resident``: modules already on the device. ``.to(device)`` of one of their parameters or
    buffers returns the tensor as it is, no copy (upstream calls ``self.pos_bias_u.to(q.device)``
    in every attention layer), so it is not counted. ``strict``: see the module's doc.
    """

    def __init__(self, *resident: torch.nn.Module, strict: bool = False) -> None:
        self.count = TransferCount()
        tensors = {id(t) for m in resident for t in itertools.chain(m.parameters(), m.buffers())}
        self._modes = (_Functions(self.count, tensors), _Dispatch(self.count, strict))

    def __enter__(self) -> TransferCount:
        for mode in self._modes:
            mode.__enter__()
        return self.count

    def __exit__(self, *exc: object) -> None:
        for mode in reversed(self._modes):
            mode.__exit__(*exc)


class OperatorCounter(TorchDispatchMode):
    """``with OperatorCounter() as count:`` counts the operators dispatched inside (views
    too): on a GPU, each that is not replayed from a graph is a kernel launch or host work."""

    def __init__(self) -> None:
        super().__init__()
        self.operators = 0

    def __torch_dispatch__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        self.operators += 1
        return func(*args, **(kwargs or {}))
