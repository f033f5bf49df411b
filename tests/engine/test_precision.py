"""T3 in bf16 keeps float32 rotary frequencies and is cast before it moves; TF32 on CUDA only."""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import torch
from chatterbox.models.t3 import T3
from transformers.models.llama.modeling_llama import LlamaRotaryEmbedding

from common.variants import Variant
from tests.support.checkpoints import Checkpoints
from worker.engine.model.loading import LoadedModel, load_model
from worker.engine.model.precision import ROTARY_BUFFERS, use_tf32


@dataclass(frozen=True)
class Move:
    """One ``T3.to`` call that names a device: the dtypes its parameters had at that moment."""

    device: torch.device
    cast_to: torch.dtype | None
    dtypes: frozenset[torch.dtype]


@pytest.fixture(scope="module")
def bf16_load(checkpoints: Checkpoints) -> Iterator[tuple[LoadedModel, list[Move]]]:
    """The tiny English model loaded in bf16, and every move of its T3 during the load."""
    moves: list[Move] = []
    original = torch.nn.Module.to

    def recording_to(module: torch.nn.Module, *args: Any, **kwargs: Any) -> torch.nn.Module:
        device, dtype, *_ = torch._C._nn._parse_to(*args, **kwargs)
        if isinstance(module, T3) and device is not None:
            moves.append(Move(device, dtype, frozenset(p.dtype for p in module.parameters())))
        return original(module, *args, **kwargs)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(torch.nn.Module, "to", recording_to)
        model = load_model(checkpoints(Variant.ENGLISH), device="cpu", dtype="bfloat16")
    yield model, moves


def rotary(model: LoadedModel) -> LlamaRotaryEmbedding:
    found = [m for m in model.t3.modules() if isinstance(m, LlamaRotaryEmbedding)]
    assert len(found) == 1
    return found[0]


def test_bf16_t3_keeps_the_float32_rotary_angles(
    bf16_load: tuple[LoadedModel, list[Move]], english_model: LoadedModel
) -> None:
    bf16, fp32 = rotary(bf16_load[0]), rotary(english_model)
    assert next(bf16_load[0].t3.parameters()).dtype == torch.bfloat16
    for name in ROTARY_BUFFERS:
        kept, reference = getattr(bf16, name), getattr(fp32, name)
        assert kept.dtype == torch.float32, name
        assert torch.equal(kept, reference), name
    positions = torch.tensor([[0, 300, 1000]])
    cos, sin = bf16(torch.zeros(1, 3, 8, dtype=torch.bfloat16), positions)
    cos32, sin32 = fp32(torch.zeros(1, 3, 8), positions)
    # The angles are the float32 model's: cos and sin differ only by their rounding to bf16.
    assert cos.dtype == torch.bfloat16
    assert torch.equal(cos, cos32.to(torch.bfloat16)) and torch.equal(sin, sin32.to(torch.bfloat16))
    assert (cos.float() - cos32).abs().max() <= 2**-8


def test_the_float32_t3_never_moves_to_the_device(
    bf16_load: tuple[LoadedModel, list[Move]],
) -> None:
    moves = bf16_load[1]
    assert moves, "load_model moved T3 to its device without Module.to: update this test"
    for move in moves:
        arrives_as = {move.cast_to} if move.cast_to is not None else move.dtypes
        assert arrives_as == {torch.bfloat16}, f"T3 moved to {move.device} as {move.dtypes}"


@pytest.fixture
def matmul_precision() -> Iterator[None]:
    before = torch.get_float32_matmul_precision()
    yield
    torch.set_float32_matmul_precision(before)


@pytest.mark.usefixtures("matmul_precision")
def test_tf32_is_for_cuda_only_and_every_reader_agrees() -> None:
    torch.set_float32_matmul_precision("highest")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert not use_tf32(torch.device("cpu"))
        assert torch.get_float32_matmul_precision() == "highest"
        assert use_tf32(torch.device("cuda:0"))  # sets a flag only: needs no GPU
        # The legacy readers (inductor's among them) and the new one: none raises, all agree.
        assert torch.get_float32_matmul_precision() == "high"
        assert torch.backends.cuda.matmul.allow_tf32
        assert torch.backends.cuda.matmul.fp32_precision == "tf32"
