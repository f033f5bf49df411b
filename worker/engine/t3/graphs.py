"""The T3 decode step replayed from CUDA graphs, one per bucket of batch size and length.

At full size a step is ~1,500 small kernels (30 layers), each launched by the host: without
graphs a step costs the launches, not the GPU's work. The step (:class:`DecodeStep`) reads and
writes only tensors allocated once (the staged table, the KV cache, the logits), so a graph
captured for ``(slots, length, ranked)`` replays it exactly. A bucket's first step runs eagerly (it
also warms up the kernels) and is then captured; capture records without executing, so no step
runs twice. If a capture fails, the reason is logged once and every later step runs eagerly.
"""

from __future__ import annotations

import logging
from typing import Any

import torch

from .decode import DecodeStep

log = logging.getLogger(__name__)


class GraphedDecode:
    def __init__(self, step: DecodeStep, enabled: bool) -> None:
        self.step = step
        self.enabled = enabled
        self.graphs: dict[tuple[int, int, bool], tuple[torch.cuda.CUDAGraph, torch.Tensor]] = {}
        self._pool: Any = None  # the graphs' shared memory pool

    def __call__(self, slots: int, length: int, ranked: bool) -> torch.Tensor:
        key = (slots, length, ranked)
        if not self.enabled:
            return self.step(*key)
        if key in self.graphs:
            graph, tokens = self.graphs[key]
            graph.replay()
            return tokens
        tokens = self.step(*key)
        self._capture(key)
        return tokens

    def _capture(self, key: tuple[int, int, bool]) -> None:
        try:
            if self._pool is None:
                self._pool = torch.cuda.graph_pool_handle()
            graph = torch.cuda.CUDAGraph()
            # thread_local: the S3Gen loop's thread keeps working on its own stream meanwhile.
            with torch.cuda.graph(graph, pool=self._pool, capture_error_mode="thread_local"):
                tokens = self.step(*key)
        except Exception as error:  # a kernel or an op that cannot be captured
            log.warning(
                "CUDA graph capture of the T3 decode step (slots=%d, length=%d, ranked=%s) failed, "
                "so T3 decodes eagerly from now on (slower per step, same tokens): %s", *key, error,
            )  # fmt: skip
            self.enabled = False
            self.graphs.clear()
            return
        self.graphs[key] = (graph, tokens)
        log.debug("captured the T3 decode step for slots=%d, length=%d, ranked=%s", *key)
