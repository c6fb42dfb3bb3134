"""Corpora (readers, the built-in UDHR and gettext texts in any language they have, splits and
the overlap check), language codes and token batching."""

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
    resolve_identification_corpus,
    udhr_corpus,
    udhr_units,
)
from crane.data.corpus import Corpus, read_corpus
from crane.data.inventory import describe_language, language_inventory
from crane.data.languages import (
    ISO_639_1,
    language_name,
    normalize_language,
    parse_language_list,
)
from crane.data.splits import Overlap, check_overlap, find_overlap, split_corpus, write_split
from crane.data.udhr import declarations, resolve_declaration

__all__ = [
    "BUILTIN_CORPORA",
    "Batch",
    "Corpus",
    "GettextUnavailable",
    "ISO_639_1",
    "Overlap",
    "TokenizedTexts",
    "Window",
    "cache_dir",
    "check_overlap",
    "count_batches",
    "declarations",
    "describe_builtin",
    "describe_language",
    "find_overlap",
    "gettext_corpus",
    "iter_batches",
    "language_inventory",
    "language_name",
    "load_builtin",
    "load_corpus",
    "normalize_language",
    "pad_token_id",
    "parse_language_list",
    "read_corpus",
    "resolve_declaration",
    "resolve_identification_corpus",
    "split_corpus",
    "tokenize_texts",
    "udhr_corpus",
    "udhr_units",
    "write_split",
]
