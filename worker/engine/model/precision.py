"""Numeric precision of a loaded model: T3's dtype without losing its rotary frequencies, and
TF32 for float32 matrix products on CUDA.

A plain ``t3.to(torch.bfloat16)`` also casts the Llama rotary embedding's ``inv_freq`` buffer:
bf16 keeps 8 bits of mantissa, so the angle ``position * inv_freq`` drifts by 0.27 rad at
position 300 and 0.91 rad at 1000. transformers' ``LlamaRotaryEmbedding`` computes its angles in
float32 from whatever ``inv_freq`` holds, so keeping that buffer (and ``original_inv_freq``,
which dynamic RoPE types restore from) in float32 gives bf16 T3 the angles of the float32 model.
"""

from __future__ import annotations

import logging

import torch

log = logging.getLogger(__name__)

# The float32 buffers of transformers' LlamaRotaryEmbedding (5.x): both hold frequencies.
ROTARY_BUFFERS = frozenset({"inv_freq", "original_inv_freq"})


def cast_keeping_rotary(module: torch.nn.Module, dtype: torch.dtype) -> None:
    """Cast ``module`` to ``dtype`` in place, its rotary frequency buffers left as they are."""
    kept = [
        (owner, name, buffer)
        for owner in module.modules()
        for name, buffer in owner.named_buffers(recurse=False)
        if name in ROTARY_BUFFERS
    ]
    module.to(dtype)  # replaces each buffer with a cast copy; ``kept`` holds the originals
    for owner, name, buffer in kept:
        setattr(owner, name, buffer)


def use_tf32(device: torch.device) -> bool:
    """On CUDA, let float32 matrix products use TF32 (S3Gen's, unless ``S3GEN_DTYPE`` is
    bfloat16, and T3's in float32). Returns whether it did; on any other device nothing
    changes.

    ``set_float32_matmul_precision`` is the API that torch 2.10 and 2.11 accept without a
    warning *and* that keeps every reader consistent: setting only the newer
    ``torch.backends.cuda.matmul.fp32_precision`` makes the legacy readers raise ("mix of the
    legacy and new APIs"), and inductor in both versions still reads them. cuDNN convolutions
    already use TF32 by default (``torch.backends.cudnn.conv.fp32_precision == "tf32"``)."""
    if device.type != "cuda":
        return False
    torch.set_float32_matmul_precision("high")
    log.info("TF32 enabled for float32 matrix products on %s", device)
    return True
