"""Multiple-choice items per language (compatibility module: the code lives in three modules).

- :mod:`crane.data.choice_items`: :class:`ChoiceItem`, :class:`ChoiceSet`, :func:`uses_spaces`;
- :mod:`crane.data.choice_readers`: MMLU/CMMLU/C-Eval/VMLU file readers
  (:func:`read_choice_file`, :func:`load_choice_set`);
- :mod:`crane.data.continuation`: the built-in parallel continuation test
  (:func:`builtin_continuation_set`, :func:`split_half`).
"""

from __future__ import annotations

from crane.data.choice_items import NO_SPACE_LANGUAGES, STYLES, ChoiceItem, ChoiceSet, uses_spaces
from crane.data.choice_readers import FORMATS, load_choice_set, read_choice_file
from crane.data.continuation import (
    BUILTIN_LANGUAGES,
    MIN_CHARS,
    MIN_WORDS,
    builtin_continuation_set,
    split_half,
)

__all__ = [
    "BUILTIN_LANGUAGES",
    "FORMATS",
    "MIN_CHARS",
    "MIN_WORDS",
    "NO_SPACE_LANGUAGES",
    "STYLES",
    "ChoiceItem",
    "ChoiceSet",
    "builtin_continuation_set",
    "load_choice_set",
    "read_choice_file",
    "split_half",
    "uses_spaces",
]
