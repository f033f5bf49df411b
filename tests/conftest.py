"""Shared fixtures: tiny random-weight checkpoints built once per test session from the real
upstream classes (no model mocks), and the engines that serve them."""

from __future__ import annotations

import os

os.environ.setdefault("TQDM_DISABLE", "1")
os.environ["HF_HUB_OFFLINE"] = "1"  # nothing in the suite may reach for the network

from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from common.variants import Variant
from tests.support.checkpoints import CHECKPOINTS_ENV, Checkpoints
from tests.support.server import Server
from worker.engine.model.loading import LoadedModel, load_model
from worker.engine.model.random_pack import LanguagePack, write_language_pack
from worker.engine.pipeline import StreamingEngine

if os.environ.get("PYTEST_XDIST_WORKER"):
    # Two test processes on two cores: a model run in a test's own process (or a script it runs)
    # takes one thread, as the service's two CPU workers do. Two threads each oversubscribed the
    # cores, and OpenMP's waiting made in-process model tests 3 to 8 times slower.
    torch.set_num_threads(1)
    os.environ["OMP_NUM_THREADS"] = "1"

# Files of minutes, longest first, start first: pytest-xdist hands whole files out in
# collection order, and one of them last would leave the other process idle to the end.
LONG_FILES = (
    "test_schemathesis.py", "test_cli.py", "test_t3_device_step.py", "test_hostile_protocols.py",
    "test_streaming.py", "test_batch_invariance.py", "test_models.py", "test_elevenlabs_http.py",
)  # fmt: skip


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    rank = {name: i for i, name in enumerate(LONG_FILES)}
    items.sort(key=lambda item: rank.get(item.path.name, len(LONG_FILES)))


@pytest.fixture(scope="session")
def checkpoints(tmp_path_factory: pytest.TempPathFactory) -> Checkpoints:
    inherited = os.environ.get(CHECKPOINTS_ENV)
    return Checkpoints(Path(inherited) if inherited else tmp_path_factory.mktemp("checkpoints"))


@pytest.fixture(scope="session")
def language_pack(tmp_path_factory: pytest.TempPathFactory) -> LanguagePack:
    """A tiny Single Language Pack (zh-cmn) as published: the pack's repository and the base
    one, as directories and as a stand-in Hub cache (``language_pack.hf_home``)."""
    return write_language_pack("zh-cmn", "tiny", tmp_path_factory.mktemp("packs") / "zh-cmn")


@pytest.fixture(scope="session")
def english_dir(checkpoints: Checkpoints) -> Path:
    return checkpoints(Variant.ENGLISH)


@pytest.fixture(scope="session")
def server(english_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """The real service: 2 CPU workers x 4 requests each, 2 more may queue; batch-invariant,
    so that a request beside others may be compared with it alone."""
    service = Server(
        english_dir,
        tmp_path_factory.mktemp("service"),
        workers_per_device=2,
        concurrent_requests_per_worker=4,
        max_queued_requests=2,
        queue_timeout_seconds=60,
        max_voice_upload_bytes=2_000_000,
        max_voice_seconds=30,
        batch_invariant=True,
    )
    with service.running():
        yield service


@pytest.fixture(scope="session")
def english_model(english_dir: Path) -> LoadedModel:
    return load_model(english_dir, device="cpu")


@pytest.fixture(scope="session")
def turbo_model(checkpoints: Checkpoints) -> LoadedModel:
    return load_model(checkpoints(Variant.TURBO), device="cpu")


@pytest.fixture(scope="session")
def engine(english_model: LoadedModel) -> Iterator[StreamingEngine]:
    """Batch-invariant, so that tests may compare a request beside others with it alone."""
    engine = StreamingEngine(english_model, batch_invariant=True)
    yield engine
    engine.close()
