"""results/leaderboard.md from the leaderboard's data (quranft.evaluation.leaderboard.build).

One function per section, each taking the board and returning its lines; SECTIONS lists them in
the order they are printed, so that a new section is one function and one entry there.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from quranft.evaluation.asr_benchmark import ALL
from quranft.evaluation.best import choose, ship_export
from quranft.evaluation.deployable import deployable_markdown, false_accepts
from quranft.evaluation.longform_board import longform_markdown
from quranft.evaluation.figures import pct
from quranft.quran.references import verses_label
from quranft.quran.tanzil import ATTRIBUTION

Board = Mapping[str, Any]


def _cell(text: str | None) -> str:
    """Free text (a transcript, an error) made safe for one table cell."""
    return " ".join((text or "").split()).replace("|", "\\|")


def header(board: Board) -> list[str]:
    tests = board["multiple_comparisons"]
    return [
        "# Leaderboard",
        "",
        f"Verse identification on `{board['corpus']['path']}` ({board['corpus']['samples']} samples), "
        f"matcher `{board['matcher']}` (version {board['matcher_version']}), latency on {board['device']}. "
        "Models are ranked by SeqAcc, then recall, then precision (a trial tied with the base ranks below "
        "it). Intervals are bootstrap 95% CIs; p is the exact McNemar test of SeqAcc against the base model, "
        f"Holm p the same adjusted across the {tests['comparisons']} trials compared with the base; a "
        f"difference is called significant only when Holm p < {tests['alpha']}. The figures are the protocol's, "
        "over the recitations; *false accepts* are the corpus's negatives (silence, noise, speech that is not "
        "Quran) for which a model named a verse: a prediction is no verse where the voice-activity detector "
        "hears no speech or its confidence is under the model's threshold, chosen on validation clips.",
    ]


def model_to_ship(board: Board) -> list[str]:
    best = choose(board)
    lines = ["", f"**The model to ship: {best['model']}**: {best['reason']} (`best.json` lists its files)."]
    formats = [row["format"] for row in (board.get("deployable") or {}).get("rows", [])
               if row["model"] == best["model"] and row["format"] != "nemo"]
    if formats:
        export = ship_export(board, best["model"], formats)
        lines += ["", f"**The file to ship: {export['format'] or '.nemo'}**: {export['reason']}."]
    return lines


def ranking(board: Board) -> list[str]:
    lines = [
        "",
        "| rank | model | recall | precision | SeqAcc (95% CI) | WER | CER | false accepts | latency median / p95 "
        "(s) | size (MB) | params | vs base |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for row in board["rows"]:
        latency = (f"{row['latency_median']:.3f} / {row['latency_p95']:.3f}"
                   if row["latency_median"] is not None else "n/a")
        marked = " *" if row.get("selection", {}).get("selected_on_this_corpus") else ""
        lines.append(
            f"| {row['rank']} | {row['model']}{marked} | {_scores(row)} | "
            f"{latency} | {row['bytes'] / 1e6:.1f} | {row['parameters']:,} | {_versus(row)} |"
        )
    return lines


def _scores(row: Mapping[str, Any]) -> str:
    """The cells recall to CER of a ranked row."""
    low, high = row["ci95"]["sequence_accuracy"] or (None, None)
    return (f"{pct(row['recall'])} | {pct(row['precision'])} | {pct(row['sequence_accuracy'])} "
            f"({pct(low)}–{pct(high)}) | {pct(row['wer'])} | {pct(row['cer'])} | {false_accepts(row)}")


def _versus(row: Mapping[str, Any]) -> str:
    """A trial's paired comparison with the base, in one cell."""
    if "versus_base" not in row:
        return "—"
    v = row["versus_base"]
    delta = v["deltas"]["sequence_accuracy"]["delta"]
    return (f"{delta:+.1%} SeqAcc, {len(v['recovered'])} recovered / {len(v['regressed'])} regressed, "
            f"p={v['mcnemar_p']:.3g}, Holm p={v['mcnemar_p_holm']:.3g}{' (significant)' if v['significant'] else ''}")


def _label(row: Mapping[str, Any]) -> str:
    """A model's name, and the head of a row of another decoder than the CTC head: v3 (rnnt)."""
    return f"{row['model']} ({row['decoder']})" if "decoder" in row else row["model"]


def rnnt_head(board: Board) -> list[str]:
    """Every hybrid model's RNNT head ranked in a table of its own, each trial's compared with the
    base's RNNT head (Holm across these comparisons only)."""
    section = (board.get("decoders") or {}).get("rnnt")
    if not section:
        return []
    decoding, tests = section["decoding"], section["multiple_comparisons"]
    lines = [
        "", "## RNNT head", "",
        "The same samples transcribed by each model's RNNT head: its decoder and joint over the encoder output "
        f"that the CTC head read, greedy (`{decoding['strategy']}`, at most {decoding.get('max_symbols')} symbols a "
        f"frame), matched by the `{section['matcher']}` matcher (version {section['matcher_version']}; the ctc "
        "matcher needs CTC log-probs). p is the exact McNemar test of SeqAcc against the base's RNNT head, Holm p "
        f"the same adjusted across the {tests['comparisons']} trials' RNNT heads compared with it: a family of its "
        "own, apart from the table above. Latency, the model to ship and the exports are the CTC head's.",
        "",
        "| rank | model | recall | precision | SeqAcc (95% CI) | WER | CER | false accepts | vs base (rnnt) |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for row in section["rows"]:
        lines.append(f"| {row['rank']} | {_label(row)} | {_scores(row)} | {_versus(row)} |")
    if section["without"]:
        lines += ["", f"Without an RNNT head, so not in this table: {', '.join(section['without'])}."]
    return lines


def notes(board: Board) -> list[str]:
    """The lines below the table: selections on this corpus, figures by speaker, failures."""
    lines: list[str] = []
    for row in board["rows"]:
        selection = row.get("selection")
        if selection and selection["selected_on_this_corpus"]:
            lines += ["", f"\\* **{row['model']}** was selected on this corpus: it extends {selection['chosen']}, "
                          f"the best of {', '.join(selection['candidates'])} by {selection['metric']} on these "
                          "very samples, so its comparison with the base is optimistic."]
    for row in board["rows"]:
        if row.get("by_speaker"):
            seen, unseen = row["by_speaker"]["seen"], row["by_speaker"]["unseen"]
            lines += ["", f"**{row['model']}** SeqAcc on the clips of speakers it was trained on: "
                          f"{pct(seen['sequence_accuracy'])} ({seen['samples']} clips); of the others: "
                          f"{pct(unseen['sequence_accuracy'])} ({unseen['samples']} clips)."]
    for row in board["rows"]:
        if row["errors"]:
            failed = ", ".join(f"{kind} {count}" for kind, count in row["errors"].items())
            lines += ["", f"**{row['model']}** failed samples (scored 0): {failed}."]
    return lines


def per_category(board: Board) -> list[str]:
    """Every model's SeqAcc per category of the corpus, in rank order."""
    counts: dict[str, int] = {}
    for row in board["rows"]:
        for category, figures in row["per_category"].items():
            counts.setdefault(category, figures["samples"])
    if not counts:
        return []
    categories = sorted(counts)
    lines = ["", "## SeqAcc by category", "",
             "| model | " + " | ".join(f"{category} ({counts[category]})" for category in categories) + " |",
             "| --- |" + " --- |" * len(categories)]
    for row in board["rows"]:
        cells = [pct(row["per_category"].get(c, {}).get("sequence_accuracy")) for c in categories]
        lines.append(f"| {row['model']} | " + " | ".join(cells) + " |")
    return lines


def asr(board: Board) -> list[str]:
    """The ASR benchmark's table: WER / CER overall and per subset without diacritics, and overall
    with them."""
    section = board.get("asr")
    if not section:
        return []
    subsets = list(section["rows"][0]["summary"])
    test_set = section["test_set"]

    def pair(figures: Mapping[str, Any]) -> str:
        return " / ".join("n/a" if figures[k] is None else f"{100 * figures[k]:.2f}" for k in ("wer", "cer"))

    rnnt = [{**row, "decoder": "rnnt"} for row in (section.get("decoders") or {}).get("rnnt", [])]
    marked = " (the rows marked (rnnt): the model's RNNT head, greedy, on the same encoder output)" if rnnt else ""
    lines = ["", "## ASR benchmark", "",
             f"WER / CER (%) on `{test_set['dataset']}` ({test_set['kept']} clips, {test_set['hours']} h), CTC greedy"
             f"{marked}, corpus-level per subset; without diacritics (the verse protocol's normalisation) unless "
             "marked (docs/benchmark.md, \"ASR benchmark\").", "",
             "| model | " + " | ".join(f"{name} ({n})" for name, n in
                                      [(s, test_set["by_subset"].get(s, test_set["kept"])) for s in subsets])
             + f" | {ALL}, with diacritics |",
             "| --- |" + " --- |" * (len(subsets) + 1)]
    for row in [*section["rows"], *rnnt]:
        summary = row["summary"]
        cells = [pair(summary[s]["plain"]) for s in subsets] + [pair(summary[ALL]["diacritized"])]
        lines.append(f"| {_label(row)} | " + " | ".join(cells) + " |")
    return lines


def validation_curves(board: Board) -> list[str]:
    if not board.get("validation_curves"):
        return []
    return ["", "## Validation WER", "",
            "Every trial's validation WER by optimizer step (the monitored one, which ranks its checkpoints):", "",
            f"![validation WER of every trial]({board['validation_curves']})"]


def _heard(heard: Mapping[str, Any]) -> list[str]:
    transcript = _cell(heard["transcript"]) if heard["transcript"] is not None else f"failed: {_cell(heard['error'])}"
    return [verses_label(heard["predicted"]), transcript]


def _changes(row: Mapping[str, Any]) -> list[str]:
    """One trial's tables of the samples it regressed on and recovered (nothing when none)."""
    versus = row.get("versus_base")
    if not versus or not versus.get("samples"):
        return []
    name = _label(row)
    base = f"base ({row['decoder']})" if "decoder" in row else "base"
    whose = (f"the base's {row['decoder']} head {{}}, the trial's {{}}" if "decoder" in row
             else "the base {}, the trial {}")
    lines = ["", f"### {name}: {len(versus['regressed'])} regressed, {len(versus['recovered'])} recovered"]
    for change, title in (("regressed", f"Regressed ({whose.format('right', 'wrong')})"),
                          ("recovered", f"Recovered ({whose.format('wrong', 'right')})")):
        samples = [s for s in versus["samples"] if s["change"] == change]
        if not samples:
            continue
        lines += ["", f"{title}:", "",
                  f"| sample | category | expected | {base} predicted | {base} heard | {name} predicted "
                  f"| {name} heard |",
                  "| --- | --- | --- | --- | --- | --- | --- |"]
        for sample in samples:
            cells = [sample["id"], sample["category"] or "", verses_label(sample["expected"]),
                     *_heard(sample["base"]), *_heard(sample["trial"])]
            lines.append("| " + " | ".join(cells) + " |")
    return lines


def errors_against_base(board: Board) -> list[str]:
    """For each trial, the samples it regressed on and those it recovered, with what the base and
    the trial each heard (transcript) and matched (predicted verses); then the same of each
    trial's RNNT head against the base's."""
    rows = [*board["rows"], *((board.get("decoders") or {}).get("rnnt", {}).get("rows", []))]
    lines = [line for row in rows for line in _changes(row)]
    return ["", "## Errors against the base", *lines] if lines else []


def credits(board: Board) -> list[str]:
    return ["", f"Verse text: {ATTRIBUTION}."]


def deployable(board: Board) -> list[str]:
    return deployable_markdown(board["deployable"]) if board.get("deployable") else []


def continuous_recitation(board: Board) -> list[str]:
    return longform_markdown(board["longform"]) if board.get("longform") else []


SECTIONS = (header, model_to_ship, ranking, notes, rnnt_head, deployable, continuous_recitation, per_category, asr, validation_curves,
            errors_against_base, credits)


def to_markdown(board: Board) -> str:
    return "\n".join(line for section in SECTIONS for line in section(board)) + "\n"
