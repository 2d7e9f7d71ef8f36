"""Checkpoint averaging: a trial's top-k checkpoints into one model, kept only where it helps.

Floating-point tensors are averaged (uniformly, or weighted); integer buffers such as BatchNorm's
num_batches_tracked come from the best checkpoint. Checkpoints are read one at a time and summed
into one accumulator, so the peak memory stays near two checkpoints whatever k is. The tokenizer
and the model config come from the base model unchanged; a CTC-only trial's model.nemo is NeMo's
CTC model, without the RNNT head it never trained (models.nemo_models.as_ctc_model). A guard
decodes the validation manifest with the averaged model and with the best single checkpoint (CTC,
greedy) and keeps the better.
"""

from __future__ import annotations

import collections
import copy
import logging
import typing
from pathlib import Path
from typing import Any

import torch

from quranft.errors import QuranftError
from quranft.fileio import check_nemo_archive, read_json, read_jsonl, write_json

log = logging.getLogger("quranft")

MODES = ("better", "always", "never")


class AveragingError(QuranftError, RuntimeError):
    """A checkpoint that cannot be averaged; the message names the file."""


def _safe_globals() -> list[Any]:
    """What Lightning checkpoints of NeMo models hold besides tensors: OmegaConf containers."""
    import omegaconf
    from omegaconf import base, nodes

    node_types = [getattr(nodes, name) for name in dir(nodes) if isinstance(getattr(nodes, name), type)]
    return [omegaconf.DictConfig, omegaconf.ListConfig, base.ContainerMetadata, base.Metadata, typing.Any,
            dict, list, int, float, str, bool, tuple, collections.defaultdict, *node_types]


def load_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """The model weights of a Lightning checkpoint, loaded with weights_only=True where possible."""
    path = Path(path)
    if not path.is_file():
        raise AveragingError(f"{path}: checkpoint not found")
    try:
        with torch.serialization.safe_globals(_safe_globals()):
            checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as safe_error:
        message = str(safe_error)
        if "Unsupported global" not in message and "weights_only" not in message:
            raise AveragingError(f"{path}: not a readable checkpoint (truncated or corrupt?): {safe_error}") from None
        log.warning("%s: weights-only loading refused it (%s); loading it in full, as our own training output",
                    path, message.splitlines()[-1][:300])
        try:
            checkpoint = torch.load(path, map_location="cpu", weights_only=False)
        except Exception as error:
            raise AveragingError(f"{path}: not a readable checkpoint (truncated or corrupt?): {error}") from None
    state = checkpoint.get("state_dict") if isinstance(checkpoint, dict) else None
    if not isinstance(state, dict) or not state:
        raise AveragingError(f"{path}: holds no state_dict")
    return state


def _check_compatible(path: Path, state: dict[str, torch.Tensor], reference: dict[str, torch.Tensor]) -> None:
    missing = sorted(set(reference) - set(state))
    extra = sorted(set(state) - set(reference))
    if missing or extra:
        raise AveragingError(
            f"{path}: does not match the base model's architecture "
            f"(missing {missing[:3]}{'...' if len(missing) > 3 else ''}, unexpected {extra[:3]})"
        )
    for key, tensor in reference.items():
        if state[key].shape != tensor.shape:
            hint = " (a different tokenizer?)" if "decoder" in key or "joint" in key else ""
            raise AveragingError(
                f"{path}: tensor {key} has shape {tuple(state[key].shape)}, the base model's has "
                f"{tuple(tensor.shape)}{hint}"
            )


def average_checkpoints(paths: list[str | Path], reference: dict[str, torch.Tensor],
                        weights: list[float] | None = None) -> dict[str, torch.Tensor]:
    """Average the float tensors of `paths` (best first); integer tensors come from the first, and
    so does a float tensor equal in every checkpoint (frozen layers, the preprocessor's window and
    filterbank): summing and dividing would move it by a rounding step.

    Holds the accumulator, one loaded checkpoint at a time, and the first one's unchanged tensors.
    """
    if not paths:
        raise AveragingError("no checkpoints to average")
    weights = weights or [1.0] * len(paths)
    if len(weights) != len(paths) or any(w < 0 for w in weights) or sum(weights) <= 0:
        raise AveragingError(f"averaging weights {weights} do not fit {len(paths)} checkpoints")
    total = float(sum(weights))
    accumulator: dict[str, torch.Tensor] = {}
    unchanged: dict[str, torch.Tensor] = {}  # float tensors equal in every checkpoint read so far
    for number, (path, weight) in enumerate(zip(paths, weights)):
        state = load_state_dict(path)
        _check_compatible(Path(path), state, reference)
        for key, tensor in state.items():
            if not tensor.is_floating_point():
                if number == 0:
                    accumulator[key] = tensor
                continue
            scaled = tensor if weight == 1.0 else tensor * weight
            if number == 0:
                unchanged[key] = tensor
                accumulator[key] = scaled.clone()
            else:
                if key in unchanged and not torch.equal(unchanged[key], tensor):
                    del unchanged[key]
                accumulator[key] += scaled
        del state
    for key, tensor in accumulator.items():
        if key in unchanged:
            accumulator[key] = unchanged[key]
        elif tensor.is_floating_point():
            tensor /= total
    return accumulator


def guard_rows(manifest: Path, max_clips: int | None) -> list[dict[str, Any]]:
    """The validation rows the guard decodes: all of them, or `max_clips` evenly spread over the
    manifest (deterministic, and covering it from end to end rather than its first sources only),
    so that averaging stays within its time limit on a real validation set."""
    rows = read_jsonl(manifest)
    if max_clips is None or len(rows) <= max_clips:
        return rows
    step = len(rows) / max_clips
    return [rows[int(i * step)] for i in range(max_clips)]


def _wer(model, manifest: Path, rows: list[dict[str, Any]], batch_size: int) -> float:
    import jiwer

    from quranft.models.transcribe import transcribe_files

    paths = [str(manifest.parent / row["audio_filepath"]) for row in rows]
    hypotheses = [t.text for t in transcribe_files(model, paths, batch_size=batch_size)]
    return float(jiwer.wer([row["text"] for row in rows], hypotheses))


def _choose(mode: str, best_wer: float, averaged_wer: float) -> tuple[str, str]:
    """Which model the guard keeps, and why: the average when it is at least as good as the best
    single checkpoint (a tie keeps the average), or always in mode `always`."""
    if mode == "always" or averaged_wer <= best_wer:
        reason = ("averaging forced (mode always)" if mode == "always" and averaged_wer > best_wer
                  else f"average WER {averaged_wer:.4f} <= best single {best_wer:.4f}")
        return "averaged", reason
    return "best_single", f"average WER {averaged_wer:.4f} > best single {best_wer:.4f}"


def _members(trial_dir: Path, top_k: int) -> tuple[str, list[dict[str, Any]], bool]:
    """The monitored metric, the top-k checkpoints training recorded, best first, and whether the
    trial trained the CTC head only."""
    metadata_file = trial_dir / "training_metadata.json"
    if not metadata_file.is_file():
        raise AveragingError(f"{metadata_file}: not found (train the trial first)")
    metadata = read_json(metadata_file)
    monitor = metadata["training"]["monitor"]
    ranked = metadata["checkpoints"]["top_k"][:top_k]
    if not ranked:
        raise AveragingError(f"{metadata_file}: lists no checkpoints")
    members = [{"path": entry["path"], monitor: entry[monitor]} for entry in ranked]
    return monitor, members, bool(metadata["trial_values"]["ctc_only"])


def average_trial(trial_dir: str | Path, base_model: str | Path, top_k: int, mode: str = "better",
                  weighted: bool = False, batch_size: int = 8, max_val_clips: int | None = 1000,
                  device: str = "cpu") -> dict[str, Any]:
    """Write `<trial_dir>/model.nemo` and `<trial_dir>/averaging.json`; return the latter's content."""
    from quranft.models import nemo_models
    from quranft.models.transcribe import use_ctc_greedy

    if mode not in MODES:
        raise AveragingError(f"averaging mode must be one of {MODES}, got {mode!r}")
    trial_dir = Path(trial_dir)
    check_nemo_archive(base_model)
    monitor, members, ctc_only = _members(trial_dir, top_k)
    paths = [Path(m["path"]) for m in members]

    model = nemo_models.restore(base_model, map_location=device, hybrid=True)  # the guard decodes on `device`
    reference = {key: tensor.detach().clone() for key, tensor in model.state_dict().items()}
    base_config = copy.deepcopy(model.cfg)
    use_ctc_greedy(model)
    validation = trial_dir / "data" / "validation.jsonl"
    best_state = load_state_dict(paths[0])
    _check_compatible(paths[0], best_state, reference)
    rows = guard_rows(validation, max_val_clips)

    def load(state: dict[str, torch.Tensor]) -> float:
        """Put `state` into the model; its WER on the guard's validation rows."""
        model.load_state_dict(state, strict=True)
        return _wer(model, validation, rows, batch_size)

    best_wer = load(best_state)
    del best_state
    result: dict[str, Any] = {"monitor": monitor, "members": members, "mode": mode, "weighted": weighted,
                              "best_single": {"path": str(paths[0]), "validation_wer": best_wer}}
    if mode == "never" or len(paths) == 1:
        choice, reason = "best_single", ("averaging disabled (mode never)" if mode == "never"
                                         else "only one checkpoint: nothing to average")
    else:
        # Weighted: a lower monitored WER counts more (weights 1/WER, floored to stay finite).
        weights = [1.0 / max(m[monitor], 1e-3) for m in members] if weighted else None
        averaged_wer = load(average_checkpoints(paths, reference, weights))
        result["averaged"] = {"validation_wer": averaged_wer, "weights": weights}
        choice, reason = _choose(mode, best_wer, averaged_wer)
        if choice == "best_single":
            model.load_state_dict(load_state_dict(paths[0]), strict=True)
    result.update({"choice": choice, "reason": reason, "validation_manifest": str(validation),
                   "validation_clips": len(rows)})
    model.cfg = base_config  # the decoding switch above is for the guard only
    # a CTC-only trial's file is NeMo's CTC model, which NeMo decodes with the head the trial trained
    nemo_models.save(model, trial_dir / "model.nemo", ctc_only=ctc_only)
    write_json(trial_dir / "averaging.json", result)
    log.info("%s: kept %s (%s)", trial_dir.name, choice, reason)
    return result
