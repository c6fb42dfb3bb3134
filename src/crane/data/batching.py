"""Token windows and padded batches that keep track of each text's UTF-8 bytes.

Bits per byte of a text = (sum of the negative log-likelihoods of its predicted tokens, in nats)
/ ln 2 / (its UTF-8 bytes). To get every text token predicted exactly once, each text is
tokenized on its own and cut into windows of at most ``max_length`` tokens. Every window starts
with BOS when the tokenizer has one (models such as Gemma degrade badly without it), then a few
*context* tokens re-read from the end of the previous window (scored there, not here), then the
tokens it predicts. The first window has no context: it predicts every token after BOS.

Without a BOS token (tokenizer has none, or ``add_bos=False``) the first text token is context
only and is not predicted, so bits per byte then omit the cost of that token.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from crane.errors import ConfigError

if TYPE_CHECKING:
    import torch

__all__ = [
    "IGNORE_INDEX",
    "Batch",
    "TokenizedTexts",
    "Window",
    "count_batches",
    "iter_batches",
    "pad_token_id",
    "tokenize_texts",
]

IGNORE_INDEX = -100


@dataclass
class Window:
    """A slice of one text's token sequence that predicts its last ``n_predicted`` tokens.

    The first ``len(input_ids) - n_predicted`` tokens (BOS and re-read context) are only
    conditioned on; ``n_predicted >= 1``.
    """

    text_index: int
    input_ids: list[int]
    n_predicted: int

    @property
    def n_context(self) -> int:
        """Leading tokens that are not predicted (BOS plus re-read context)."""
        return len(self.input_ids) - self.n_predicted


@dataclass
class TokenizedTexts:
    """Windows over a list of texts, with per-text UTF-8 byte and token counts."""

    windows: list[Window]
    n_bytes: list[int]  # UTF-8 bytes per text
    n_tokens: list[int]  # text tokens per text (BOS excluded)
    bos_added: bool = True

    @property
    def n_texts(self) -> int:
        """Number of texts (including any that produced no window)."""
        return len(self.n_bytes)

    def n_predicted(self) -> list[int]:
        """Predicted tokens per text (= ``n_tokens`` when BOS was added, else one fewer)."""
        out = [0] * self.n_texts
        for w in self.windows:
            out[w.text_index] += w.n_predicted
        return out


@dataclass
class Batch:
    """Right-padded windows.

    ``input_ids``, ``attention_mask`` (1 = real token) and ``labels`` are ``LongTensor [B, T]``;
    ``labels[b, t]`` is the token position ``t`` must predict (``input_ids[b, t + 1]``) or
    ``-100`` where nothing is predicted (a window's last real position, padding).
    ``text_index`` is ``LongTensor [B]``: the text each row comes from.
    """

    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    labels: torch.Tensor
    text_index: torch.Tensor


def pad_token_id(tokenizer: Any) -> int:
    """The tokenizer's pad id, else its EOS id, else 0."""
    for attr in ("pad_token_id", "eos_token_id"):
        value = getattr(tokenizer, attr, None)
        if isinstance(value, (list, tuple)):
            value = value[0] if value else None
        if value is not None:
            return int(value)
    return 0


def _encode(tokenizer: Any, texts: list[str]) -> list[list[int]]:
    """Token ids per text, without special tokens (one batched call for fast tokenizers)."""
    if not texts:
        return []
    encoded = tokenizer(texts, add_special_tokens=False)
    ids = encoded["input_ids"]
    return [list(map(int, x)) for x in ids]


def tokenize_texts(
    tokenizer: Any,
    texts: list[str],
    *,
    max_length: int = 128,
    add_bos: bool = True,
    context: int | None = None,
    prefix_ids: list[int] | None = None,
) -> TokenizedTexts:
    """Tokenize ``texts`` and cut each into windows of at most ``max_length`` tokens.

    Each window after a text's first re-reads ``context`` tokens (default ``max_length // 4``)
    from before its first predicted token, after BOS. With BOS every text token is predicted
    exactly once; without, all but the first. Texts with nothing to predict yield no window but
    keep their counts. ``prefix_ids`` (e.g. a chat template's opening, see
    :func:`crane.evaluation.chat.chat_prefix_ids`) replace BOS at the head of every window:
    they are read, never scored.
    """
    if prefix_ids:
        head = [int(i) for i in prefix_ids]
    else:
        bos = getattr(tokenizer, "bos_token_id", None) if add_bos else None
        head = [int(bos)] if bos is not None else []
    if context is None:
        context = max_length // 4
    room = max_length - len(head)  # text tokens a window can hold
    if max_length < 2 or not 0 <= context < room or (not head and context < 1):
        raise ConfigError(
            f"max_length={max_length} with context={context} leaves no token to predict in a "
            "window; use e.g. max_length=128 (context defaults to a quarter of it)."
        )
    windows: list[Window] = []
    n_bytes: list[int] = []
    n_tokens: list[int] = []
    for index, (text, ids) in enumerate(zip(texts, _encode(tokenizer, texts), strict=True)):
        n_bytes.append(len(text.encode("utf-8")))
        n_tokens.append(len(ids))
        start = 0 if head else 1  # first predicted text token
        while start < len(ids):
            ctx = 0 if start == 0 else min(context if head else max(context, 1), start)
            end = min(len(ids), start - ctx + room)
            windows.append(Window(index, head + ids[start - ctx : end], end - start))
            start = end
    return TokenizedTexts(windows, n_bytes, n_tokens, bos_added=bool(head))


def _order(tok: TokenizedTexts, sort_by_length: bool) -> list[int]:
    idx = list(range(len(tok.windows)))
    if sort_by_length:
        idx.sort(key=lambda i: -len(tok.windows[i].input_ids))  # stable: longest first
    return idx


def _slices(
    tok: TokenizedTexts, order: list[int], batch_size: int, max_tokens: int | None
) -> list[tuple[int, int]]:
    """``[lo, hi)`` ranges of ``order`` forming batches of ≤ ``batch_size`` rows and, when
    ``max_tokens`` is set, ≤ ``max_tokens`` padded tokens (rows × longest row) — except that a
    batch always holds at least one row."""
    if batch_size < 1:
        raise ConfigError(f"batch_size must be at least 1, got {batch_size}.")
    if max_tokens is not None and max_tokens < 1:
        raise ConfigError(f"max_tokens must be at least 1, got {max_tokens}.")
    out: list[tuple[int, int]] = []
    lo = 0
    while lo < len(order):
        hi, width = lo, 0
        while hi < len(order) and hi - lo < batch_size:
            new_width = max(width, len(tok.windows[order[hi]].input_ids))
            if max_tokens is not None and hi > lo and new_width * (hi - lo + 1) > max_tokens:
                break
            hi, width = hi + 1, new_width
        out.append((lo, hi))
        lo = hi
    return out


def count_batches(
    tok: TokenizedTexts, *, batch_size: int, max_tokens: int | None = None, sort_by_length: bool = True
) -> int:
    """Number of batches :func:`iter_batches` yields with the same arguments."""
    return len(_slices(tok, _order(tok, sort_by_length), batch_size, max_tokens))


def iter_batches(
    tok: TokenizedTexts,
    *,
    batch_size: int,
    pad_id: int,
    sort_by_length: bool = True,
    max_tokens: int | None = None,
) -> Iterator[Batch]:
    """Yield right-padded batches of windows (longest first when ``sort_by_length``).

    A batch holds at most ``batch_size`` rows and, when ``max_tokens`` is given, at most that
    many padded tokens, so short texts are packed many to a batch and long ones few.
    """
    import torch  # deferred: keeps ``import crane.data`` light for the CLI

    order = _order(tok, sort_by_length)
    for lo, hi in _slices(tok, order, batch_size, max_tokens):
        rows = [tok.windows[i] for i in order[lo:hi]]
        width = max(len(w.input_ids) for w in rows)
        input_ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
        attention_mask = torch.zeros((len(rows), width), dtype=torch.long)
        labels = torch.full((len(rows), width), IGNORE_INDEX, dtype=torch.long)
        for b, w in enumerate(rows):
            n = len(w.input_ids)
            ids = torch.tensor(w.input_ids, dtype=torch.long)
            input_ids[b, :n] = ids
            attention_mask[b, :n] = 1
            k = w.n_context
            labels[b, k - 1 : n - 1] = ids[k:]
        text_index = torch.tensor([w.text_index for w in rows], dtype=torch.long)
        yield Batch(input_ids, attention_mask, labels, text_index)
