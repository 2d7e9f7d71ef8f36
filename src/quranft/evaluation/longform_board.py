"""The leaderboard's "Continuous recitation" table: every model's long-form benchmark (longform.json,
evaluation.longform), each file and mode, each trial paired with the base, and whether the long-form
ranking agrees with the clip ranking.

Rows: for each model (in the clip leaderboard's order), each file judged (nemo, fp32, int8, int4)
and each mode (offline: the session heard whole; streamed: in chunks, as an app hears it), the
verse F1, recall, precision, verse error rate, boundary error, false verses per minute of
non-recitation, real-time factor, and streamed, the emission delay and the retractions.

The paired test: each trial against the base in the same file and mode, per recited verse (found or
not: the session's `hits`), by the exact McNemar test, Holm-adjusted across the trials of that file
and mode (a family of its own, apart from the clip benchmark's). Per verse rather than per session
(Wilcoxon's signed-rank test on the sessions' F1): the corpus holds few sessions (the demo 12, and
its config judges 4), and with n sessions the signed-rank test cannot give a two-sided p below
2 / 2^n (0.125 with 4, 0.0005 with 12), so a session test could never find a difference on the
demo, whereas each session recites 10 to 23 verses. The verses of one session share its reciter
and recording, so they are not independent draws: the p-values are read as a screen, and the
session-level wins and losses are shown beside them. A found verse the base misses counts as
recovered, and the reverse as regressed; false verses are not in this test (the precision and the
false verses per minute show them).

The ranking agreement: the models ranked by long-form F1 (the first file judged, usually the
.nemo, in each mode), against the clip ranking of the same file (the leaderboard's SeqAcc for the
.nemo, the Deployable table's for an export, the .nemo's when the exports have no clip benchmark),
by Kendall's tau (scipy.stats.kendalltau), and whether both rankings put the same model first.

Only results on the same sessions (content hash and ids), scored by the same code and with the
same settings, are compared; anything else is refused, naming the files.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from quranft.errors import QuranftError
from quranft.evaluation.deployable import FORMATS
from quranft.evaluation.figures import pct
from quranft.evaluation.statistics import holm_adjust, mcnemar_exact, non_inferiority

MODES = ("offline", "streamed")
FILES = ("nemo", *FORMATS)  # a model's files, in the Deployable table's order
FIGURES = ("f1", "recall", "precision", "verse_error_rate", "boundary_error_ms", "false_verses_per_minute",
           "real_time_factor")
STREAMED_ONLY = ("emission_delay", "retractions")


class LongformBoardError(QuranftError, ValueError):
    """Long-form results that cannot be compared; the message names the files and what differs."""


def _identity(result: Mapping[str, Any]) -> tuple:
    corpus = result["corpus"]
    return corpus["sha256"], tuple(corpus["ids"]), (result.get("scorer") or {}).get("version"), \
        result["settings"]["chunk_seconds"], result["settings"]["hold_seconds"]


def check_comparable(results: Mapping[str, Mapping[str, Any]], files: Mapping[str, str]) -> None:
    """Refuse results on other sessions, by other code or with other streaming settings."""
    seen: dict[tuple, list[str]] = {}
    for model, record in results.items():
        if not record.get("formats"):
            raise LongformBoardError(f"{files[model]}: holds no file's results (formats)")
        for fmt, result in record["formats"].items():
            seen.setdefault(_identity(result), []).append(f"{files[model]} ({fmt})")
    if len(seen) > 1:
        listed = "; ".join(f"{', '.join(names)}: sessions {ids[1][:3]}..., scorer {ids[2]}, chunk {ids[3]} s, "
                           f"hold {ids[4]} s" for ids, names in seen.items())
        raise LongformBoardError("the long-form results cannot be compared: their sessions (sessions.json's hash "
                                 f"and ids), scoring code or streaming settings differ: {listed}. Re-run the older "
                                 "ones so that all are judged alike.")


def hits(result: Mapping[str, Any], mode: str) -> list[int]:
    """Every recited verse of the sessions, in order: 1 when found in this mode."""
    return [hit for session in result["sessions"] for hit in session[mode]["hits"]]


def paired(base: Mapping[str, Any], trial: Mapping[str, Any], mode: str) -> dict[str, Any]:
    """A trial against the base on the same sessions and mode (module docstring)."""
    ours, theirs = hits(trial, mode), hits(base, mode)
    recovered = sum(1 for a, b in zip(ours, theirs) if a and not b)
    regressed = sum(1 for a, b in zip(ours, theirs) if b and not a)
    f1 = [(t[mode]["f1"], b[mode]["f1"]) for t, b in zip(trial["sessions"], base["sessions"])]
    return {"recovered": recovered, "regressed": regressed, "mcnemar_p": mcnemar_exact(regressed, recovered),
            "f1_delta": trial[mode]["f1"] - base[mode]["f1"],
            "sessions_better": sum(1 for t, b in f1 if t > b), "sessions_worse": sum(1 for t, b in f1 if t < b)}


def _figures(result: Mapping[str, Any], mode: str) -> dict[str, Any]:
    block = result[mode]
    row = {key: block[key] for key in FIGURES}
    if mode == "streamed":
        row.update({key: block[key] for key in STREAMED_ONLY})
    return row


def _rows(results: Mapping[str, Mapping[str, Any]], order: Sequence[str], alpha: float,
          margin: float | None = None) -> list[dict[str, Any]]:
    rows = []
    formats = [fmt for fmt in FILES if any(fmt in r["formats"] for r in results.values())]
    for fmt in formats:
        for mode in MODES:
            group = []
            for model in order:
                result = results.get(model, {}).get("formats", {}).get(fmt)
                if result is None:
                    continue
                row = {"model": model, "format": fmt, "mode": mode, **_figures(result, mode)}
                base = results.get("base", {}).get("formats", {}).get(fmt)
                if model != "base" and base is not None:
                    row["versus_base"] = paired(base, result, mode)
                nemo = results[model]["formats"].get("nemo")
                if fmt != "nemo" and nemo is not None and margin is not None:
                    # the export held to the same bound as on the clips, on the verses its .nemo found
                    row["versus_nemo"] = non_inferiority(hits(nemo, mode), hits(result, mode), margin)
                group.append(row)
            compared = [row for row in group if "versus_base" in row]
            for row, p in zip(compared, holm_adjust([row["versus_base"]["mcnemar_p"] for row in compared])):
                row["versus_base"]["mcnemar_p_holm"] = p
                row["versus_base"]["significant"] = p < alpha
            rows += group
    return rows


def agreement(results: Mapping[str, Mapping[str, Any]], clips: tuple[str, Mapping[str, float]], fmt: str,
              mode: str) -> dict[str, Any]:
    """The long-form ranking (F1 of `fmt` in `mode`) against the clip ranking (`clips`: which
    file, and each model's SeqAcc by it), over the models that have both."""
    from scipy.stats import kendalltau

    clip_file, clip_scores = clips
    models = [m for m in clip_scores if fmt in results.get(m, {}).get("formats", {})]
    longform = {m: results[m]["formats"][fmt][mode]["f1"] for m in models}
    top_clip = max(models, key=lambda m: (clip_scores[m], m == "base")) if models else None
    top_long = max(models, key=lambda m: (longform[m], m == "base")) if models else None
    tau = None
    if len(models) > 1 and len(set(longform.values())) > 1 and len(set(clip_scores[m] for m in models)) > 1:
        tau = float(kendalltau([clip_scores[m] for m in models], [longform[m] for m in models]).statistic)
    return {"format": fmt, "mode": mode, "clip_format": clip_file, "models": len(models), "kendall_tau": tau,
            "top_by_clips": top_clip, "top_by_longform": top_long, "same_top": top_clip == top_long,
            "longform_order": sorted(models, key=lambda m: (-longform[m], m != "base", m))}


def clip_scores(board: Mapping[str, Any], fmt: str) -> tuple[str, dict[str, float]]:
    """Each model's clip SeqAcc for one file, and which file it is: the leaderboard's for the
    .nemo, the Deployable table's for an export (the .nemo's when the exports were not benchmarked)."""
    exported = {row["model"]: row["sequence_accuracy"] for row in (board.get("deployable") or {}).get("rows", [])
                if row["format"] == fmt}
    if fmt != "nemo" and exported:
        return fmt, exported
    return "nemo", {row["model"]: row["sequence_accuracy"] for row in board["rows"]}


def longform_section(results: Mapping[str, Mapping[str, Any]], files: Mapping[str, str],
                     board: Mapping[str, Any], max_seqacc_loss: float | None = None) -> dict[str, Any]:
    """{"rows", "agreement", "test", "sessions", ...} for the long-form results by model
    ({model: longform.json}), the models in the clip leaderboard's order (`board`); where a
    model's .nemo was judged too, each export's row has `versus_nemo`: its loss of verses found
    against the .nemo's bounded as on the clips (statistics.non_inferiority, `max_seqacc_loss`)."""
    check_comparable(results, files)
    order = [row["model"] for row in board["rows"] if row["model"] in results]
    first = next(iter(next(iter(results.values()))["formats"].values()))
    primary = next(fmt for fmt in FILES
                   if any(fmt in results[m]["formats"] for m in order))
    alpha = board["multiple_comparisons"]["alpha"]
    return {"rows": _rows(results, order, alpha, max_seqacc_loss),
            "agreement": [agreement(results, clip_scores(board, primary), primary, mode) for mode in MODES],
            "sessions": first["corpus"]["sessions"], "recited": first["offline"]["recited"],
            "audio_seconds": first["corpus"]["audio_seconds"],
            "settings": {key: first["settings"][key] for key in ("chunk_seconds", "hold_seconds")},
            "test": {"name": "exact McNemar per recited verse, Holm across the trials of each file and mode",
                     "alpha": alpha},
            "files": dict(files)}


def _pair(block: Mapping[str, Any] | None, scale: float = 1.0, digits: int = 0) -> str:
    if not block or block.get("median") is None:
        return "—"
    return f"{block['median'] * scale:.{digits}f} / {block['p90'] * scale:.{digits}f}"


def _number(value: float | None, digits: int = 2) -> str:
    return "—" if value is None else f"{value:.{digits}f}"


def _versus(row: Mapping[str, Any]) -> str:
    versus, nemo = row.get("versus_base"), row.get("versus_nemo")
    said = []
    if versus:
        mark = " *" if versus["significant"] else ""
        said.append(f"{100 * versus['f1_delta']:+.1f} pts; +{versus['recovered']} / −{versus['regressed']} verses; "
                    f"sessions {versus['sessions_better']}↑ {versus['sessions_worse']}↓; "
                    f"p={versus['mcnemar_p']:.3g}, Holm {versus['mcnemar_p_holm']:.3g}{mark}")
    if nemo:
        said.append(f"against its .nemo: bound {100 * nemo['bound']:.1f} pts ({'fit' if nemo['fit'] else 'not fit'})")
    return "; ".join(said) or "—"


def _agreement(entry: Mapping[str, Any]) -> str:
    tau = "n/a" if entry["kendall_tau"] is None else f"{entry['kendall_tau']:+.2f}"
    top = (f"both put {entry['top_by_clips']} first" if entry["same_top"] else
           f"clips put {entry['top_by_clips']} first, continuous recitation {entry['top_by_longform']}")
    against = "" if entry["clip_format"] == entry["format"] else f" against the {entry['clip_format']}'s clips"
    return (f"- {entry['mode']} ({entry['format']}{against}, {entry['models']} models): Kendall's tau {tau}; {top}; "
            f"by F1: {', '.join(entry['longform_order'])}.")


def longform_markdown(section: Mapping[str, Any]) -> list[str]:
    """The table, one row per model, file and mode; then the rankings' agreement."""
    settings = section["settings"]
    lines = ["", "## Continuous recitation", "",
             f"Every model on {section['sessions']} long-form sessions ({section['recited']} verses, "
             f"{section['audio_seconds'] / 60:.1f} min): *offline*, each heard whole as `identify` hears a "
             f"recording; *streamed*, fed in {settings['chunk_seconds']} s chunks as an app hears a microphone, "
             f"each verse emitted once the reciter pauses {settings['hold_seconds']} s after it and never taken "
             "back. F1, recall, precision: a found verse counts when it names a recited verse and overlaps its "
             "true interval; VER: verse error rate (edit distance of the verse sequences over the recited count); "
             "boundaries: |start| and |end| errors of the verses found, median / p90 (ms); false/min: verses found "
             "in no recited verse, per minute of non-recitation; delay: emission after the verse's end, median / "
             "p90 (s); RTF: processing over audio seconds. *vs base*: same file and mode, F1 difference, verses "
             f"recovered / regressed, sessions better / worse, {section['test']['name']} "
             f"(* below {section['test']['alpha']}); an export whose .nemo was judged too: its loss of the verses "
             "the .nemo found, bounded as on the clips (export.max_seqacc_loss).", "",
             "| model | file | mode | F1 | recall | precision | VER | boundaries (ms) | false/min | delay (s) | "
             "retractions | RTF | vs base |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for row in section["rows"]:
        streamed = row["mode"] == "streamed"
        lines.append(f"| {row['model']} | {row['format']} | {row['mode']} | {pct(row['f1'])} | {pct(row['recall'])} | "
                     f"{pct(row['precision'])} | {pct(row['verse_error_rate'])} | "
                     f"{_pair(row['boundary_error_ms'])} | {_number(row['false_verses_per_minute'])} | "
                     f"{_pair(row.get('emission_delay'), digits=1) if streamed else '—'} | "
                     f"{row['retractions'] if streamed else '—'} | {_number(row['real_time_factor'], 3)} | "
                     f"{_versus(row)} |")
    lines += ["", "Does the long-form ranking agree with the clip ranking (SeqAcc of the same file)?", "",
              *(_agreement(entry) for entry in section["agreement"]), ""]
    return lines


def continuous_recitation(board: Mapping[str, Any], model: str) -> dict[str, Any] | None:
    """For best.json: the continuous-recitation figures of the model to ship (every file judged,
    offline and streamed), and whether the long-form ranking agrees with the clip ranking on it,
    in words. None when the leaderboard has no long-form results."""
    section = board.get("longform")
    if not section:
        return None
    figures: dict[str, dict[str, Any]] = {}
    for row in section["rows"]:
        if row["model"] == model:
            figures.setdefault(row["format"], {})[row["mode"]] = {"f1": row["f1"], "recall": row["recall"],
                                                                 "precision": row["precision"]}
    disagree = []
    for entry in section["agreement"]:
        if entry["top_by_longform"] != model:
            top = entry["top_by_longform"]
            f1 = {row["model"]: row["f1"] for row in section["rows"]
                  if row["format"] == entry["format"] and row["mode"] == entry["mode"]}
            disagree.append(f"{entry['mode']} ({entry['format']}), {top} has the highest verse F1, "
                            f"{pct(f1.get(top))} against {model}'s {pct(f1.get(model))}")
    note = (f"the continuous-recitation ranking disagrees on {model}: " + "; ".join(disagree) if disagree else
            f"the continuous-recitation ranking agrees: {model} has the highest verse F1 offline and streamed")
    return {"figures": figures, "rankings_agree": not disagree, "note": note}
