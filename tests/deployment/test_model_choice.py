"""Choosing the model: the settings that name it, and the download that makes it start offline."""

from __future__ import annotations

import importlib.util
import shutil
from pathlib import Path
from types import ModuleType

import pytest
from huggingface_hub import constants
from pydantic import ValidationError

from common.settings import Settings
from common.variants import BASE_REPO_ID, PKUSEG_DIR, Variant
from tests.support.hub import FakeHub
from worker.engine.model.loading import load_model
from worker.engine.model.random_pack import LanguagePack

REPO = Path(__file__).resolve().parents[2]


def test_a_language_pack_code_names_its_repository_and_implies_multilingual() -> None:
    settings = Settings(model_repo_id="zh-cmn")
    assert settings.model_repo_id == "ResembleAI/Chatterbox-Multilingual-zh-cmn"
    assert settings.model_variant is Variant.MULTILINGUAL
    assert Settings(model_repo_id="me/my-fork").model_repo_id == "me/my-fork"
    assert Settings(model_repo_id="").model_repo_id is None


@pytest.mark.parametrize(
    ("settings", "named"),
    [
        ({"model_repo_id": "not a repo"}, "model_repo_id"),
        ({"model_repo_id": "hi", "model_variant": "chatterbox-turbo"}, "Single Language Pack"),
        ({"multilingual_t3_model": "v9"}, "multilingual_t3_model"),
        ({"model_variant": "chatterbox-mini"}, "model_variant"),
    ],
)
def test_a_bad_model_choice_stops_the_start_naming_it(settings: dict[str, str], named: str) -> None:
    with pytest.raises(ValidationError, match=named):
        Settings(**settings)


def test_multilingual_t3_defaults_to_v3_and_pkuseg_goes_on_the_volume() -> None:
    settings = Settings(data_dir=Path("/runpod-volume"))
    assert settings.multilingual_t3_model == "v3"
    assert settings.pkuseg_home == Path("/runpod-volume/pkuseg")


def test_the_download_fetches_exactly_what_a_pack_reads_and_it_starts_offline(
    language_pack: LanguagePack, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``download_weights.py --repo-id zh-cmn DIR`` against a stand-in Hub serving the pack's
    repository and the base one (which also lists files a pack must not take from it), then a
    start from DIR with the Hub offline."""
    script = _load_script()
    decoys = ["s3gen.pt", "t3_mtl23ls_v3.safetensors", "grapheme_mtl_merged_expanded_v1.json"]
    hub = FakeHub(
        language_pack.repositories,
        {BASE_REPO_ID: decoys, language_pack.repo_id: ["README.md", ".gitattributes"]},
    ).install(monkeypatch)
    homes: list[Path] = []

    def fetch_pkuseg(home: Path) -> None:
        homes.append(home)
        shutil.copytree(language_pack.pkuseg_home, home)

    monkeypatch.setattr(script, "fetch_pkuseg_model", fetch_pkuseg)
    models = tmp_path / "models"
    assert script.main(["--repo-id", "zh-cmn", str(models)]) == 0
    assert sorted(hub.fetched) == [
        (language_pack.repo_id, "grapheme_mtl_merged_expanded_v1.json"),
        (language_pack.repo_id, "random_weights.json"),  # a random checkpoint's marker
        (language_pack.repo_id, "s3gen_v3.pt"),
        (language_pack.repo_id, "t3_zh_cmn.safetensors"),
        (BASE_REPO_ID, "Cangjie5_TC.json"),
        (BASE_REPO_ID, "conds.pt"),
        (BASE_REPO_ID, "ve.pt"),
    ]
    assert homes == [models / PKUSEG_DIR]
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    model = load_model(models, device="cpu", repo_id=language_pack.repo_id)
    assert model.builtin_voice is not None and model.tokenize("你好", "zh")


def test_the_download_says_what_a_repository_lacks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    script = _load_script()
    english = tmp_path / "english"
    english.mkdir()
    for name in ("ve.safetensors", "t3_cfg.safetensors", "tokenizer.json"):
        (english / name).touch()
    FakeHub({BASE_REPO_ID: english}).install(monkeypatch)
    assert script.main(["--variant", "chatterbox", str(tmp_path / "models")]) == 1
    assert (
        "ResembleAI/chatterbox lacks s3gen.safetensors (S3Gen decoder)" in capsys.readouterr().err
    )


def _load_script() -> ModuleType:
    path = REPO / "scripts" / "download_weights.py"
    spec = importlib.util.spec_from_file_location("download_weights", path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
