"""One token sequence placed in a stretch of CTC log-probabilities, and how well it fits there.

The placing is CTC segmentation (the `ctc-segmentation` package: the aligner of ESPnet's and NeMo's
segmentation tools; torchaudio's forced_align is deprecated): the best path of the tokens through
the frames, each token entered at one frame and held (or a blank) until the next, free to start
anywhere (its preamble costs nothing) and ending where its path is best. numpy and a compiled
extension only: no torch.

How well it fits is judged on the speech frames of the placed span: the frames where the alignment
or the model's own best class is a token (a pause inside a verse, blank to both, says nothing).
A frame's score is the posterior of the label the alignment puts there (the token on the frame that
enters it; after that, the held token or the blank, whichever is likelier) over the frame's best
posterior, a best under BEST_FLOOR counting as BEST_FLOOR (a model unsure of every class vouches
for nothing). The confidence is the mean score: in [0, 1], not growing with the verse's length,
near 1 where the model's best guesses spell these tokens here, near the share of frames that
agree where some do not, and near 0 over silence, noise or other speech. It judges the text, not
the model's sharpness: a model that gives 0.8 to the right token scores as one that gives 0.99.
The evidence, the sum of 2 * score - 1 over the speech frames, weighs a span by how much of the
recording it explains: what the segmenter maximises over a recording.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from ctc_segmentation import CtcSegmentationParameters, prepare_token_list
from ctc_segmentation.ctc_segmentation_dyn import cython_fill_table

# Blank frames put around a stretch: the aligner spends a frame on its preamble and one on its
# leading blank before a first token can come, and a frame on its trailing blank after the last.
PAD = 2
# The log-prob of anything but the blank on a padding frame: far below any frame of a recording
# (one whose non-speech was made blank has -1e4 there), so that no token is ever placed in the
# padding, yet above the library's `max_prob` (-1e10, its impossible) over the few padding frames.
FLOOR = -1e8
BACKTRACK = 64  # frames searched back at a time for where the best path entered a label
BEST_FLOOR = 0.5  # a frame's best posterior under this counts as this: a model unsure of all vouches for none


@dataclass(frozen=True)
class Alignment:
    start: int  # the frame where the first token starts
    end: int  # one past the last token's last frame
    confidence: float  # 0..1: the mean score of the speech frames
    evidence: float  # the sum of 2 * score - 1 over the speech frames


def _padded(log_probs: np.ndarray, blank: int) -> np.ndarray:
    pad = np.full((PAD, log_probs.shape[1]), FLOOR, dtype=np.float32)
    pad[:, blank] = 0.0
    return np.concatenate([pad, log_probs.astype(np.float32, copy=False), pad])


def _entries(log_probs: np.ndarray, tokens: list[int], blank: int) -> np.ndarray:
    """The frame (in `log_probs`) where each token starts, then the frame after the last one's.

    The library fills the table of best paths (its compiled extension); the way back is read here
    from the table, a step per token, since the library's own walks every frame in Python (four
    fifths of the segmenter's time)."""
    padded = _padded(log_probs, blank)
    config = CtcSegmentationParameters(blank=blank)
    # Rows of the label matrix: the preamble (-1), a blank, the tokens, a blank.
    labels, _ = prepare_token_list(config, [np.asarray(tokens, dtype=np.int64)])
    table = np.full((len(padded), len(labels)), config.max_prob, dtype=np.float32)
    end, _ = cython_fill_table(table, padded, labels, np.zeros(len(labels), dtype=np.int64), blank, config.flags)
    heard = padded[1:, labels[1:, 0]]  # each label's log-prob, from the second frame
    held = padded[1:, blank]

    def entered(row: int, column: int) -> int:
        """The latest frame at or before row + 1 where the best path entered label column + 1:
        where moving on from label `column` beat staying in `column + 1` (searched back from
        `row` a stretch at a time: an entry is rarely far)."""
        top = row + 1
        while top > 0:
            low = max(0, top - BACKTRACK)
            switch = table[low:top, column] + heard[low:top, column]
            stay = table[low:top, column + 1] + np.maximum(held[low:top], heard[low:top, column])
            found = np.flatnonzero(switch >= stay)
            if len(found):
                return low + int(found[-1]) + 1
            top = low
        return -1

    entries = [entered(end - 1, len(labels) - 2)]
    for label in range(len(labels) - 2, 1, -1):
        entries.append(entered(entries[-1] - 2, label - 1))
    # within the stretch, whatever ties the path broke
    return np.clip(np.array(entries[::-1], dtype=np.int64) - PAD, 0, len(log_probs))


def _frame_scores(log_probs: np.ndarray, tokens: list[int], entries: np.ndarray, blank: int) -> np.ndarray:
    """The score of each speech frame of the span (see the module's docstring)."""
    frames = np.arange(entries[0], entries[-1])
    stretch = log_probs[entries[0]:entries[-1]]
    held = np.asarray(tokens)[np.searchsorted(entries, frames, side="right") - 1]
    token_lp, blank_lp = stretch[frames - entries[0], held], stretch[:, blank]
    is_token = np.isin(frames, entries[:-1]) | (token_lp >= blank_lp)
    aligned = np.where(is_token, token_lp, blank_lp)
    best = stretch.max(axis=1)
    speech = is_token | (stretch.argmax(axis=1) != blank)
    return np.exp(aligned - np.maximum(best, np.log(BEST_FLOOR)))[speech]


def align(log_probs: np.ndarray, tokens: list[int], blank: int, first: int = 0, last: int | None = None,
          ) -> Alignment | None:
    """The best placing of `tokens` within frames [first, last) of `log_probs` (frames, classes; log-
    softmax), in frames of the whole; None when they do not fit (no tokens, or more than frames)."""
    last = len(log_probs) if last is None else last
    stretch = log_probs[first:last]
    if not tokens or len(tokens) > len(stretch):
        return None
    entries = _entries(stretch, tokens, blank)
    scores = _frame_scores(stretch, tokens, entries, blank)
    confidence = float(scores.mean()) if len(scores) else 0.0
    return Alignment(first + int(entries[0]), first + int(entries[-1]), confidence, float((2 * scores - 1).sum()))
