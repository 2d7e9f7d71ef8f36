"""results/<model>/MODEL_CARD.md: each benchmarked model's card, in the Hugging Face form.

YAML front matter (language, the license inherited from the base model, the base model and the
training datasets where they are Hub ids, a `model-index` with the benchmark's figures, its
datasets named by Hub id or corpus name), then what the model is, what it was trained on and with
which trial settings, how it scored against the base, how to use each file (evaluation.model_usage),
and the credits (the Tanzil text's CC BY 3.0 attribution). Everything comes from the workflow's own
files: the leaderboard, the trial's training metadata and averaging report, and the config sections
`base_model`, `base_model_license`, `sources` and `benchmark` (its corpus and build sources).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from quranft.config import dataset_path, is_hub_id
from quranft.errors import QuranftError
from quranft.evaluation.asr_benchmark import ALL
from quranft.evaluation.figures import pct
from quranft.evaluation.model_usage import benchmark_dataset, dataset_name, is_ctc_model, usage_section
from quranft.fileio import atomic_write_text, read_json
from quranft.quran.tanzil import ATTRIBUTION

MODEL_CARD = "MODEL_CARD.md"  # in the model's folder, beside model.nemo
TAGS = ["automatic-speech-recognition", "arabic", "quran", "FastConformer", "NeMo"]


def _hub_base(base_model: str) -> str | None:
    """The base model's Hub id, or None when it is a local file."""
    return None if Path(base_model).exists() or not is_hub_id(base_model) else base_model


def _trained_sources(training: Mapping[str, Any] | None) -> list[str]:
    """The sources a trial's manifests hold rows of, train first."""
    if training is None:
        return []
    manifests = training["data"]["blend"]["manifests"]
    return list(dict.fromkeys(name for split in ("train", "validation") for name, figures in
                              manifests.get(split, {}).get("sources", {}).items() if figures["rows"]))


def _metric(kind: str, name: str, value: float | None) -> list[dict[str, Any]]:
    return [] if value is None else [{"type": kind, "name": name, "value": round(100 * value, 2)}]


def _verse_metrics(row: Mapping[str, Any], matched_by: str, head: str) -> list[dict[str, Any]]:
    """A leaderboard row's verse figures (`matched_by`: "ctc matcher") and its head's transcript
    WER and CER, as model-index metrics."""
    return [*_metric("accuracy", f"SeqAcc ({matched_by})", row["sequence_accuracy"]),
            *_metric("recall", f"verse recall ({matched_by})", row["recall"]),
            *_metric("precision", f"verse precision ({matched_by})", row["precision"]),
            *_metric("wer", f"transcript WER ({head} greedy, without diacritics)", row["wer"]),
            *_metric("cer", f"transcript CER ({head} greedy, without diacritics)", row["cer"])]


def decoder_row(board: Mapping[str, Any], decoder: str, model: str) -> dict[str, Any] | None:
    """The model's row in the board's table of another head (`decoders.<decoder>`), if it has one."""
    section = (board.get("decoders") or {}).get(decoder) or {}
    return next((r for r in section.get("rows", []) if r["model"] == model), None)


def _table(shown: list[Mapping[str, Any]]) -> list[str]:
    lines = ["| model | recall | precision | SeqAcc (95% CI) | WER | CER |", "| --- | --- | --- | --- | --- | --- |"]
    for shown_row in shown:
        low, high = shown_row["ci95"]["sequence_accuracy"] or (None, None)
        lines.append(f"| {shown_row['model']} | {pct(shown_row['recall'])} | {pct(shown_row['precision'])} | "
                     f"{pct(shown_row['sequence_accuracy'])} ({pct(low)}–{pct(high)}) | {pct(shown_row['wer'])} | "
                     f"{pct(shown_row['cer'])} |")
    return lines


def _versus(versus: Mapping[str, Any], tests: Mapping[str, Any], family: str) -> str:
    return (f"Against the base: {100 * versus['deltas']['sequence_accuracy']['delta']:+.1f} points of SeqAcc, "
            f"{len(versus['recovered'])} samples recovered and {len(versus['regressed'])} regressed; exact "
            f"McNemar p = {versus['mcnemar_p']:.3g}, Holm p = {versus['mcnemar_p_holm']:.3g} across the "
            f"{tests['comparisons']} {family}: "
            f"{'significant' if versus['significant'] else 'not significant'} at {tests['alpha']}.")


def model_index(board: Mapping[str, Any], row: Mapping[str, Any],
                settings: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The benchmark's figures as Hugging Face model-index results (percentages)."""
    matcher = board["matcher"]
    results = [{
        "task": {"type": "automatic-speech-recognition", "name": "Quran verse identification"},
        "dataset": benchmark_dataset(board, settings),
        "metrics": _verse_metrics(row, f"{matcher} matcher", "CTC"),
    }]
    rnnt = decoder_row(board, "rnnt", row["model"])
    if rnnt:  # the hybrid's other head, judged by the text matcher (the leaderboard's RNNT table)
        results[0]["metrics"] += _verse_metrics(rnnt, f"RNNT head, {board['decoders']['rnnt']['matcher']} matcher",
                                                "RNNT")
    asr = next((r for r in (board.get("asr") or {}).get("rows", []) if r["model"] == row["model"]), None)
    if asr:
        overall = asr["summary"][ALL]
        test_set = dataset_name(board["asr"]["test_set"]["dataset"])
        results.append({
            "task": {"type": "automatic-speech-recognition", "name": "Automatic Speech Recognition"},
            "dataset": {"type": test_set, "name": test_set},
            "metrics": [*_metric("wer", "WER without diacritics", overall["plain"]["wer"]),
                        *_metric("cer", "CER without diacritics", overall["plain"]["cer"]),
                        *_metric("wer", "WER with diacritics", overall["diacritized"]["wer"])],
        })
    return results


def front_matter(board: Mapping[str, Any], row: Mapping[str, Any], settings: Mapping[str, Any],
                 training: Mapping[str, Any] | None) -> dict[str, Any]:
    meta: dict[str, Any] = {"language": ["ar"], "license": settings["base_model_license"], "library_name": "nemo"}
    if base := _hub_base(settings["base_model"]):
        meta["base_model"] = base
    datasets = [settings["sources"][name]["dataset"] for name in _trained_sources(training)
                if name in settings["sources"] and dataset_path(settings["sources"][name]) is None]
    if datasets:
        meta["datasets"] = datasets
    head = "CTC" if is_ctc_model(training) else "hybrid-rnnt-ctc"
    meta.update(tags=[*TAGS, head], pipeline_tag="automatic-speech-recognition",
                **{"model-index": [{"name": row["model"], "results": model_index(board, row, settings)}]})
    return meta


def _introduction(board: Mapping[str, Any], row: Mapping[str, Any], base_model: str,
                  training: Mapping[str, Any] | None) -> list[str]:
    size = f"{row['parameters']:,} parameters, {row['bytes'] / 1e6:.1f} MB"
    if row["model"] == "base":
        what = (f"The pretrained model `{base_model}` ({size}), untouched: the reference that every fine-tune of "
                "this workflow is compared with.")
        title = f"# base: {base_model}, as benchmarked"
    else:
        kind = ("CTC model (the CTC path of its hybrid RNNT/CTC base, the only head the trial trained)"
                if is_ctc_model(training) else "hybrid RNNT/CTC model")
        what = (f"`{base_model}` fine-tuned on Quran recitation by the trial `{row['model']}` ({size}): a NeMo "
                f"FastConformer {kind} for Arabic speech recognition.")
        title = f"# {row['model']}: {base_model} fine-tuned on Quran recitation"
    return [title, "", what, "The benchmark below transcribes with its CTC head, greedy, and matches the transcript "
            "to verses; how to run each file of it: [How to use each file](#how-to-use-each-file).", "",
            f"It ranks {row['rank']} of {len(board['rows'])} on the workflow's leaderboard (SeqAcc of the "
            f"`{board['matcher']}` matcher)."]


def _training(row: Mapping[str, Any], settings: Mapping[str, Any], training: Mapping[str, Any],
              averaging: Mapping[str, Any] | None) -> list[str]:
    lines = ["", "## Training data", "", "| split | rows | hours | from |", "| --- | --- | --- | --- |"]
    manifests = training["data"]["blend"]["manifests"]
    for split, manifest in sorted(manifests.items(), key=lambda item: item[0] != "train"):
        parts = [f"{name} (`{settings['sources'].get(name, {}).get('dataset', name)}`): {figures['rows']} rows"
                 for name, figures in manifest["sources"].items() if figures["rows"]]
        lines.append(f"| {split} | {manifest['rows']:,} | {manifest['hours']} | {'; '.join(parts)} |")
    lines += ["", "The benchmark's clips were kept out of these rows by audio fingerprint (the workflow's "
                  "leakage guard)."]
    values = dict(training["trial_values"])
    trigger = values.pop("trigger", None)
    lines += ["", "## Trial settings", "", f"Trial `{row['model']}` (files: "
              f"{', '.join(f'`{path}`' for path in training['trial_files'])})" + (f": {trigger}" if trigger else ".")]
    if selection := row.get("selection"):
        lines += ["", f"It extends {selection['chosen']}, the best of {', '.join(selection['candidates'])} by "
                      f"{selection['metric']} (on the {selection['selected_on']} data)."]
    lines += ["", "| key | value |", "| --- | --- |", *(f"| `{key}` | {value} |" for key, value in values.items())]
    figures = training["training"]
    best = figures["best_score"]
    lines += ["", f"Trained {figures['global_step']} optimizer steps"
                  f"{' (stopped early)' if figures['stopped_early'] else ''} on {training['device']['device_name']} "
                  f"({training['device']['precision']}); best {figures['monitor']} "
                  f"{'n/a' if best is None else f'{best:.4f}'} on the validation rows."]
    if averaging:
        kept = "the average of" if averaging["choice"] == "averaged" else "the best single one of"
        lines.append(f"`model.nemo` is {kept} its top {len(averaging['members'])} checkpoints "
                     f"({averaging['reason']}).")
    return lines


def _evaluation(board: Mapping[str, Any], row: Mapping[str, Any], base: Mapping[str, Any],
                settings: Mapping[str, Any]) -> list[str]:
    shown = [row] if row is base else [row, base]
    lines = ["", "## Evaluation", "",
             f"{benchmark_dataset(board, settings)['name']}, `{board['matcher']}` matcher; transcript WER and CER "
             "without diacritics.", "", *_table(shown)]
    if versus := row.get("versus_base"):
        lines += ["", _versus(versus, board["multiple_comparisons"], "trials")]
    categories = sorted(base["per_category"])
    if categories:
        lines += ["", "SeqAcc by category:", "", "| category | " + " | ".join(r["model"] for r in shown) + " |",
                  "| --- |" + " --- |" * len(shown)]
        lines += [f"| {c} ({base['per_category'][c]['samples']}) | " + " | ".join(
            pct(r["per_category"].get(c, {}).get("sequence_accuracy")) for r in shown) + " |" for c in categories]
    rnnt = decoder_row(board, "rnnt", row["model"])
    if rnnt:
        section = board["decoders"]["rnnt"]
        heads = [rnnt] if row is base else [r for r in (rnnt, decoder_row(board, "rnnt", "base")) if r]
        lines += ["", f"The RNNT head on the same clips (greedy, `{section['matcher']}` matcher; every figure above is "
                      "the CTC head's):", "", *_table(heads)]
        if versus := rnnt.get("versus_base"):
            lines += ["", _versus(versus, section["multiple_comparisons"], "RNNT heads compared with the base's")]
    return lines


def model_card(board: Mapping[str, Any], model: str, settings: Mapping[str, Any],
               training: Mapping[str, Any] | None = None, averaging: Mapping[str, Any] | None = None) -> str:
    """The card of `model` (a row of the leaderboard `board`); `training` and `averaging` are a
    trial's training_metadata.json and averaging.json (none for the base)."""
    rows = {row["model"]: row for row in board["rows"]}
    if model not in rows:
        raise QuranftError(f"the leaderboard has no model {model!r} (it has {', '.join(sorted(rows))})")
    row, base = rows[model], rows["base"]
    header = yaml.safe_dump(front_matter(board, row, settings, training), sort_keys=False, allow_unicode=True)
    lines = ["---", header.rstrip("\n"), "---", "", *_introduction(board, row, settings["base_model"], training)]
    if training is not None:
        lines += _training(row, settings, training, averaging)
    lines += _evaluation(board, row, base, settings)
    lines += usage_section(board, row, training)
    lines += ["", "## License and credits", "",
              f"License: `{settings['base_model_license']}`, inherited from the base model `{settings['base_model']}` "
              "(config key `base_model_license`).",
              f"The verse text the benchmark scores against: {ATTRIBUTION}; used verbatim."]
    return "\n".join(lines) + "\n"


def write_model_card(leaderboard_json: str | Path, model: str, settings: Mapping[str, Any], out_md: str | Path,
                     training_metadata: str | Path | None = None, averaging_json: str | Path | None = None) -> str:
    card = model_card(read_json(leaderboard_json), model, settings,
                      read_json(training_metadata) if training_metadata else None,
                      read_json(averaging_json) if averaging_json else None)
    atomic_write_text(out_md, card)
    return card
