"""Chinese assets for random-weight multilingual checkpoints: a Cangjie table and a pkuseg model.

Neither upstream asset can be downloaded here, so a test checkpoint carries stand-ins of the same
format, read by the same code (``worker.engine.chinese``): a table giving random Cangjie codes to
the whole CJK Unified Ideographs block (codes shared by several glyphs included, so the index
suffix is exercised), and a pkuseg model trained in about a second by spacy_pkuseg's own trainer
on a few segmented sentences, laid out as spacy_pkuseg's download leaves it (``pkuseg/`` is a
PKUSEG_HOME, so upstream's ``pkuseg()`` loads it too).
"""

from __future__ import annotations

import contextlib
import io
import json
import tempfile
import zipfile
from pathlib import Path

import numpy as np
from tokenizers import Tokenizer

from common.variants import CANGJIE_TABLE, PKUSEG_DIR, PKUSEG_MODEL

# Cangjie codes use the letters a-y; upstream appends a glyph's index among those sharing its
# code, and every character becomes a [cj_*] token, then [cj_.] ends the glyph.
CANGJIE_LETTERS = "abcdefghijklmnopqrstuvwxy"
CANGJIE_TOKENS = [f"[cj_{c}]" for c in CANGJIE_LETTERS + "0123456789."]
HANZI = [chr(c) for c in range(0x4E00, 0xA000)]

# Segmented sentences (words separated by spaces) to train the tiny segmenter on; spacy_pkuseg's
# optimiser needs at least ten.
TRAINING_SENTENCES = [
    "我们 今天 去 公园 散步 。",
    "你好 ， 世界 ！",
    "他 说 中文 很 好 。",
    "这 是 一个 测试 句子 。",
    "天气 很 好 ， 我们 出去 玩 吧 。",
    "我 喜欢 学习 语言 。",
    "请 问 火车站 在 哪里 ？",
    "他们 明天 要 开会 。",
    "这 本 书 非常 有趣 。",
    "我们 一起 吃 晚饭 吧 。",
    "老师 在 教室 里 上课 。",
    "中国 是 一个 大 国家 。",
]


def write_chinese_assets(directory: Path, tokenizer: Tokenizer, seed: int = 0) -> None:
    """Write the table and the segmenter into ``directory``; give ``tokenizer`` the Cangjie
    tokens (the caller saves it afterwards)."""
    tokenizer.add_special_tokens(CANGJIE_TOKENS)
    write_cangjie_table(directory / CANGJIE_TABLE, seed)
    write_pkuseg_model(directory / PKUSEG_DIR)


def write_cangjie_table(path: Path, seed: int = 0) -> None:
    """Upstream's format: a JSON list of ``"glyph<TAB>code"`` strings."""
    rng = np.random.default_rng(seed)
    lengths = rng.choice([2, 3, 4, 5], size=len(HANZI), p=[0.05, 0.25, 0.4, 0.3])
    letters = np.array(list(CANGJIE_LETTERS))
    codes = ("".join(rng.choice(letters, size=n)) for n in lengths)
    entries = [f"{glyph}\t{code}" for glyph, code in zip(HANZI, codes, strict=True)]
    path.write_text(json.dumps(entries, ensure_ascii=False), encoding="utf-8")


def write_pkuseg_model(home: Path) -> Path:
    """Train the tiny segmenter into ``home/spacy_ontonotes`` (beside the zip that spacy_pkuseg's
    downloader checks for) and return that folder."""
    import spacy_pkuseg

    model_dir = home / PKUSEG_MODEL
    with tempfile.TemporaryDirectory() as scratch:
        corpus = Path(scratch) / "train.txt"
        corpus.write_text("\n".join(TRAINING_SENTENCES) + "\n", encoding="utf-8")
        with contextlib.redirect_stdout(io.StringIO()):  # the trainer prints every iteration
            spacy_pkuseg.train(str(corpus), str(corpus), str(model_dir), train_iter=5)
    with zipfile.ZipFile(home / f"{PKUSEG_MODEL}.zip", "w") as archive:
        for file in sorted(model_dir.iterdir()):
            archive.write(file, file.name)
    return model_dir
