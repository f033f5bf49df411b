"""Finding a model's files (``common.model_files``) for every variant, on stand-in Hubs of empty
files: what is read from where, what is fetched, and the start-up error for a missing file."""

from __future__ import annotations

from pathlib import Path

import pytest
from huggingface_hub import constants

from common.model_files import ModelFilesError, by_repository, locate
from common.variants import BASE_REPO_ID, PACK_T3_PATTERN, ModelChoice, Part, Variant
from tests.support.hub import FakeHub, use_hub_cache
from worker.engine.model.random_pack import publish_hub_cache

PACK = "ResembleAI/Chatterbox-Multilingual-hi"
CHOICES = [
    ModelChoice(Variant.ENGLISH),
    ModelChoice(Variant.TURBO),
    ModelChoice(Variant.NANO),
    ModelChoice(Variant.MULTILINGUAL, t3_model="v2"),
    ModelChoice(Variant.MULTILINGUAL, PACK),
]


def repositories(choice: ModelChoice, root: Path, leave_out: Part | None = None) -> dict[str, Path]:
    """A directory per repository with an empty file for each file the model reads."""
    dirs = {}
    for repo, files in by_repository(choice.wanted).items():
        dirs[repo] = root / repo.replace("/", "--")
        dirs[repo].mkdir(parents=True)
        for file in files:
            name = "t3_hi.safetensors" if file.names[0] == PACK_T3_PATTERN else file.names[-1]
            if file.part is not leave_out:
                (dirs[repo] / name).touch()
    return dirs


@pytest.mark.parametrize("choice", CHOICES, ids=lambda c: c.label)
def test_a_missing_file_is_named_with_its_repository_and_the_fetch_command(
    choice: ModelChoice, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    publish_hub_cache(repositories(choice, tmp_path, Part.VOICE_ENCODER), tmp_path / "hf")
    use_hub_cache(monkeypatch, tmp_path / "hf")
    with pytest.raises(ModelFilesError) as error:
        locate(choice, tmp_path / "models")
    encoder = next(f for f in choice.wanted if f.part is Part.VOICE_ENCODER)
    message = str(error.value)
    assert f"missing {encoder.shown} of {encoder.repo_id}." in message
    assert f"has a copy of {encoder.repo_id} without {encoder.shown}" in message
    assert f"`{choice.fetch_command(str(tmp_path / 'models'))}`" in message
    assert "HF_HUB_OFFLINE is set" in message


@pytest.mark.parametrize("choice", CHOICES, ids=lambda c: c.label)
def test_every_file_is_read_from_its_repository(
    choice: ModelChoice, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    publish_hub_cache(repositories(choice, tmp_path), tmp_path / "hf")
    use_hub_cache(monkeypatch, tmp_path / "hf")
    files = locate(choice, None)
    for file in choice.wanted:
        path = files.paths[file.part]
        assert f"models--{file.repo_id.replace('/', '--')}" in str(path) and path.is_file()
    assert files.directory == files[Part.T3].parent


def test_what_the_cache_lacks_is_fetched_and_nothing_else(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A pack cached without the base repository's files (the bare FileNotFoundError of old)."""
    choice = ModelChoice(Variant.MULTILINGUAL, PACK)
    dirs = repositories(choice, tmp_path / "hub")
    publish_hub_cache({PACK: dirs[PACK]}, tmp_path / "hf")
    use_hub_cache(monkeypatch, tmp_path / "hf")
    decoys = ["s3gen.pt", "t3_mtl23ls_v3.safetensors", "grapheme_mtl_merged_expanded_v1.json"]
    hub = FakeHub(dirs, {BASE_REPO_ID: decoys}, cache=tmp_path / "fetched").install(monkeypatch)
    files = locate(choice, None)
    assert sorted(hub.fetched) == [
        (BASE_REPO_ID, "Cangjie5_TC.json"),
        (BASE_REPO_ID, "conds.pt"),
        (BASE_REPO_ID, "ve.pt"),
    ]
    assert files[Part.VOICE_ENCODER].parent == tmp_path / "fetched" / "ResembleAI--chatterbox"
    assert files[Part.T3].name == "t3_hi.safetensors"


def test_turbo_fetches_its_tokenizer_files_but_no_decoder_it_does_not_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    choice = ModelChoice(Variant.TURBO)
    dirs = repositories(choice, tmp_path / "hub")
    for name in ("vocab.json", "merges.txt"):
        (dirs[choice.files.repo_id] / name).touch()
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "empty"))
    hub = FakeHub(dirs, {choice.files.repo_id: ["s3gen.safetensors"]}, cache=tmp_path / "fetched")
    hub.install(monkeypatch)
    locate(choice, None)
    assert {name for _, name in hub.fetched} == {
        "ve.safetensors",
        "t3_turbo_v1.safetensors",
        "s3gen_meanflow.safetensors",
        "tokenizer_config.json",
        "conds.pt",
        "random_weights.json",
        "vocab.json",
        "merges.txt",
    }
