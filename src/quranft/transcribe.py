"""Transcription with the CTC head: audio files to text (and log-probabilities), in batches.

Audio goes through quranft.audio (any common container, any rate and channel count, to 16 kHz
mono), then the model's preprocessor, encoder and CTC decoder, then NeMo's greedy CTC decoding.
Used by the averaging guard and by the benchmark, so that both decode the same way.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from quranft.audio import AudioDecodeError, load_audio


@dataclass
class Transcript:
    text: str
    log_probs: np.ndarray | None  # (frames, vocabulary + blank), when asked for
    error: str | None = None  # why there is no text (audio missing or undecodable)


def use_ctc_greedy(model) -> None:
    """Decode with the CTC head, greedily (the offline inference path the benchmark measures)."""
    from omegaconf import OmegaConf

    decoding = OmegaConf.create({"strategy": "greedy_batch"})
    model.change_decoding_strategy(decoding_cfg=decoding, decoder_type="ctc", verbose=False)
    model.eval()


@torch.inference_mode()
def transcribe_samples(model, samples: Sequence[np.ndarray], keep_log_probs: bool = False) -> list[Transcript]:
    """One batch of 16 kHz mono float arrays to transcripts."""
    device = next(model.parameters()).device
    lengths = torch.tensor([len(s) for s in samples], dtype=torch.long)
    batch = torch.zeros(len(samples), int(lengths.max()), dtype=torch.float32)
    for row, audio in enumerate(samples):
        batch[row, : len(audio)] = torch.from_numpy(audio)
    encoded, encoded_len = model.forward(input_signal=batch.to(device), input_signal_length=lengths.to(device))
    log_probs = model.ctc_decoder(encoder_output=encoded)
    hypotheses = model.ctc_decoding.ctc_decoder_predictions_tensor(
        log_probs, decoder_lengths=encoded_len, return_hypotheses=False
    )
    texts = [h.text if hasattr(h, "text") else str(h) for h in hypotheses]
    results = []
    for row, text in enumerate(texts):
        frames = log_probs[row, : int(encoded_len[row])].float().cpu().numpy() if keep_log_probs else None
        results.append(Transcript(text=text, log_probs=frames))
    return results


def transcribe_files(model, paths: Sequence[str], batch_size: int = 8, keep_log_probs: bool = False,
                     sample_rate: int = 16000) -> list[Transcript]:
    """Transcripts of audio files, in order; a file that cannot be read gets an error instead."""
    results: list[Transcript | None] = [None] * len(paths)
    loaded: list[tuple[int, np.ndarray]] = []
    for index, path in enumerate(paths):
        try:
            loaded.append((index, load_audio(path, sample_rate)))
        except AudioDecodeError as error:
            results[index] = Transcript(text="", log_probs=None, error=str(error))
    # Similar lengths together: less padding, and padding does not change a clip's transcript.
    loaded.sort(key=lambda item: len(item[1]))
    for start in range(0, len(loaded), batch_size):
        chunk = loaded[start : start + batch_size]
        for (index, _), transcript in zip(chunk, transcribe_samples(model, [a for _, a in chunk], keep_log_probs)):
            results[index] = transcript
    return results  # type: ignore[return-value]
