"""Languages that are not cut off: chunks of Chinese, Japanese, Hindi and Arabic end at their
sentence marks, fit a KV-cache slot in tokens of the tiny multilingual checkpoint's own
tokenizer, and have speech budgets well over their natural duration."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from common.params import SynthesisParams
from common.variants import Variant
from tests.support.checkpoints import Checkpoints
from tests.support.t3 import Request, sequence
from worker.engine.model.loading import LoadedModel, load_model
from worker.engine.pipeline import StreamingEngine
from worker.engine.t3.runner import T3Runner
from worker.engine.t3.scheduler import T3Scheduler
from worker.engine.text.budgets import TOKENS_PER_SECOND, token_budget

# Natural speaking rates the budgets must exceed by 1.5x: Mandarin at 5 Hanzi (syllables) per
# second, the fast end of everyday speech; Japanese at 8 morae per second, a kanji 2 morae.
CHINESE_HANZI_PER_SECOND = 5.0
JAPANESE_MORAE_PER_SECOND = 8.0
MARGIN = 1.5

CHINESE = [
    "今天早上我们一起去公园散步，天气非常好。",
    "公园里有很多人在跑步、打太极拳和跳舞。",
    "我的朋友说，他每天都会来这里锻炼身体！",
    "你觉得这个城市的空气怎么样？",
    "下午我们打算去博物馆看一个新的展览，听说那里有很多古代的文物。",
]
JAPANESE = [
    "今日はとても良い天気ですね。",
    "私たちは朝から公園を散歩して、駅の近くの喫茶店でコーヒーを飲みました。",
    "友達は毎日ここで運動していると言っていました！",
    "この町の空気はどう思いますか？",
    "午後は新しい展覧会を見に美術館へ行く予定です。",
]


def exactly(sentences: list[str], length: int) -> str:
    """Sentences in turn up to ``length`` characters, the last one shortened to end there."""
    text, turn = "", 0
    while len(text) + len(sentences[turn % len(sentences)]) <= length:
        text += sentences[turn % len(sentences)]
        turn += 1
    left = length - len(text)
    return text + (sentences[turn % len(sentences)][: left - 1] + "。" if left else "")


@pytest.fixture(scope="module")
def multilingual(checkpoints: Checkpoints) -> LoadedModel:
    return load_model(checkpoints(Variant.MULTILINGUAL), device="cpu")


@pytest.fixture(scope="module")
def engine(multilingual: LoadedModel) -> Iterator[StreamingEngine]:
    engine = StreamingEngine(multilingual, slots=1)
    yield engine
    engine.close()


def chunks(engine: StreamingEngine, text: str, language: str, **params: object) -> list[str]:
    feed = engine.validate(text, SynthesisParams(language=language, **params))  # type: ignore[arg-type]
    return list(feed._ready)  # type: ignore[arg-type]


def fits_a_slot(engine: StreamingEngine, chunk: str, language: str) -> bool:
    ids = engine.model.tokenize(chunk, language)
    prompt = engine.prompt_overhead + len(ids)
    return prompt + token_budget(chunk, engine.speech_limit) + 1 <= engine.context


def is_kanji(ch: str) -> bool:
    return "\u4e00" <= ch <= "\u9fff"


def is_kana(ch: str) -> bool:
    return "\u3040" <= ch <= "\u30ff"


@pytest.mark.parametrize(
    ("text", "language", "natural_seconds"),
    [
        (exactly(CHINESE, 300), "zh", lambda c: sum(map(is_kanji, c)) / CHINESE_HANZI_PER_SECOND),
        (
            exactly(JAPANESE, 300),
            "ja",
            lambda c: (
                (2 * sum(map(is_kanji, c)) + sum(map(is_kana, c))) / JAPANESE_MORAE_PER_SECOND
            ),
        ),
    ],
    ids=["zh", "ja"],
)
def test_300_characters_of_cjk_end_at_sentence_marks_fit_and_are_not_cut_short(
    engine: StreamingEngine, text: str, language: str, natural_seconds: object
) -> None:
    assert len(text) == 300 and text.endswith("。")
    parts = chunks(engine, text, language)
    assert "".join(parts) == text  # nothing lost, nothing added (each ends with its mark)
    assert len(parts) > 1
    for chunk in parts:
        assert chunk.endswith(("。", "！", "？")), chunk
        assert fits_a_slot(engine, chunk, language), chunk
        seconds = natural_seconds(chunk)  # type: ignore[operator]
        assert token_budget(chunk, engine.speech_limit) >= MARGIN * seconds * TOKENS_PER_SECOND


def test_hindi_splits_at_the_danda(engine: StreamingEngine) -> None:
    sentences = ["मैं आज बाज़ार गया।", "वहाँ बहुत भीड़ थी।", "क्या तुम कल आओगे?"]
    parts = chunks(engine, " ".join(sentences), "hi", text_processing_chunk_size=20)
    assert [p.removesuffix(".") for p in parts] == sentences  # punc_norm adds "." after ।


def test_arabic_splits_at_its_question_mark(engine: StreamingEngine) -> None:
    sentences = ["هل أنت بخير اليوم؟", "نعم، أنا بخير شكرا.", "وأنت كيف حالك؟"]
    parts = chunks(engine, " ".join(sentences), "ar", text_processing_chunk_size=20)
    assert [p.removesuffix(".") for p in parts] == [s.removesuffix(".") for s in sentences]


def test_the_prompt_length_the_engine_counts_is_the_runner_s(
    checkpoints: Checkpoints, multilingual: LoadedModel
) -> None:
    english = load_model(checkpoints(Variant.ENGLISH), device="cpu")
    turbo = load_model(checkpoints(Variant.TURBO), device="cpu")
    for model, text, language in [
        (english, "Hello there.", None),
        (turbo, "Hello there.", None),
        (multilingual, "你好，世界！", "zh"),
    ]:
        params = SynthesisParams(language=language, fixed_token_count=2)
        seq = sequence(model, Request(text, params))
        scheduler = T3Scheduler(1, 1024, model.t3.hp.stop_speech_token)
        runner = T3Runner(model, 1, 1024)
        scheduler.add(seq)
        plan = scheduler.plan()
        assert runner.step(plan).prefill_lengths == {0: seq.prompt_length}, model.variant
