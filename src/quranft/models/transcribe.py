"""Transcription with the CTC head: audio files to text (and log-probabilities), in batches; and,
on request, with a hybrid model's RNNT head too, from the same encoder output.

Audio goes through quranft.data.audio (any common container, any rate and channel count, to 16 kHz
mono), then the model's preprocessor, encoder and CTC decoder, then NeMo's greedy CTC decoding;
or, for an exported model (models.onnx_model.OnnxModel), its graph and the same greedy decoding.
Used by the averaging guard, the benchmark and the export's parity check, so that all decode alike.
A clip longer than a window goes through the model in windows (models.windowed), on its own; the
clips that fit in one are batched, whole.
The benchmarks also judge the RNNT head (decoder and joint, NeMo's greedy batched decoding) on the
encoder output the CTC head read, so that the encoder runs once per clip for both heads.

A clip that cannot be transcribed (undecodable, empty, out of memory, a model error) gets an
error and its kind instead of text; a batch that fails is transcribed again clip by clip, so that
one bad clip costs only its own transcript.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from quranft.data.audio import SAMPLE_RATE, AudioDecodeError, load_audio
from quranft.models.memory import release_freed_memory
from quranft.models.onnx_model import OnnxModel
from quranft.models.windowed import Windowing, stitch

log = logging.getLogger("quranft")


class EmptyAudioError(ValueError):
    """A clip that decodes to no samples: the model's preprocessor cannot take it."""


@dataclass
class Transcript:
    text: str
    log_probs: np.ndarray | None  # (frames, vocabulary + blank), when asked for
    error: str | None = None  # why there is no text
    error_kind: str | None = None  # failure_kind of that error
    encoded: torch.Tensor | None = None  # the encoder's output (features, frames), kept for the RNNT head
    rnnt: Transcript | None = None  # the RNNT head's greedy transcript of the same encoder output


def is_out_of_memory(error: BaseException) -> bool:
    # CUDA raises torch.OutOfMemoryError; the CPU allocator and some kernels raise a plain
    # RuntimeError whose message is the only sign.
    message = str(error).lower()
    return isinstance(error, torch.OutOfMemoryError) or (
        isinstance(error, RuntimeError) and ("out of memory" in message or "can't allocate memory" in message))


def failure_kind(error: BaseException) -> str:
    """The kind of a clip's failure, as the benchmark counts them."""
    if isinstance(error, AudioDecodeError):
        return "decode"
    if isinstance(error, EmptyAudioError):
        return "empty_audio"
    if is_out_of_memory(error):
        return "out_of_memory"
    return "transcription"


def error_message(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}"


def recover(error: BaseException) -> None:
    """After an out-of-memory, give the failed batch's cached blocks back before the next clip."""
    if is_out_of_memory(error) and torch.cuda.is_available():
        torch.cuda.empty_cache()


def check_not_empty(audio: np.ndarray, where: str) -> np.ndarray:
    if audio.size == 0:
        raise EmptyAudioError(f"{where}: no audio samples")
    return audio


def is_hybrid(model) -> bool:
    """Whether a .nemo model is a hybrid (an RNNT head beside its CTC head, `ctc_decoder`), rather
    than NeMo's CTC model (its `decoder` the CTC head), which a CTC-only trial saves."""
    return hasattr(model, "ctc_decoder")


def ctc_head(model):
    """A .nemo model's CTC head: (its decoder module, its decoding), for a hybrid or a CTC model."""
    return (model.ctc_decoder, model.ctc_decoding) if is_hybrid(model) else (model.decoder, model.decoding)


def use_ctc_greedy(model) -> None:
    """Decode with the CTC head, greedily (the offline inference path the benchmark measures); an
    exported model has no other head."""
    if isinstance(model, OnnxModel):
        return
    from omegaconf import OmegaConf

    decoding = OmegaConf.create({"strategy": "greedy_batch"})
    if is_hybrid(model):
        model.change_decoding_strategy(decoding_cfg=decoding, decoder_type="ctc", verbose=False)
    else:
        model.change_decoding_strategy(decoding_cfg=decoding, verbose=False)
    model.eval()


def has_rnnt_head(model) -> bool:
    """Whether the model has an RNNT decoder and joint beside its CTC head (a hybrid .nemo); an
    export, and a CTC-only trial's .nemo, hold the CTC path only."""
    return not isinstance(model, OnnxModel) and is_hybrid(model)


def use_rnnt_greedy(model) -> None:
    """Decode the RNNT head greedily (NeMo's greedy_batch, the model's own other settings, such as
    greedy.max_symbols), for decode_rnnt; the head that the model's own transcribe() uses stays
    the one it was (use_ctc_greedy sets the CTC head)."""
    from omegaconf import OmegaConf

    decoding = OmegaConf.create(OmegaConf.to_container(model.cfg.decoding, resolve=True))
    decoding.strategy = "greedy_batch"
    current = model.cur_decoder
    model.change_decoding_strategy(decoding_cfg=decoding, decoder_type="rnnt", verbose=False)
    model.cur_decoder = current
    model.eval()


def rnnt_decoding(model) -> dict:
    """How decode_rnnt decodes: what a benchmark records of it (and compares across models)."""
    return {"head": "rnnt", "strategy": model.cfg.decoding.strategy,
            "max_symbols": model.cfg.decoding.get("greedy", {}).get("max_symbols")}


@contextlib.contextmanager
def denormals_flushed():
    """Denormal floats flushed to zero while a model runs on the CPU: a padded batch's padding
    frames fill the encoder with them, and the CPU's slow path for them made a batch of eight demo
    clips take 24 s instead of 1.2 s (values below 1e-38 change no log-prob that matters)."""
    torch.set_flush_denormal(True)  # returns whether the CPU can; torch has no getter for the mode
    try:
        yield
    finally:
        torch.set_flush_denormal(False)  # torch's default


def frame_samples(model) -> int:
    """Audio samples per encoder frame of a .nemo: its preprocessor's hop times its encoder's subsampling."""
    preprocessor = model.cfg.preprocessor
    return round(float(preprocessor.window_stride) * int(preprocessor.sample_rate)) * int(
        model.encoder.subsampling_factor)


def model_windowing(model, windowing: Windowing) -> Windowing:
    """The windows `model` runs a long clip in: an export's at most its max_seconds."""
    return windowing.at_most(model.max_seconds) if isinstance(model, OnnxModel) else windowing


def fits_one_window(model, audio: np.ndarray, windowing: Windowing) -> bool:
    """Whether `model` runs the clip whole (else in `windowing`'s windows)."""
    if isinstance(model, OnnxModel):
        return model_windowing(model, windowing).fits(len(audio), model.frame_samples, model.sample_rate)
    return windowing.fits(len(audio), frame_samples(model), int(model.cfg.preprocessor.sample_rate))


def _encode(model, samples: Sequence[np.ndarray]) -> tuple[torch.Tensor, torch.Tensor]:
    """A .nemo's encoder output (batch, features, frames) and frame counts of a batch of clips."""
    device = next(model.parameters()).device
    lengths = torch.tensor([len(s) for s in samples], dtype=torch.long)
    batch = torch.zeros(len(samples), int(lengths.max()), dtype=torch.float32)
    for row, audio in enumerate(samples):
        batch[row, : len(audio)] = torch.from_numpy(audio)
    with denormals_flushed():
        if is_hybrid(model):
            return model.forward(input_signal=batch.to(device), input_signal_length=lengths.to(device))
        # a CTC model's forward goes on through its CTC head: its own steps up to the encoder's output
        features, feature_lengths = model.preprocessor(input_signal=batch.to(device), length=lengths.to(device))
        return model.encoder(audio_signal=features, length=feature_lengths)


def _encode_windowed(model, audio: np.ndarray, windowing: Windowing) -> tuple[torch.Tensor, torch.Tensor]:
    """A long clip's encoder output (1, features, frames), window by window, and its frame count."""
    spans = windowing.spans(len(audio), frame_samples(model), int(model.cfg.preprocessor.sample_rate))

    def run(window: list[np.ndarray]) -> list[torch.Tensor]:
        encoded, length = _encode(model, window)
        kept = encoded[0, :, : int(length[0])].T.clone()  # frames first, for stitch
        del encoded
        release_freed_memory()
        return [kept]

    encoded = torch.cat(stitch(run, audio, spans)).T.unsqueeze(0)
    return encoded, torch.tensor([encoded.shape[-1]], dtype=torch.long, device=encoded.device)


def _decode_ctc(model, encoded: torch.Tensor, encoded_len: torch.Tensor, keep_log_probs: bool,
                keep_encoded: bool) -> list[Transcript]:
    """A .nemo's CTC head on its encoder output: greedy transcripts, with log-probs and the encoder
    output when asked for."""
    decoder, decoding = ctc_head(model)
    with denormals_flushed():
        log_probs = decoder(encoder_output=encoded)
    hypotheses = decoding.ctc_decoder_predictions_tensor(
        log_probs, decoder_lengths=encoded_len, return_hypotheses=False
    )
    texts = [h.text if hasattr(h, "text") else str(h) for h in hypotheses]
    results = []
    for row, text in enumerate(texts):
        length = int(encoded_len[row])
        frames = log_probs[row, :length].float().cpu().numpy() if keep_log_probs else None
        kept = encoded[row, :, :length] if keep_encoded else None
        results.append(Transcript(text=text, log_probs=frames, encoded=kept))
    return results


def _transcribe_whole(model, samples: Sequence[np.ndarray], keep_log_probs: bool,
                      keep_encoded: bool) -> list[Transcript]:
    """A batch of clips that each fit in one window, each run whole."""
    if isinstance(model, OnnxModel):
        frames = model.log_probs(samples)
        return [Transcript(text=model.text(f), log_probs=f if keep_log_probs else None) for f in frames]
    return _decode_ctc(model, *_encode(model, samples), keep_log_probs, keep_encoded)


def _transcribe_windowed(model, audio: np.ndarray, windowing: Windowing, keep_log_probs: bool,
                         keep_encoded: bool) -> Transcript:
    """One clip longer than a window, in windows."""
    if isinstance(model, OnnxModel):
        frames = model.recording_log_probs(audio, windowing)
        return Transcript(text=model.text(frames), log_probs=frames if keep_log_probs else None)
    return _decode_ctc(model, *_encode_windowed(model, audio, windowing), keep_log_probs, keep_encoded)[0]


@torch.inference_mode()
def transcribe_samples(model, samples: Sequence[np.ndarray], keep_log_probs: bool = False,
                       keep_encoded: bool = False, windowing: Windowing = Windowing()) -> list[Transcript]:
    """One batch of 16 kHz mono float arrays to transcripts; raises if any clip or the batch fails.
    The clips that fit in one of `windowing`'s windows run whole, as one batch; each longer one in
    windows (models.windowed). `keep_encoded` keeps each clip's encoder output for decode_rnnt (a
    .nemo's only)."""
    for row, audio in enumerate(samples):
        check_not_empty(audio, f"clip {row} of the batch")
    whole = [row for row, audio in enumerate(samples) if fits_one_window(model, audio, windowing)]
    results = dict(zip(whole, _transcribe_whole(model, [samples[row] for row in whole], keep_log_probs,
                                                keep_encoded))) if whole else {}
    for row, audio in enumerate(samples):
        if row not in results:
            results[row] = _transcribe_windowed(model, audio, windowing, keep_log_probs, keep_encoded)
    return [results[row] for row in range(len(samples))]


@torch.inference_mode()
def _rnnt_texts(model, outputs: list[torch.Tensor]) -> list[str]:
    lengths = torch.tensor([output.shape[-1] for output in outputs], dtype=torch.long, device=outputs[0].device)
    batch = outputs[0].new_zeros(len(outputs), outputs[0].shape[0], int(lengths.max()))
    for row, output in enumerate(outputs):
        batch[row, :, : output.shape[-1]] = output
    with denormals_flushed():
        hypotheses = model.decoding.rnnt_decoder_predictions_tensor(
            encoder_output=batch, encoded_lengths=lengths, return_hypotheses=False)
    return [h.text if hasattr(h, "text") else str(h) for h in hypotheses]


def decode_rnnt(model, transcripts: Sequence[Transcript]) -> None:
    """Set `rnnt` of each transcript that kept its encoder output (transcribe_samples'
    keep_encoded) to the RNNT head's greedy transcript of it (use_rnnt_greedy first), and let the
    output go; a batch that fails is decoded again clip by clip, and a clip that fails gets its
    error there, its CTC transcript untouched."""
    pending = [transcript for transcript in transcripts if transcript.encoded is not None]
    if not pending:
        return
    try:
        for transcript, text in zip(pending, _rnnt_texts(model, [t.encoded for t in pending])):
            transcript.rnnt = Transcript(text=text, log_probs=None)
    except Exception as error:  # as in _transcribe_batch: one clip's failure costs only its own
        recover(error)
        if len(pending) == 1:
            pending[0].rnnt = failed_transcript(error)
        else:
            log.warning("RNNT decoding of a batch of %d clips failed (%s); decoding them one by one", len(pending),
                        error_message(error))
            for transcript in pending:
                decode_rnnt(model, [transcript])
    finally:
        for transcript in pending:
            transcript.encoded = None


def failed_transcript(error: BaseException) -> Transcript:
    return Transcript(text="", log_probs=None, error=error_message(error), error_kind=failure_kind(error))


def _transcribe_batch(model, audios: list[np.ndarray], keep_log_probs: bool, rnnt: bool,
                      windowing: Windowing) -> list[Transcript]:
    try:
        transcripts = transcribe_samples(model, audios, keep_log_probs, keep_encoded=rnnt, windowing=windowing)
    except Exception as error:  # one clip (too long for the memory left, or malformed) fails the batch
        recover(error)
        if len(audios) == 1:
            return [failed_transcript(error)]
        log.warning("a batch of %d clips failed (%s); transcribing them one by one", len(audios), error_message(error))
        return [_transcribe_batch(model, [audio], keep_log_probs, rnnt, windowing)[0] for audio in audios]
    decode_rnnt(model, transcripts)
    return transcripts


def transcribe_files(model, paths: Sequence[str], batch_size: int = 8, keep_log_probs: bool = False,
                     sample_rate: int = SAMPLE_RATE, rnnt: bool = False,
                     windowing: Windowing = Windowing()) -> list[Transcript]:
    """Transcripts of audio files, in order; a file that cannot be transcribed gets an error instead.
    A file longer than a window goes in `windowing`'s windows (transcribe_samples). With `rnnt`,
    each transcript's `rnnt` is the RNNT head's of the same batch (decode_rnnt)."""
    results: list[Transcript | None] = [None] * len(paths)
    loaded: list[tuple[int, np.ndarray]] = []
    for index, path in enumerate(paths):
        try:
            loaded.append((index, check_not_empty(load_audio(path, sample_rate), path)))
        except (AudioDecodeError, EmptyAudioError) as error:
            results[index] = failed_transcript(error)
    # Similar lengths together: less padding, and padding does not change a clip's transcript.
    loaded.sort(key=lambda item: len(item[1]))
    for start in range(0, len(loaded), batch_size):
        chunk = loaded[start : start + batch_size]
        transcripts = _transcribe_batch(model, [a for _, a in chunk], keep_log_probs, rnnt, windowing)
        for (index, _), transcript in zip(chunk, transcripts):
            results[index] = transcript
    return results  # type: ignore[return-value]
