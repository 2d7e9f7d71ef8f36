"""The model to ship: the best trial that beats the base significantly, else the base.

"Beats the base significantly" is the leaderboard's test: more samples recovered than regressed,
and the exact McNemar test of SeqAcc significant after Holm's adjustment across every trial
compared with the base. Among the trials that do, the best in the leaderboard's ranking (SeqAcc,
then recall, then precision, then name) is chosen; with none, the pretrained base is kept, and
the reason says so. `results/best.json` adds the chosen model's files: its `.nemo`, its model card
and its exports (results/<model>/export/, one file per configured format).

Which of its files to ship (`export`): the smallest export that is fit, whose SeqAcc loss against
the .nemo is bounded below export.max_seqacc_loss on the benchmark (evaluation.deployable), with
the reason in words and, for each format that is not fit, its bound against the margin. When none
is fit, the .nemo is named (the model the figures are of) and the reason says whether the corpus
could have shown any export fit at all.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from quranft.errors import QuranftError
from quranft.evaluation.deployable import points
from quranft.evaluation.figures import pct
from quranft.evaluation.longform_board import continuous_recitation
from quranft.evaluation.model_card import MODEL_CARD
from quranft.fileio import read_json, write_json
from quranft.models.onnx_model import EXPORT_FILES


def beats_base(row: Mapping[str, Any]) -> bool:
    """Whether a trial's leaderboard row beats the base significantly (after Holm)."""
    versus = row.get("versus_base")
    return bool(versus and versus["significant"] and len(versus["recovered"]) > len(versus["regressed"]))


def _against_base(row: Mapping[str, Any], base: Mapping[str, Any]) -> str:
    versus = row["versus_base"]
    delta = 100 * versus["deltas"]["sequence_accuracy"]["delta"]
    return (f"SeqAcc {pct(row['sequence_accuracy'])} against the base's {pct(base['sequence_accuracy'])}, "
            f"{delta:+.1f} points; {len(versus['recovered'])} recovered, {len(versus['regressed'])} regressed; "
            f"Holm p = {versus['mcnemar_p_holm']:.3g}")


def _reason(board: Mapping[str, Any], chosen: Mapping[str, Any] | None, winners: list[Mapping[str, Any]],
            base: Mapping[str, Any]) -> str:
    alpha = board["multiple_comparisons"]["alpha"]
    trials = [row for row in board["rows"] if row["model"] != "base"]
    if not trials:
        return "no trial was benchmarked: keep the pretrained model"
    if chosen is None:
        best = trials[0]
        return (f"no trial beat the base significantly (the best, {best['model']}: {_against_base(best, base)}, "
                f"{'not below' if best['versus_base']['mcnemar_p_holm'] >= alpha else 'below'} {alpha}): "
                "keep the pretrained model")
    others = [row["model"] for row in winners if row is not chosen]
    among = (f"the best of the {len(winners)} trials that did ({', '.join(row['model'] for row in winners)})"
             if others else "the only trial that did")
    reason = f"{chosen['model']} beat the base significantly ({_against_base(chosen, base)} < {alpha}), {among}"
    tied = [row["model"] for row in winners if row is not chosen and row["rank"] == chosen["rank"]]
    if tied:
        reason += f"; {', '.join(tied)} scored the same SeqAcc, recall and precision, and the first by name is named"
    if chosen.get("selection", {}).get("selected_on_this_corpus"):
        reason += ("; it extends a trial chosen on this very corpus, so its comparison with the base is "
                   "optimistic")
    return reason


def choose(board: Mapping[str, Any]) -> dict[str, Any]:
    """The model to ship from a leaderboard (quranft.evaluation.leaderboard.build), and why."""
    base = next(row for row in board["rows"] if row["model"] == "base")
    winners = [row for row in board["rows"] if beats_base(row)]  # in rank order
    chosen = winners[0] if winners else None
    shipped = chosen or base
    versus = shipped.get("versus_base")
    return {
        "model": shipped["model"],
        "reason": _reason(board, chosen, winners, base),
        "matcher": board["matcher"],
        "alpha": board["multiple_comparisons"]["alpha"],
        "sequence_accuracy": shipped["sequence_accuracy"],
        "base_sequence_accuracy": base["sequence_accuracy"],
        "versus_base": None if versus is None else {
            "sequence_accuracy_delta": versus["deltas"]["sequence_accuracy"]["delta"],
            "recovered": len(versus["recovered"]), "regressed": len(versus["regressed"]),
            "mcnemar_p": versus["mcnemar_p"], "mcnemar_p_holm": versus["mcnemar_p_holm"]},
        "beat_the_base": [row["model"] for row in winners],
        # its long-form figures, and whether that ranking agrees on it (a fact beside the choice)
        "continuous_recitation": continuous_recitation(board, shipped["model"]),
    }


def _format_record(row: Mapping[str, Any]) -> dict[str, Any]:
    """A format's bound (and its browser bound, where its browser check ran): fit when both are."""
    record = row["bound"]
    browser = (row.get("browser") or {}).get("bound")
    worst = max([record, browser] if browser else [record], key=lambda r: r["bound"])
    return {"file": row["file"], "bytes": row["bytes"], "sequence_accuracy": row["sequence_accuracy"],
            "loss": record["loss"], "bound": record["bound"], "fit": record["fit"] and (browser is None or browser["fit"]),
            "browser_bound": None if browser is None else browser["bound"],
            "browser_sequence_accuracy": None if browser is None else row["browser"]["sequence_accuracy"],
            "over_margin": max(0.0, worst["bound"] - record["margin"]),
            "regressed": len(record["regressed"]), "recovered": len(record["recovered"]),
            "browser_regressed": None if browser is None else len(browser["regressed"]),
            "browser_recovered": None if browser is None else len(browser["recovered"])}


def _with_longform(judged: dict[str, dict[str, Any]], board: Mapping[str, Any], model: str) -> None:
    """Each judged format's long-form bound (its verses found against its .nemo's, offline and
    streamed: the larger), where the long-form benchmark judged both: a format not fit there is
    not fit."""
    for row in (board.get("longform") or {}).get("rows", []):
        if row["model"] == model and row["format"] in judged and "versus_nemo" in row:
            record = judged[row["format"]]
            bound = row["versus_nemo"]
            if record.get("longform_bound") is None or bound["bound"] > record["longform_bound"]:
                record["longform_bound"] = bound["bound"]
            record["fit"] = record["fit"] and bound["fit"]


def _not_fit(formats: Mapping[str, Mapping[str, Any]], margin: float) -> str:
    def where(r: Mapping[str, Any]) -> str:
        if r.get("longform_bound") is not None and r["longform_bound"] >= margin and r["bound"] < margin and \
                (r["browser_bound"] is None or r["browser_bound"] < margin):
            return (f"on continuous recitation, bound {points(r['longform_bound'])} points of the verses its .nemo "
                    f"found, over the margin of {points(margin)}")
        if r["browser_bound"] is not None and r["browser_bound"] > r["bound"]:
            return (f"in the browser, bound {points(r['browser_bound'])} points, {points(r['over_margin'])} over the "
                    f"margin of {points(margin)} ({r['browser_regressed']} regressed, {r['browser_recovered']} "
                    "recovered)")
        return (f"bound {points(r['bound'])} points, {points(r['over_margin'])} over the margin of {points(margin)} "
                f"({r['regressed']} regressed, {r['recovered']} recovered)")

    return "; ".join(f"{fmt} is not fit: {where(r)}" for fmt, r in formats.items() if not r["fit"])


def ship_export(board: Mapping[str, Any], model: str, formats: Iterable[str]) -> dict[str, Any]:
    """Which of `model`'s files to ship, of its exports in `formats` held to the leaderboard's
    bound: {"format" (None: the .nemo), "reason", "max_seqacc_loss", "formats": {format: its
    bound, fit or not, by how much over the margin}}."""
    section = board.get("deployable") or {}
    rows = {row["format"]: row for row in section.get("rows", []) if row["model"] == model and "bound" in row}
    judged = {fmt: _format_record(rows[fmt]) for fmt in formats if fmt in rows}
    _with_longform(judged, board, model)
    if not judged:
        return {"format": None, "max_seqacc_loss": section.get("max_seqacc_loss"), "formats": {},
                "reason": f"no export of {model} was benchmarked: ship its .nemo"}
    margin = section["max_seqacc_loss"]
    fit = sorted((r["bytes"], fmt) for fmt, r in judged.items() if r["fit"])
    not_fit = _not_fit(judged, margin)
    if fit:
        chosen = fit[0][1]
        record = judged[chosen]
        larger = [fmt for _, fmt in fit[1:]]
        in_browser = ("" if record["browser_bound"] is None else
                      f", and as the browser runs it at most {points(record['browser_bound'])} points")
        reason = (f"the smallest fit export ({record['bytes'] / 1e6:.1f} MB): its SeqAcc loss against the "
                  f".nemo is at most {points(record['bound'])} points (upper end of the 95% interval; "
                  f"{record['regressed']} regressed, {record['recovered']} recovered){in_browser}, below the "
                  f"margin of {points(margin)}")
        if larger:
            reason += f"; {', '.join(larger)} fit too, larger"
        return {"format": chosen, "max_seqacc_loss": margin, "formats": judged,
                "reason": reason + (f"; {not_fit}" if not_fit else "")}
    row = next(iter(rows.values()))["bound"]
    corpus = (f"the corpus cannot show any: with all {row['samples']} recitations agreeing, the bound is "
              f"{points(row['least_bound'])} points; it takes {row['samples_needed']} recitations"
              if not row["resolvable"] else "")
    reason = (f"no export is fit ({not_fit})" + (f"; {corpus}" if corpus else "") +
              ". Ship the .nemo, the model these figures are of; an app that needs ONNX: the fp32 export, whose "
              "transcripts and log-probs are checked against the .nemo's clip by clip at export (export.json)")
    return {"format": None, "max_seqacc_loss": margin, "formats": judged, "reason": reason}


def export_files(model_file: str | Path, formats: Iterable[str]) -> dict[str, str]:
    """Where the exports of the model whose `.nemo` is `model_file` are, by format."""
    unknown = sorted(set(formats) - set(EXPORT_FILES))
    if unknown:
        raise QuranftError(f"unknown export formats {unknown}; expected some of {sorted(EXPORT_FILES)}")
    return {name: (Path(model_file).parent / "export" / EXPORT_FILES[name]).as_posix() for name in formats}


def write_best(leaderboard_json: str | Path, model_files: Mapping[str, str | Path], formats: Iterable[str],
               out_json: str | Path) -> dict[str, Any]:
    """best.json: the choice, its reason, and the chosen model's files (`model_files`: the
    `.nemo` of each model, by name)."""
    board = read_json(leaderboard_json)
    best = choose(board)
    if best["model"] not in model_files:
        raise QuranftError(f"{leaderboard_json}: the model to ship, {best['model']}, is not among the models given "
                           f"({', '.join(sorted(model_files))})")
    nemo = Path(model_files[best["model"]])
    formats = list(formats)
    best["files"] = {"nemo": nemo.as_posix(), "model_card": (nemo.parent / MODEL_CARD).as_posix(),
                     "exports": export_files(nemo, formats)}
    export = ship_export(board, best["model"], formats)
    best["export"] = export
    best["ship"] = best["files"]["exports"][export["format"]] if export["format"] else nemo.as_posix()
    best["leaderboard"] = Path(leaderboard_json).as_posix()
    write_json(out_json, best)
    return best
