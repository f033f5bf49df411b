"""Random-weight Single Language Packs in the published layout: two repositories.

A pack's repository (``ResembleAI/Chatterbox-Multilingual-<code>``) holds its language's T3,
its decoder ``s3gen_v3.pt`` (without the two buffers the S3 tokenizer computes) and the
tokenizer; the voice encoder, the built-in voice and the Cangjie table are the base
repository's (``ResembleAI/chatterbox``). Written here as one directory per repository, plus
spacy_pkuseg's model in a PKUSEG_HOME of its own, and published as a stand-in Hub: a Hugging
Face cache (``HF_HOME``) holding both repositories as a download leaves them, so a worker starts
from it offline through the same code as from the real Hub.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from common.variants import BASE_REPO_ID, PKUSEG_DIR, SINGLE_LANGUAGE_PACKS, ModelChoice, Variant

from .random_checkpoint import write_atomically, write_files

HF_HOME_DIR = "hf-home"


@dataclass(frozen=True)
class LanguagePack:
    """Where a written pack is: a directory per repository, pkuseg's home, the stand-in Hub."""

    code: str
    root: Path

    @property
    def repo_id(self) -> str:
        return SINGLE_LANGUAGE_PACKS[self.code]

    @property
    def repositories(self) -> dict[str, Path]:
        return {repo: self.root / repo.split("/")[1] for repo in (self.repo_id, BASE_REPO_ID)}

    @property
    def pack_dir(self) -> Path:
        return self.repositories[self.repo_id]

    @property
    def base_dir(self) -> Path:
        return self.repositories[BASE_REPO_ID]

    @property
    def pkuseg_home(self) -> Path:
        return self.root / PKUSEG_DIR

    @property
    def hf_home(self) -> Path:
        """A Hugging Face home whose cache holds both repositories (``HF_HOME``)."""
        return self.root / HF_HOME_DIR


def write_language_pack(code: str, size: str, out_dir: Path, seed: int = 0) -> LanguagePack:
    """Write the pack ``code`` (e.g. 'zh-cmn') into ``out_dir`` atomically."""
    pack = LanguagePack(code, Path(out_dir))

    def write(staging: Path) -> None:
        merged = staging / "merged"
        merged.mkdir()
        write_files(merged, Variant.MULTILINGUAL, size, seed, pack=code)
        _split(merged, LanguagePack(code, staging))
        merged.rmdir()
        publish_hub_cache(LanguagePack(code, staging).repositories, staging / HF_HOME_DIR)

    write_atomically(pack.root, write)
    return pack


def _split(merged: Path, pack: LanguagePack) -> None:
    """Move each file into its repository's directory, the segmenter into pkuseg's home."""
    for directory in pack.repositories.values():
        directory.mkdir()
    choice = ModelChoice(Variant.MULTILINGUAL, pack.repo_id)
    for file in choice.wanted:
        name = file.pick({p.name for p in merged.iterdir()})
        if name:
            os.replace(merged / name, pack.repositories[file.repo_id] / name)
    os.replace(merged / PKUSEG_DIR, pack.pkuseg_home)


def publish_hub_cache(repositories: dict[str, Path], hf_home: Path) -> Path:
    """A Hugging Face cache under ``hf_home`` holding each repository's files at its main
    branch, laid out as huggingface_hub leaves a download (blobs named by their hash, snapshot
    links, ``refs/main``); blobs are hard links where the file system allows. Its hub folder."""
    hub = hf_home / "hub"
    for repo_id, directory in repositories.items():
        storage = hub / ("models--" + repo_id.replace("/", "--"))
        files = sorted(p for p in directory.iterdir() if p.is_file())
        blobs = {p.name: _blob(p, storage / "blobs") for p in files}
        revision = hashlib.sha1("".join(sorted(blobs.values())).encode()).hexdigest()
        snapshot = storage / "snapshots" / revision
        snapshot.mkdir(parents=True)
        for name, blob in blobs.items():
            (snapshot / name).symlink_to(Path("../../blobs") / blob)
        (storage / "refs").mkdir()
        (storage / "refs" / "main").write_text(revision)
    return hub


def _blob(path: Path, blobs: Path) -> str:
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    blobs.mkdir(parents=True, exist_ok=True)
    target = blobs / digest
    if not target.exists():
        try:
            os.link(path, target)
        except OSError:
            shutil.copyfile(path, target)
    return digest
