"""Corpora (readers, built-in UDHR and gettext texts), language codes and token batching."""

from __future__ import annotations

from crane.data.batching import (
    Batch,
    TokenizedTexts,
    Window,
    count_batches,
    iter_batches,
    pad_token_id,
    tokenize_texts,
)
from crane.data.builtin import (
    BUILTIN_CORPORA,
    GettextUnavailable,
    cache_dir,
    describe_builtin,
    gettext_corpus,
    load_builtin,
    load_corpus,
    udhr_corpus,
    udhr_units,
)
from crane.data.corpus import Corpus, read_corpus
from crane.data.languages import (
    ISO_639_1,
    language_name,
    normalize_language,
    parse_language_list,
)

__all__ = [
    "BUILTIN_CORPORA",
    "Batch",
    "Corpus",
    "GettextUnavailable",
    "ISO_639_1",
    "TokenizedTexts",
    "Window",
    "cache_dir",
    "count_batches",
    "describe_builtin",
    "gettext_corpus",
    "iter_batches",
    "language_name",
    "load_builtin",
    "load_corpus",
    "normalize_language",
    "pad_token_id",
    "parse_language_list",
    "read_corpus",
    "tokenize_texts",
    "udhr_corpus",
    "udhr_units",
]
