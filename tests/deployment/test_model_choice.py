"""Choosing the model: the settings that name it, and the download that makes it start offline."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType
from typing import Any

import huggingface_hub
import pytest
from pydantic import ValidationError

from common.settings import Settings
from common.variants import CANGJIE_REPO_ID, CANGJIE_TABLE, PKUSEG_DIR, ModelChoice, Variant

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


def test_the_download_fetches_every_file_the_model_needs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What download_weights.py asks of the Hub and of spacy_pkuseg for a language pack (the
    Hub is replaced by a stand-in that writes what is asked for: no network here)."""
    script = _load_script()
    asked: list[tuple[str, Any]] = []

    def snapshot(repo_id: str, allow_patterns: list[str], local_dir: Path) -> str:
        asked.append((repo_id, allow_patterns))
        for name in allow_patterns:
            if name != CANGJIE_TABLE:  # a pack whose repository lacks the table
                (local_dir / name).write_text("x")
        return str(local_dir)

    def one_file(repo_id: str, filename: str, local_dir: Path) -> str:
        asked.append((repo_id, filename))
        return str(local_dir / filename)

    monkeypatch.setattr(huggingface_hub, "snapshot_download", snapshot)
    monkeypatch.setattr(huggingface_hub, "hf_hub_download", one_file)
    monkeypatch.setattr(script, "fetch_pkuseg_model", lambda home: asked.append(("pkuseg", home)))
    argv = ["--variant", "chatterbox-multilingual", "--repo-id", "hi", "--t3-model", "v2"]
    assert script.main([*argv, str(tmp_path)]) == 0
    files = ModelChoice(Variant.MULTILINGUAL, "ResembleAI/Chatterbox-Multilingual-hi", "v2").files
    assert asked[0] == (files.repo_id, files.hub_patterns)
    assert {"t3_mtl23ls_v2.safetensors", CANGJIE_TABLE} <= set(files.hub_patterns)
    assert asked[1:] == [(CANGJIE_REPO_ID, CANGJIE_TABLE), ("pkuseg", tmp_path / PKUSEG_DIR)]


def _load_script() -> ModuleType:
    path = REPO / "scripts" / "download_weights.py"
    spec = importlib.util.spec_from_file_location("download_weights", path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
