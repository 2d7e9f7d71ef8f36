"""A model's SentencePiece tokenizer without NeMo: what the CTC matcher re-scores with, and what an
exported model decodes its greedy CTC tokens with."""

from __future__ import annotations

import tarfile
from pathlib import Path

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
