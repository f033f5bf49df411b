"""How many requests a worker takes: its slots, from its device."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import pytest

from common.settings import Settings
from common.variants import Variant
from tests.support.checkpoints import Checkpoints
from worker.capacity import (
    CONTEXT_BYTES,
    CPU_SLOTS,
    GIB,
    MAX_SLOTS,
    MIB,
    S3GEN_BYTES_PER_WINDOW,
    SLACK_BYTES,
    GpuMemory,
    choose_slots,
    slots_that_fit,
)
from worker.engine.model.loading import LoadedModel, load_model
from worker.engine.t3.runner import T3Runner, kv_bytes_per_slot

PER_SLOT = 240 * MIB  # the full-size Llama T3 in bf16, 1024 positions
WINDOWS = 16
RESERVE = WINDOWS * S3GEN_BYTES_PER_WINDOW


@dataclass
class Card:
    """A GPU as the workers of it see it: what its processes hold."""

    total: int
    used: int = 0


@dataclass
class Worker:
    """One worker process of a card: loads (CUDA context and model), measures, allocates."""

    card: Card
    share: int
    model: int = 2 * GIB
    context: int = GIB // 2  # its CUDA context, as the driver takes it
    slots: int = 0

    def load(self) -> None:
        self.card.used += self.context + self.model

    def measure(self) -> GpuMemory:
        return GpuMemory(self.card.total, self.card.total - self.card.used, self.model)

    def allocate(self, memory: GpuMemory) -> None:
        self.slots = slots_that_fit(memory, self.share, PER_SLOT, WINDOWS)
        self.card.used += self.slots * PER_SLOT

    def start(self) -> None:
        self.load()
        self.allocate(self.measure())


def fits_with_every_reserve(card: Card, workers: list[Worker]) -> bool:
    """Every worker's context, model and KV cache, and S3Gen's reserve of each, in the card."""
    return card.used + len(workers) * (RESERVE + SLACK_BYTES) <= card.total


@pytest.mark.parametrize("order", ["small context first", "large context first"])
def test_two_workers_one_after_the_other_fit_with_both_reserves(order: str) -> None:
    card = Card(80 * GIB)
    small, large = Worker(card, 2, context=GIB // 4), Worker(card, 2, context=CONTEXT_BYTES)
    workers = [small, large] if order == "small context first" else [large, small]
    for worker in workers:
        worker.start()
    assert fits_with_every_reserve(card, workers)
    budget = 40 * GIB - 2 * GIB - RESERVE - CONTEXT_BYTES - SLACK_BYTES
    assert small.slots == large.slots == budget // PER_SLOT == 140  # each its share, in any order


def test_two_workers_measuring_at_once_fit_with_both_reserves() -> None:
    card = Card(24 * GIB)
    workers = [Worker(card, 2), Worker(card, 2)]
    for worker in workers:
        worker.load()
    snapshots = [worker.measure() for worker in workers]  # before either allocates
    for worker, memory in zip(workers, snapshots, strict=True):
        worker.allocate(memory)
    assert fits_with_every_reserve(card, workers)
    assert workers[0].slots == workers[1].slots > 1


def test_one_worker_takes_the_card_and_says_how(caplog: pytest.LogCaptureFixture) -> None:
    card = Card(48 * GIB)
    worker = Worker(card, 1)
    with caplog.at_level(logging.INFO, logger="worker.capacity"):
        worker.start()
    assert fits_with_every_reserve(card, [worker])
    assert worker.slots == (48 * GIB - 2 * GIB - RESERVE - GIB) // PER_SLOT == 174
    (record,) = caplog.records
    assert record.levelno == logging.INFO
    for figure in ("48.0 GiB total / 1 worker(s)", "2.00 GiB model", "4.00 GiB S3Gen (16 windows)",
                   "1.00 GiB margin", "41.00 GiB budget", "240 MiB KV cache per slot"):  # fmt: skip
        assert figure in record.getMessage()


def test_what_is_free_caps_the_share_with_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    card = Card(48 * GIB, used=20 * GIB)  # another process holds 20 GiB of the card
    worker = Worker(card, 1)
    with caplog.at_level(logging.INFO, logger="worker.capacity"):
        worker.start()
    assert fits_with_every_reserve(card, [worker])
    free = 48 * GIB - 20 * GIB - worker.context - worker.model
    assert worker.slots == (free - RESERVE - SLACK_BYTES) // PER_SLOT
    (record,) = caplog.records
    assert record.levelno == logging.WARNING
    message = record.getMessage()
    assert f"{free / GIB:.2f} GiB free" in message and "48.0 GiB total / 1 worker(s)" in message
    assert "CONCURRENT_REQUESTS_PER_WORKER" in message


def test_slots_are_at_least_one_and_at_most_the_cap() -> None:
    assert slots_that_fit(GpuMemory(4 * GIB, 2 * GIB, GIB), 1, PER_SLOT, WINDOWS) == 1
    huge = GpuMemory(10_000 * GIB, 9_000 * GIB, GIB)
    assert slots_that_fit(huge, 1, PER_SLOT, WINDOWS) == MAX_SLOTS


def test_the_setting_wins_and_a_cpu_gets_its_measured_default(english_model: LoadedModel) -> None:
    assert choose_slots(3, english_model, 1024, 16) == 3
    assert choose_slots(None, english_model, 1024, 16) == CPU_SLOTS


def test_the_kv_cache_per_slot_is_what_the_runner_allocates(checkpoints: Checkpoints) -> None:
    for variant in Variant:
        model = load_model(checkpoints(variant), device="cpu")
        runner = T3Runner(model, slots=2, context=256)
        assert runner.cache.bytes == 2 * kv_bytes_per_slot(model, 256)


def test_auto_means_the_worker_decides() -> None:
    settings = Settings(_env_file=None, concurrent_requests_per_worker="auto")  # type: ignore[call-arg]
    assert settings.concurrent_requests_per_worker is None
    assert Settings(_env_file=None).concurrent_requests_per_worker is None  # type: ignore[call-arg]
