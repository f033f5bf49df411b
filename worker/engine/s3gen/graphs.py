"""S3Gen's batches replayed from CUDA graphs, one per :class:`~.window_step.Bucket`.

At full size a window is ~22,000 operators (the encoder, 10 Euler steps of the estimator with
CFG, HiFT), each a kernel launch from a Python thread that shares the GIL with T3 and the event
loop. :class:`~.window_step.WindowStep` reads and writes only the bucket's own input buffers, so
a graph captured per bucket replays a batch exactly: the runner writes the batch's inputs into
the bucket's buffers (one upload) and replays. As for T3's steps (the same ``CUDA_GRAPHS``
setting), a bucket's first batch runs eagerly and is then captured; a capture that fails is
logged once with its reason and every later batch runs eagerly. The graphs share one memory
pool of their own (T3's replays on its own stream at the same time, so the two never share).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import torch

from .window_step import Bucket, WindowStep

log = logging.getLogger(__name__)
Outputs = tuple[torch.Tensor, torch.Tensor]


@dataclass
class _Captured:
    graph: Any  # torch.cuda.CUDAGraph
    flat: torch.Tensor
    phase0: torch.Tensor
    outputs: Outputs


class GraphedWindows:
    def __init__(self, step: WindowStep, device: torch.device, enabled: bool) -> None:
        self.step = step
        self.device = device
        self.enabled = enabled and device.type == "cuda"
        self.graphs: dict[Bucket, _Captured] = {}
        self.buffers: dict[Bucket, tuple[torch.Tensor, torch.Tensor]] = {}
        self._pool: Any = None

    def inputs(self, bucket: Bucket) -> tuple[torch.Tensor, torch.Tensor]:
        """The bucket's input buffers (flat float32, phases float64), for the runner to fill:
        a captured bucket's own, else new ones (kept until captured, if it will be)."""
        if bucket in self.graphs:
            captured = self.graphs[bucket]
            return captured.flat, captured.phase0
        if bucket in self.buffers:
            return self.buffers[bucket]
        made = (
            torch.empty(bucket.size(), device=self.device),
            torch.empty(bucket.batch, device=self.device, dtype=torch.float64),
        )
        if self.enabled:
            self.buffers[bucket] = made
        return made

    def __call__(self, bucket: Bucket, flat: torch.Tensor, phase0: torch.Tensor) -> Outputs:
        """Run the bucket on ``flat`` and ``phase0`` (from :meth:`inputs`)."""
        if bucket in self.graphs:
            captured = self.graphs[bucket]
            captured.graph.replay()
            return captured.outputs
        outputs = self.step(bucket, flat, phase0)
        if self.enabled:
            self._capture(bucket, flat, phase0)
        return outputs

    def _capture(self, bucket: Bucket, flat: torch.Tensor, phase0: torch.Tensor) -> None:
        try:
            if self._pool is None:
                self._pool = torch.cuda.graph_pool_handle()
            graph = torch.cuda.CUDAGraph()
            # thread_local: T3's loop keeps working on its own stream meanwhile.
            with torch.cuda.graph(graph, pool=self._pool, capture_error_mode="thread_local"):
                outputs = self.step(bucket, flat, phase0)
        except Exception as error:  # an operator that cannot be captured
            log.warning(
                "CUDA graph capture of an S3Gen batch (%s) failed, so S3Gen decodes eagerly from "
                "now on (slower per batch, same audio): %s", bucket, error,
            )  # fmt: skip
            self.enabled = False
            self.graphs.clear()
            return
        self.graphs[bucket] = _Captured(graph, flat, phase0, outputs)
        self.buffers.pop(bucket, None)
        log.debug("captured an S3Gen batch for %s", bucket)
