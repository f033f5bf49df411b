"""Where a model's files are: a ``MODEL_PATH`` directory, the Hugging Face cache, or the Hub.

Each file a model reads (``ModelChoice.wanted``: a Single Language Pack's from two repositories)
is looked for in ``MODEL_PATH`` first, every repository's files side by side as the download
script leaves them. Unless every required file is there, each repository's files are looked for
in the cache's copy of it, and what that copy lacks is fetched from the Hub (unless
``HF_HUB_OFFLINE`` forbids it): only the files the model reads, never a whole repository. A
required file found nowhere stops the start with one message naming the file, its repository
and the command that fetches it.

Torch-free: the download script, which the Docker build runs, fetches through it too.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from fnmatch import fnmatch
from pathlib import Path

from .variants import MULTILINGUAL_T3_MODELS, ModelChoice, ModelFile, Part, Variant

log = logging.getLogger(__name__)


class ModelFilesError(Exception):
    """A file the model needs is missing (or ambiguous); the message says how to fix it."""


@dataclass(frozen=True)
class ModelFiles:
    """Where each file of one model is."""

    paths: Mapping[Part, Path]
    directory: Path  # the model repository's own files: MODEL_PATH or its cached snapshot

    def __getitem__(self, part: Part) -> Path:
        return self.paths[part]

    def get(self, part: Part) -> Path | None:
        return self.paths.get(part)


def locate(choice: ModelChoice, model_path: Path | None) -> ModelFiles:
    """Every file ``choice`` reads: from ``model_path`` if it holds them all, else from the Hub
    cache, fetching what the cache lacks; :class:`ModelFilesError` when one is missing."""
    local = pick_files(choice.wanted, model_path)
    if _complete(choice.wanted, local):
        assert model_path is not None
        return ModelFiles(local, model_path)
    found: dict[Part, Path] = {}
    notes: list[str] = []
    for repo_id, files in by_repository(choice.wanted).items():
        found |= _from_hub(repo_id, files, notes)
    if not _complete(choice.wanted, found):
        raise ModelFilesError(_missing_message(choice, model_path, local, found, notes))
    return ModelFiles(found, found[Part.T3].parent)


def by_repository(files: Iterable[ModelFile]) -> dict[str, list[ModelFile]]:
    grouped: dict[str, list[ModelFile]] = {}
    for file in files:
        grouped.setdefault(file.repo_id, []).append(file)
    return grouped


def pick_files(files: Iterable[ModelFile], directory: Path | None) -> dict[Part, Path]:
    """The paths of ``files`` that ``directory`` holds."""
    if directory is None or not directory.is_dir():
        return {}
    present = {p.name for p in directory.iterdir() if p.is_file()}
    try:
        picked = {f.part: f.pick(present) for f in files}
    except ValueError as error:
        raise ModelFilesError(f"{directory}: {error}") from None
    return {part: directory / name for part, name in picked.items() if name}


def fetch(repo_id: str, files: Collection[ModelFile], local_dir: Path | None = None) -> Path | None:
    """Download from ``repo_id`` the files of ``files`` it holds (and their companions), into
    ``local_dir`` or the Hub cache; the directory they are in (``None``: it holds none)."""
    from huggingface_hub import hf_hub_download, list_repo_files
    from huggingface_hub.constants import HF_HUB_CACHE

    present = list_repo_files(repo_id)
    names = [name for f in files if (name := f.pick(present))]
    also = {p for f in files for p in f.also}
    names += [n for n in present if n not in names and any(fnmatch(n, p) for p in also)]
    if names:
        log.info(
            "Fetching %s from %s into %s", ", ".join(names), repo_id, local_dir or HF_HUB_CACHE
        )
    path = None
    for name in names:
        path = Path(hf_hub_download(repo_id, name, local_dir=local_dir))
    return local_dir if local_dir is not None else (path.parent if path else None)


def cached_snapshot(repo_id: str) -> Path | None:
    """The Hub cache's copy of ``repo_id`` (its main branch), as far as it was fetched."""
    from huggingface_hub import constants, scan_cache_dir
    from huggingface_hub.errors import CacheNotFound

    try:
        cache = scan_cache_dir(constants.HF_HUB_CACHE)
    except CacheNotFound:
        return None
    for repo in cache.repos:
        if repo.repo_id == repo_id and repo.repo_type == "model":
            for revision in repo.revisions:
                if "main" in revision.refs:
                    return Path(revision.snapshot_path)
    return None


def _from_hub(repo_id: str, files: list[ModelFile], notes: list[str]) -> dict[Part, Path]:
    from huggingface_hub import constants

    snapshot = cached_snapshot(repo_id)
    found = pick_files(files, snapshot)
    if _complete(files, found):
        return found
    lacking = ", ".join(f.shown for f in files if f.required and f.part not in found)
    notes.append(
        f"the Hugging Face cache ({constants.HF_HUB_CACHE}) "
        + (f"has a copy of {repo_id} without {lacking}" if snapshot else f"has no {repo_id}")
    )
    if constants.HF_HUB_OFFLINE:
        notes.append(f"HF_HUB_OFFLINE is set, so nothing was fetched from {repo_id}")
        return found
    try:
        return pick_files(files, fetch(repo_id, files))
    except ModelFilesError:
        raise
    except Exception as error:
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        notes.append(f"fetching from {repo_id} failed ({reason})")
        return found


def _complete(files: Iterable[ModelFile], found: Mapping[Part, Path]) -> bool:
    return all(f.part in found for f in files if f.required)


def _missing_message(
    choice: ModelChoice,
    model_path: Path | None,
    local: Mapping[Part, Path],
    found: Mapping[Part, Path],
    notes: list[str],
) -> str:
    required = [f for f in choice.wanted if f.required]
    missing = by_repository(f for f in required if f.part not in found)
    what = "; ".join(
        f"{', '.join(f.shown for f in files)} of {repo}" for repo, files in missing.items()
    )
    if model_path and model_path.is_dir():
        lacks = [f for f in required if f.part not in local]
        where = f"MODEL_PATH={model_path.resolve()} lacks {', '.join(f.shown for f in lacks)}"
        where += _other_t3_files(choice, model_path, local)
    elif model_path:
        where = f"MODEL_PATH={model_path.resolve()} is no directory"
    else:
        where = "MODEL_PATH is not set"
    directory = str(model_path.resolve()) if model_path else None
    return (
        f"Cannot load {choice.label}: missing {what}. {'; '.join([where, *notes])}. Fix: fetch "
        f"the files with `{choice.fetch_command(directory)}` (without the directory: into the "
        "Hugging Face cache), or allow network access to the Hub (unset HF_HUB_OFFLINE) and "
        f"start again, or point HF_HOME at a cache that holds them. {_random_command(choice)}"
    )


def _random_command(choice: ModelChoice) -> str:
    script = "python scripts/make_random_checkpoint.py --size tiny"
    if choice.pack:
        return (
            f"For tests without weights: `{script} --pack {choice.pack} DIR`, then "
            "HF_HOME=DIR/hf-home and PKUSEG_HOME=DIR/pkuseg."
        )
    return (
        f"For tests without weights: `{script} --variant {choice.variant.value} DIR`, then "
        "MODEL_PATH=DIR."
    )


def _other_t3_files(choice: ModelChoice, directory: Path, local: Mapping[Part, Path]) -> str:
    """For a multilingual directory without the T3 file asked for: the ones it has instead."""
    if choice.variant is not Variant.MULTILINGUAL or choice.pack or Part.T3 in local:
        return ""
    present = sorted(p.name for p in directory.glob("t3_*.safetensors"))
    if not present:
        return " (and holds no t3_*.safetensors file)"
    return (
        f" (it holds {', '.join(present)}: MULTILINGUAL_T3_MODEL picks the multilingual T3 "
        f"file, e.g. {' or '.join(MULTILINGUAL_T3_MODELS)})"
    )
