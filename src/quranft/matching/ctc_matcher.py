"""The CTC re-ranking matcher: candidate spans re-scored by the model's own log-probabilities.

The text matcher proposes candidate spans; each is tokenized with the model's tokenizer (its
diacritized text in every reference variant, with the basmala where it may have been said) and
scored by the CTC loss of that token sequence against the clip's log-probabilities, plus a penalty
per extra verse. The lowest score wins. Works from saved log-probabilities and a tokenizer alone,
so that it re-scores without running the model again. torch (for its CTC loss) is imported only
when a clip is matched: re-scoring with the text matcher never loads it.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from quranft.fileio import atomic_write_bytes
from quranft.matching.text_matcher import Match, TextMatcher
from quranft.matching.verse_index import VerseIndex
from quranft.quran import tanzil
from quranft.quran.tokenizer_coverage import make_mapper, missing_characters


@dataclass
class CTCMatcher:
    """Re-ranks the text matcher's candidates by CTC loss."""

    tokenizer: object  # anything with text_to_ids and unk_id (NeMo's tokenizers, SentencePieceTokenizer)
    blank: int  # the blank index of the log-probabilities (NeMo: the last one)
    span_penalty: float = 0.5  # nats per extra verse
    candidates: int = 10
    variants: tuple[str, ...] = ("simple", "uthmani")
    name: str = "ctc"

    def __post_init__(self):
        unk = self.tokenizer.unk_id
        self._encodes = lambda char: unk not in self.tokenizer.text_to_ids(char)
        self._targets: dict[tuple[tuple[int, int], ...], list[list[int]]] = {}
        self._basmala = {v: tanzil.basmala(v) for v in self.variants}

    def settings(self) -> dict:
        return {"span_penalty": self.span_penalty, "candidates": self.candidates, "variants": list(self.variants)}

    def encode(self, text: str) -> list[int]:
        """The token ids of a diacritized text, its characters the tokenizer lacks mapped first."""
        mapper = make_mapper("map_missing", missing_characters([text], self._encodes))
        return self.tokenizer.text_to_ids(mapper(text))

    def targets(self, verses: tuple[tuple[int, int], ...]) -> list[list[int]]:
        """Token sequences a recitation of these verses may produce: per variant, with and without
        a basmala before them (said as its own verse, or before starting mid-surah). Never in
        Al-Fatiha (`VerseIndex.with_basmala`): a prefixed 1:2-k would be 1:1-k token for token, and
        win over it by the span penalty."""
        if verses not in self._targets:
            sequences = []
            for variant in self.variants:
                text = " ".join(tanzil.verse(s, a, variant) for s, a in verses)
                sequences.append(self.encode(text))
                if VerseIndex.with_basmala(*verses[0], basmala_said=True):
                    sequences.append(self.encode(f"{self._basmala[variant]} {text}"))
            self._targets[verses] = sequences
        return self._targets[verses]

    def losses(self, log_probs, targets: list[list[int]]) -> list[float]:
        """The CTC loss (nats) of each target against one clip's log-probs (a (frames, classes)
        tensor), in one call of torch's CTC loss over the batch of targets (each its own row, with
        its own length: the same figures as one call per target, a tenth of the time); inf for a
        target that is empty or longer than the clip."""
        import torch
        import torch.nn.functional as F

        frames = log_probs.shape[0]
        scored = [i for i, target in enumerate(targets) if target and len(target) <= frames]
        values = [float("inf")] * len(targets)
        if not scored:
            return values
        longest = max(len(targets[i]) for i in scored)
        padded = torch.tensor([targets[i] + [0] * (longest - len(targets[i])) for i in scored])
        batch = log_probs.unsqueeze(1).expand(-1, len(scored), -1)
        losses = F.ctc_loss(batch, padded, torch.full((len(scored),), frames),
                            torch.tensor([len(targets[i]) for i in scored]), blank=self.blank, reduction="none",
                            zero_infinity=False)
        for i, value in zip(scored, losses.tolist()):
            values[i] = value
        return values

    def match(self, transcript: str, log_probs: np.ndarray | None, index: VerseIndex,
              text_matcher: TextMatcher) -> Match:
        if log_probs is None or len(log_probs) == 0:
            return Match((), 0.0)
        spans = [m for _, m in text_matcher.spans(transcript, index)[: self.candidates]]
        if not spans:
            return Match((), 0.0)
        import torch

        probs = torch.from_numpy(np.asarray(log_probs, dtype=np.float32))
        targets = [(number, target) for number, span in enumerate(spans) for target in self.targets(span.verses)]
        losses = self.losses(probs, [target for _, target in targets])
        best: tuple[float, Match] | None = None
        for number, span in enumerate(spans):
            loss = min(value for (owner, _), value in zip(targets, losses) if owner == number)
            score = loss + self.span_penalty * (len(span.verses) - 1)
            if best is None or score < best[0]:
                best = (score, Match(span.verses, -score, span.with_basmala))
        if best is None or not np.isfinite(best[0]):
            return Match((), 0.0)
        return best[1]


def save_log_probs(path: str | Path, log_probs: dict[str, np.ndarray]) -> None:
    """Per-sample log-probabilities in one .npz, as the benchmark ranked them (float32): re-scoring
    from the file gives exactly the benchmark's predictions (float16 would halve the size, but let
    near-ties between candidate spans flip)."""
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **{key: value.astype(np.float32) for key, value in log_probs.items()})
    atomic_write_bytes(path, buffer.getvalue())


def load_log_probs(path: str | Path) -> dict[str, np.ndarray]:
    with np.load(path, allow_pickle=False) as arrays:
        return {key: arrays[key].astype(np.float32) for key in arrays.files}
