"""A model's SentencePiece tokenizer without NeMo: what the CTC matcher re-scores with, and what an
exported model decodes its greedy CTC tokens with; and greedy CTC decoding of log-probs to token ids
(numpy only), for an exported model and for the verse segmenter, which needs each token's frame."""

from __future__ import annotations

import tarfile
from pathlib import Path

import numpy as np

from quranft.fileio import NemoArchiveError, check_nemo_archive


class SentencePieceTokenizer:
    """A model's SentencePiece tokenizer, read from its .nemo without restoring the model (or from
    an export's tokenizer.model): the CTC matcher and the exported models' decoding use it."""

    def __init__(self, model_bytes: bytes):
        import sentencepiece as spm

        self.model_bytes = model_bytes
        self.processor = spm.SentencePieceProcessor(model_proto=model_bytes)
        self.vocab_size = self.processor.get_piece_size()
        self.unk_id = self.processor.unk_id()

    @classmethod
    def from_nemo(cls, path: str | Path) -> "SentencePieceTokenizer":
        check_nemo_archive(path)
        with tarfile.open(path) as archive:
            member = next((m for m in archive.getmembers() if m.name.endswith("tokenizer.model")), None)
            if member is None:
                raise NemoArchiveError(f"{path}: no SentencePiece tokenizer.model inside")
            return cls(archive.extractfile(member).read())

    @classmethod
    def from_file(cls, path: str | Path) -> "SentencePieceTokenizer":
        return cls(Path(path).read_bytes())

    def text_to_ids(self, text: str) -> list[int]:
        return self.processor.encode(text)

    def ids_to_tokens(self, ids: list[int]) -> list[str]:
        """The pieces of the ids, as NeMo's tokenizers name them ("▁" opens a word)."""
        return [self.processor.id_to_piece(int(i)) for i in ids]

    def ids_to_text(self, ids: list[int]) -> str:
        """As NeMo's SentencePieceTokenizer.ids_to_text decodes (its models have no special tokens)."""
        return self.processor.decode_ids(list(ids))


def greedy_tokens(log_probs: np.ndarray, blank: int) -> list[tuple[int, int]]:
    """Greedy CTC: the best class per frame, repeats collapsed, blanks dropped (as NeMo's greedy
    CTC decoding does); each token with the frame where it starts."""
    best = log_probs.argmax(axis=-1)
    keep = np.ones(len(best), dtype=bool)
    keep[1:] = best[1:] != best[:-1]
    return [(int(best[frame]), int(frame)) for frame in np.flatnonzero(keep & (best != blank))]


def greedy_ids(log_probs: np.ndarray, blank: int) -> list[int]:
    """The token ids of `greedy_tokens`."""
    return [token for token, _ in greedy_tokens(log_probs, blank)]
