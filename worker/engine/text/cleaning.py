"""What of a client's text reaches the tokenizer: everything upstream passes, but emoji and code
points that are not text (torch-free).

Upstream hands a request's text to ``punc_norm`` and the model's tokenizer unchanged, and the
tokenizer decides: a character in its vocabulary becomes its token (GPT-2's byte-level BPE, for
Turbo and Nano, reads any character), one that is not becomes ``[UNK]``, and the multilingual
tokenizer first lower-cases and NFKD-normalises (fullwidth ``Ａ`` is ``a`` to it). So every
character is kept as sent (no Unicode normalisation: the byte-level BPE would see other bytes)
-- degree signs, currency and math symbols, zero-width joiners of Indic and Persian script,
combining marks, bidirectional marks -- and a character the vocabulary lacks is fed as the
``[UNK]`` upstream feeds, since that is the input the model met wherever its training text held
such a character.

Dropped, unlike upstream: emoji (pictographs presented as emoji, with the skin tones, joiners,
variation selectors, keycaps and tags that build them; an LLM's "Great! 🎉" should not be read
as bytes or ``[UNK]``), and code points that are not text: control characters other than
whitespace, surrogates, private use and unassigned ones. Whitespace of every kind becomes one
space, as ``punc_norm`` would make it.
"""

from __future__ import annotations

import unicodedata

# transformers' own dependency (so always installed with the engine): unlike unicodedata, it
# knows Unicode's emoji properties.
import regex

# One emoji: a pictograph shown as emoji by default, or asked to be (U+FE0F), or a keycap; then
# its skin tone, variation selector or tag characters (flags), and what ZWJ joins to it.
_MODIFIERS = r"[\p{Emoji_Modifier}\uFE0F\U000E0020-\U000E007F]*"
_PICTOGRAPH = r"(?:\p{Emoji_Presentation}|\p{Extended_Pictographic}\uFE0F|[#*0-9]\uFE0F\u20E3)"
_JOINED = rf"\u200D(?:\p{{Extended_Pictographic}}|{_PICTOGRAPH}){_MODIFIERS}"
EMOJI = regex.compile(rf"{_PICTOGRAPH}{_MODIFIERS}(?:{_JOINED})*")
_NOT_TEXT = {"Cc", "Cs", "Co", "Cn"}


def clean_text(text: str) -> str:
    """``text`` without emoji and non-text code points, its whitespace collapsed to single
    spaces (none at either end)."""
    text = EMOJI.sub("", text)
    kept = (
        " " if ch.isspace() else ch
        for ch in text
        if ch.isspace() or unicodedata.category(ch) not in _NOT_TEXT
    )
    return " ".join("".join(kept).split())
