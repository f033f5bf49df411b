"""Which GPUs get workers, and what each worker is shown: NVML's cards, limited by an inherited
``CUDA_VISIBLE_DEVICES``, one entry per worker, in PCI bus order (a fake NVML, on the CPU)."""

from __future__ import annotations

import logging
from types import SimpleNamespace

import pytest

from app import gpus, system_status
from app.pool.pool import WorkerPool
from app.pool.workers import DeviceError, WorkerHandle, plan_workers, worker_environment
from common.settings import Settings

UUIDS = ["GPU-0aaa1111-0000", "GPU-1bbb2222-0000", "GPU-2ccc3333-0000", "GPU-3ddd4444-0000"]
NAMES = ["NVIDIA A100", "NVIDIA H100", "NVIDIA H100", "NVIDIA L4"]


class FakeNvml:
    """pynvml's calls the master makes, over four GPUs in PCI bus order."""

    def nvmlInit(self) -> None:
        pass

    def nvmlDeviceGetCount(self) -> int:
        return len(UUIDS)

    def nvmlDeviceGetHandleByIndex(self, index: int) -> int:
        assert 0 <= index < len(UUIDS)
        return index

    def nvmlDeviceGetName(self, handle: int) -> bytes:
        return NAMES[handle].encode()  # older pynvml returns bytes

    def nvmlDeviceGetUUID(self, handle: int) -> str:
        return UUIDS[handle]

    def nvmlDeviceGetUtilizationRates(self, handle: int) -> SimpleNamespace:
        return SimpleNamespace(gpu=10 * handle, memory=1)

    def nvmlDeviceGetMemoryInfo(self, handle: int) -> SimpleNamespace:
        return SimpleNamespace(total=80 * gpus.GIB, used=handle * gpus.GIB, free=0)


@pytest.fixture
def nvml(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(gpus, "pynvml", FakeNvml())
    monkeypatch.setattr(gpus, "_initialised", None)
    monkeypatch.setattr(gpus, "_warned", set())
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)


def settings(**values: object) -> Settings:
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


def pinned(monkeypatch: pytest.MonkeyPatch, listed: str | None, **values: object) -> list[tuple]:
    """(worker id, its CUDA_VISIBLE_DEVICES, its device, NVML index) per planned worker."""
    if listed is not None:
        monkeypatch.setenv("CUDA_VISIBLE_DEVICES", listed)
    plan = plan_workers(settings(**values))
    envs = [worker_environment(slot, {"CUDA_VISIBLE_DEVICES": "host's"}) for slot in plan]
    assert all(env["CUDA_DEVICE_ORDER"] == "PCI_BUS_ID" for env in envs)
    return [
        (s.worker_id, e["CUDA_VISIBLE_DEVICES"], s.device, s.gpu.index if s.gpu else None)
        for s, e in zip(plan, envs, strict=True)
    ]


@pytest.mark.usefixtures("nvml")
def test_without_a_list_every_gpu_gets_its_nvml_index(monkeypatch: pytest.MonkeyPatch) -> None:
    assert pinned(monkeypatch, None, workers_per_device=2)[:3] == [
        ("gpu0-w0", "0", "cuda:0", 0), ("gpu0-w1", "0", "cuda:0", 0), ("gpu1-w0", "1", "cuda:1", 1),
    ]  # fmt: skip
    assert len(pinned(monkeypatch, None, workers_per_device=2)) == 8


@pytest.mark.usefixtures("nvml")
def test_an_inherited_list_limits_the_workers_to_its_gpus(monkeypatch: pytest.MonkeyPatch) -> None:
    assert pinned(monkeypatch, "2,3") == [
        ("gpu2-w0", "2", "cuda:0", 2),
        ("gpu3-w0", "3", "cuda:1", 3),
    ]
    # UUIDs, full or a unique prefix with or without GPU-, each worker given its own entry
    listed = f"{UUIDS[3]}, 1bbb"
    assert pinned(monkeypatch, listed) == [
        ("gpu3-w0", UUIDS[3], "cuda:0", 3), ("gpu1-w0", "1bbb", "cuda:1", 1),
    ]  # fmt: skip


@pytest.mark.usefixtures("nvml")
def test_device_cuda_n_is_the_nth_listed_gpu(monkeypatch: pytest.MonkeyPatch) -> None:
    assert pinned(monkeypatch, "2,3", device="cuda:1") == [("gpu3-w0", "3", "cuda:1", 3)]
    with pytest.raises(DeviceError, match=r"DEVICE=cuda:2: .*cuda:1 = GPU 3 NVIDIA L4"):
        plan_workers(settings(device="cuda:2"))


@pytest.mark.usefixtures("nvml")
def test_an_entry_naming_no_gpu_hides_the_rest_as_cuda_does(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING):
        assert pinned(monkeypatch, "1,7,2") == [("gpu1-w0", "1", "cuda:0", 1)]
        pinned(monkeypatch, "1,7,2")
    assert caplog.text.count("'7' names none of NVML's GPUs") == 1  # once, not per scrape
    assert pinned(monkeypatch, "GPU-,0") == [("cpu-w0", "", "cpu", None)]  # names no GPU
    assert pinned(monkeypatch, "") == [("cpu-w0", "", "cpu", None)]  # the host hides them all
    assert pinned(monkeypatch, "0", device="cpu") == [("cpu-w0", "", "cpu", None)]


def test_without_nvml_the_workers_run_on_the_cpu(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(gpus, "pynvml", None)
    monkeypatch.setattr(gpus, "_initialised", None)
    assert pinned(monkeypatch, "0,1") == [("cpu-w0", "", "cpu", None)]


@pytest.mark.usefixtures("nvml")
def test_system_status_and_the_workers_name_the_same_cards(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", f"3,{UUIDS[1]}")
    pool = WorkerPool(settings(), launcher=lambda *_: pytest.fail("nothing is started"))
    status = system_status.system_status(pool.status())
    listed = [(g["device_id"], g["name"], g["uuid"]) for g in status["gpus"]]
    assert listed == [(3, "NVIDIA L4", UUIDS[3]), (1, "NVIDIA H100", UUIDS[1])]
    workers = status["workers"]
    assert [w["worker_id"] for w in workers] == ["gpu3-w0", "gpu1-w0"]
    assert [(w["gpu"]["index"], w["gpu"]["name"], w["gpu"]["uuid"]) for w in workers] == listed
    assert [w["device"] for w in workers] == ["cuda:0", "cuda:1"]
    assert status["gpus"][0]["memory_gb"]["used"] == 3.0  # read from NVML's index, not the order
    assert isinstance(pool.handles[0], WorkerHandle)


@pytest.mark.usefixtures("nvml")
def test_a_device_beyond_the_gpus_stops_the_start_as_a_configuration_error(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from app import __main__ as entry

    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "2,3")
    chosen = settings(device="cuda:2", host="127.0.0.1")
    monkeypatch.setattr(entry, "load_settings", lambda: chosen)
    monkeypatch.setattr(entry, "configure_logging", lambda *args: None)
    monkeypatch.setattr(Settings, "export_environment", lambda self: None)
    assert entry.main() == 2
    assert "configuration error: DEVICE=cuda:2" in capsys.readouterr().err
