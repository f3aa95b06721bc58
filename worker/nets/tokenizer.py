"""A WordPiece tokenizer learned from the training texts, built with the `tokenizers` library.

BERT's normalizer puts spaces around CJK characters, so Chinese and Japanese text becomes one token per
character, while space-separated languages keep their frequent words whole and fall back to characters
(`##x` pieces) for the rest. The vocabulary is chosen deterministically — every character seen, then
the most frequent words (ties broken alphabetically) — so the same file and settings always give the
same tokenizer (the library's own trainer does not). Each text is wrapped in [CLS] … [SEP], so the
n-grams that open and close a text are told apart from those inside it. Saved as a `tokenizer.json` that
`AutoTokenizer` loads without any code.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors
from transformers import PreTrainedTokenizerFast

SPECIAL = {"pad_token": "[PAD]", "unk_token": "[UNK]", "cls_token": "[CLS]", "sep_token": "[SEP]"}
MIN_WORD_COUNT = 2


def learn_vocab(texts: Sequence[str], vocab_size: int) -> list[str]:
    normalizer = normalizers.BertNormalizer(
        clean_text=True, handle_chinese_chars=True, strip_accents=None, lowercase=True
    )
    pre = pre_tokenizers.BertPreTokenizer()
    words: Counter[str] = Counter()
    for text in texts:
        words.update(w for w, _ in pre.pre_tokenize_str(normalizer.normalize_str(text)))
    chars = sorted({c for w in words for c in w})
    vocab = [*SPECIAL.values(), *chars, *(f"##{c}" for c in chars)]
    have = set(vocab)
    for word, count in sorted(words.items(), key=lambda kv: (-kv[1], kv[0])):
        if len(vocab) >= vocab_size or count < MIN_WORD_COUNT:
            break
        if word not in have:
            vocab.append(word)
            have.add(word)
    return vocab


def learn_tokenizer(texts: Sequence[str], vocab_size: int, max_length: int) -> PreTrainedTokenizerFast:
    vocab = learn_vocab(texts, vocab_size)
    tok = Tokenizer(
        models.WordPiece(
            {t: i for i, t in enumerate(vocab)}, unk_token=SPECIAL["unk_token"], max_input_chars_per_word=100
        )
    )
    tok.normalizer = normalizers.BertNormalizer(
        clean_text=True, handle_chinese_chars=True, strip_accents=None, lowercase=True
    )
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.decoder = decoders.WordPiece()
    cls, sep = SPECIAL["cls_token"], SPECIAL["sep_token"]
    tok.post_processor = processors.TemplateProcessing(
        single=f"{cls} $A {sep}",
        pair=f"{cls} $A {sep} $B:1 {sep}:1",
        special_tokens=[(cls, vocab.index(cls)), (sep, vocab.index(sep))],
    )
    return PreTrainedTokenizerFast(tokenizer_object=tok, model_max_length=max_length, **SPECIAL)
