"""Chinese in the multilingual tokenizer: upstream's tokens, from local assets only, and a clear
start-up error when an asset is missing."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
import spacy_pkuseg
from chatterbox.models.tokenizers.tokenizer import REPO_ID, MTLTokenizer

from common.variants import CANGJIE_TABLE, FILES, PKUSEG_DIR, Variant
from tests.support.checkpoints import Checkpoints
from worker.engine.errors import InvalidCheckpointError, ModelNotFoundError
from worker.engine.model.chinese import load_converter, multilingual_tokenizer, read_cangjie_table

VOCAB = FILES[Variant.MULTILINGUAL].tokenizer[0]
TEXTS = [
    "你好，世界！",
    "我们今天去公园散步。天气很好，我们出去玩吧。",
    "他说：“中文很好”，然后笑了。",
    "2024年，GPT-4 和 Chatterbox 都会说中文。",
    "  空格  之间 的 字 ",
    "请问火车站在哪里？我要去北京、上海和广州。",
]


@pytest.fixture(scope="module")
def multilingual_dir(checkpoints: Checkpoints) -> Path:
    return checkpoints(Variant.MULTILINGUAL)


@pytest.fixture
def upstream(
    multilingual_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> MTLTokenizer:
    """Upstream's own ``MTLTokenizer.__init__`` on the same assets: the table where its
    ``hf_hub_download(cache_dir=<vocab folder>)`` finds it offline, pkuseg's home ours."""
    snapshot = tmp_path / f"models--{REPO_ID.replace('/', '--')}" / "snapshots" / ("0" * 40)
    snapshot.mkdir(parents=True)
    shutil.copy(multilingual_dir / CANGJIE_TABLE, snapshot / CANGJIE_TABLE)
    (snapshot.parent.parent / "refs").mkdir()
    (snapshot.parent.parent / "refs" / "main").write_text("0" * 40)
    shutil.copy(multilingual_dir / VOCAB, tmp_path / VOCAB)
    monkeypatch.setattr(spacy_pkuseg.config, "pkuseg_home", str(multilingual_dir / PKUSEG_DIR))
    tokenizer = MTLTokenizer(str(tmp_path / VOCAB))
    converter = tokenizer.cangjie_converter
    assert converter.word2cj and converter.segmenter is not None  # it used both assets
    return tokenizer


def test_chinese_tokens_equal_upstreams(multilingual_dir: Path, upstream: MTLTokenizer) -> None:
    ours = multilingual_tokenizer(multilingual_dir / VOCAB)
    shared = _glyph_sharing_a_code(multilingual_dir / CANGJIE_TABLE)
    cj_end = upstream.tokenizer.token_to_id("[cj_.]")
    for text in [*TEXTS, f"这个字{shared}有编号。"]:
        expected = upstream.encode(text, language_id="zh")
        assert ours(text, "zh") == expected, text
        assert cj_end in expected  # Hanzi became Cangjie tokens, not [UNK]
    for text, language in [("Hello there.", "en"), ("Ça va très bien.", "fr")]:
        assert ours(text, language) == upstream.encode(text, language_id=language)


def test_a_shared_code_carries_the_glyphs_index(multilingual_dir: Path) -> None:
    spelled = read_cangjie_table(multilingual_dir / CANGJIE_TABLE)
    assert any(re.search(r"\[cj_\d\]\[cj_\.\]$", tokens) for tokens in spelled.values())


def test_missing_cangjie_table_stops_the_start_naming_it(
    multilingual_dir: Path, tmp_path: Path
) -> None:
    shutil.copytree(multilingual_dir / PKUSEG_DIR, tmp_path / PKUSEG_DIR)
    with pytest.raises(ModelNotFoundError) as error:
        load_converter(tmp_path)
    message = str(error.value)
    assert CANGJIE_TABLE in message and str(tmp_path) in message
    assert "scripts/download_weights.py --variant chatterbox-multilingual" in message


def test_missing_pkuseg_model_stops_the_start_naming_it(
    multilingual_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    shutil.copy(multilingual_dir / CANGJIE_TABLE, tmp_path / CANGJIE_TABLE)
    shutil.copy(multilingual_dir / VOCAB, tmp_path / VOCAB)
    monkeypatch.setattr(spacy_pkuseg.config, "pkuseg_home", str(tmp_path / "no-pkuseg"))
    with pytest.raises(ModelNotFoundError) as error:
        multilingual_tokenizer(tmp_path / VOCAB)
    message = str(error.value)
    assert "spacy_ontonotes" in message and "PKUSEG_HOME" in message
    assert "scripts/download_weights.py" in message


def test_a_table_that_is_not_one_names_the_file(tmp_path: Path) -> None:
    table = tmp_path / CANGJIE_TABLE
    table.write_text(json.dumps(["你 no tab here"]))
    with pytest.raises(InvalidCheckpointError, match=CANGJIE_TABLE):
        read_cangjie_table(table)


def _glyph_sharing_a_code(table: Path) -> str:
    """A glyph whose code an earlier glyph has too (its tokens carry an index)."""
    seen: set[str] = set()
    for entry in json.loads(table.read_text(encoding="utf-8")):
        glyph, code = entry.split("\t")
        if code in seen:
            return glyph
        seen.add(code)
    raise AssertionError("no shared code in the table")
