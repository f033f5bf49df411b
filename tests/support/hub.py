"""Stand-ins for the Hugging Face Hub: no network here, ever.

``use_hub_cache`` points this process's huggingface_hub (and spacy_pkuseg) at a stand-in cache,
such as a written pack's ``hf_home``; ``FakeHub`` answers ``list_repo_files`` and
``hf_hub_download`` from local directories, one per repository, and records what was fetched.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import huggingface_hub
import pytest
from huggingface_hub import constants


def use_hub_cache(
    monkeypatch: pytest.MonkeyPatch, hf_home: Path, pkuseg_home: Path | None = None
) -> None:
    """huggingface_hub and spacy_pkuseg read their homes at import: patch what they read."""
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(hf_home / "hub"))
    if pkuseg_home is not None:
        from spacy_pkuseg import config

        monkeypatch.setattr(config, "pkuseg_home", str(pkuseg_home))


class FakeHub:
    """Repositories served from directories; ``listed_only`` are names a repository lists but
    that must never be fetched (the real ones hold many files a model does not read)."""

    def __init__(
        self,
        repositories: dict[str, Path],
        listed_only: dict[str, list[str]] | None = None,
        cache: Path | None = None,
    ) -> None:
        self.repositories = repositories
        self.listed_only = listed_only or {}
        self.cache = cache  # where a download without local_dir goes, a folder per repository
        self.fetched: list[tuple[str, str]] = []

    def install(self, monkeypatch: pytest.MonkeyPatch) -> FakeHub:
        monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
        monkeypatch.setattr(huggingface_hub, "list_repo_files", self.list_repo_files)
        monkeypatch.setattr(huggingface_hub, "hf_hub_download", self.hf_hub_download)
        return self

    def list_repo_files(self, repo_id: str) -> list[str]:
        names = [p.name for p in self.repositories[repo_id].iterdir() if p.is_file()]
        return sorted(names + self.listed_only.get(repo_id, []))

    def hf_hub_download(self, repo_id: str, filename: str, local_dir: Path | None = None) -> str:
        assert filename not in self.listed_only.get(repo_id, []), f"fetched {filename}"
        self.fetched.append((repo_id, filename))
        if local_dir is None:
            assert self.cache is not None, "no stand-in cache to download into"
            local_dir = self.cache / repo_id.replace("/", "--")
        Path(local_dir).mkdir(parents=True, exist_ok=True)
        return str(shutil.copy(self.repositories[repo_id] / filename, Path(local_dir) / filename))
