"""The leaderboard's "Continuous recitation" table and best.json's long-form figures, on constructed
long-form results whose answers are known: the per-verse hits, the paired McNemar test with Holm
across the trials, the refusal of results on other sessions, the rankings' agreement."""

from __future__ import annotations

import pytest

from quranft.evaluation.best import choose
from quranft.evaluation.longform_board import (LongformBoardError, continuous_recitation, longform_markdown,
                                              longform_section)
from quranft.evaluation.longform_scoring import Timed, score_session, summarize

# Two sessions of recited verses, each a second long with a second's pause before it.
SESSIONS = {"s1": [Timed(1, a, 2 * a - 1, 2 * a) for a in range(1, 5)],
            "s2": [Timed(112, a, 2 * a - 1, 2 * a) for a in range(1, 4)]}


def found(recited: list[Timed], hits: str, extra: list[Timed] = ()) -> list[Timed]:
    """The verses found: the recited ones whose hit is "1", shifted by 0.1 s, and `extra`."""
    return [Timed(v.surah, v.ayah, v.start + 0.1, v.end + 0.1) for v, hit in zip(recited, hits) if hit == "1"] + \
        list(extra)


def result(hits: dict[str, str], streamed: dict[str, str] | None = None, ids=("s1", "s2"), hold=1.0,
           sha="abc", extra: list[Timed] = ()) -> dict:
    """One file's long-form result: per session, which recited verses were found ("1101")."""
    rows = []
    for sid in ids:
        seconds = 2 * len(SESSIONS[sid]) + 1
        offline = score_session(SESSIONS[sid], found(SESSIONS[sid], hits[sid], extra if sid == "s1" else ()),
                                seconds)
        stream = score_session(SESSIONS[sid], found(SESSIONS[sid], (streamed or hits)[sid]), seconds)
        rows.append({"id": sid, "seconds": seconds, "offline": offline,
                     "streamed": {**stream, "delays": [], "retractions": 0}})
    block = {mode: {**summarize([r[mode] for r in rows]), "real_time_factor": 0.05} for mode in ("offline", "streamed")}
    block["streamed"].update(emission_delay={"median": 1.2, "p90": 1.5}, retractions=0)
    return {**block, "corpus": {"sha256": sha, "ids": list(ids), "sessions": len(ids), "audio_seconds": 16.0},
            "scorer": {"version": "v1"}, "settings": {"chunk_seconds": 0.5, "hold_seconds": hold},
            "sessions": rows}


def board(clip: dict[str, float], longform: dict[str, dict]) -> dict:
    """A leaderboard (its rows in clip order, by SeqAcc) with the long-form section of `longform`."""
    rows = [{"model": m, "sequence_accuracy": s, "rank": i + 1} for i, (m, s) in
            enumerate(sorted(clip.items(), key=lambda kv: -kv[1]))]
    made = {"rows": rows, "multiple_comparisons": {"alpha": 0.05},
            "deployable": {"rows": [{"model": m, "format": "int8", "sequence_accuracy": s} for m, s in clip.items()]}}
    made["longform"] = longform_section({m: {"formats": {"int8": r}} for m, r in longform.items()},
                                        {m: f"results/{m}/longform.json" for m in longform}, made)
    return made


def test_each_recited_verse_is_a_hit_or_not_found_missed_doubled_misplaced_and_false():
    recited = [Timed(1, 1, 0, 2), Timed(1, 2, 3, 5), Timed(1, 3, 6, 8), Timed(1, 4, 9, 11)]
    guesses = [Timed(1, 1, 0.1, 2.0),  # found
               Timed(1, 1, 0.5, 1.5),  # the same verse again: counted once, the second is no hit
               Timed(1, 3, 9.0, 10.0),  # 1:3 where 1:4 was recited: misplaced, no hit for either
               Timed(9, 9, 12.0, 13.0)]  # in the pause after the last verse: false
    scored = score_session(recited, guesses, 14.0)
    assert scored["hits"] == [1, 0, 0, 0]
    assert (scored["matched"], scored["found"], scored["false_verses"]) == (1, 4, 1)


def test_each_trial_is_paired_with_the_base_per_verse_by_mcnemar_and_holm_across_the_trials():
    base = result({"s1": "1000", "s2": "100"})
    better = result({"s1": "1111", "s2": "110"})  # 4 recovered, none regressed
    mixed = result({"s1": "0110", "s2": "100"})  # 2 recovered, 1 regressed
    made = board({"base": 0.3, "v1": 0.6, "v2": 0.5}, {"base": base, "v1": better, "v2": mixed})
    offline = {row["model"]: row for row in made["longform"]["rows"] if row["mode"] == "offline"}
    v1, v2 = offline["v1"]["versus_base"], offline["v2"]["versus_base"]
    assert (v1["recovered"], v1["regressed"], v2["recovered"], v2["regressed"]) == (4, 0, 2, 1)
    # exact McNemar: 2 * 0.5^4 = 0.125; with 1 of 3 discordant, two-sided binomial p = 1
    assert (v1["mcnemar_p"], v2["mcnemar_p"]) == (0.125, 1.0)
    assert (v1["mcnemar_p_holm"], v2["mcnemar_p_holm"]) == (0.25, 1.0)  # Holm: 2 x 0.125, then max(1, ...)
    assert not v1["significant"] and (v1["sessions_better"], v1["sessions_worse"]) == (2, 0)
    assert v1["f1_delta"] == pytest.approx(better["offline"]["f1"] - base["offline"]["f1"])
    assert "versus_base" not in offline["base"]
    assert [row["model"] for row in made["longform"]["rows"]] == ["v1", "v2", "base"] * 2


def test_results_on_other_sessions_or_settings_are_refused_naming_the_files():
    with pytest.raises(LongformBoardError, match=r"results/v1/longform.json \(int8\)"):
        board({"base": 0.3, "v1": 0.6}, {"base": result({"s1": "1000", "s2": "100"}),
                                         "v1": result({"s1": "1111"}, ids=("s1",))})
    with pytest.raises(LongformBoardError, match="streaming settings"):
        board({"base": 0.3, "v1": 0.6}, {"base": result({"s1": "1000", "s2": "100"}),
                                         "v1": result({"s1": "1111", "s2": "111"}, hold=2.0)})


def test_the_rankings_agreement_and_what_best_json_says_of_it():
    # by clips v1 > v2 > base; by verse F1 v2 > v1 > base: Kendall's tau 1/3, different models first
    made = board({"base": 0.3, "v1": 0.6, "v2": 0.5}, {"base": result({"s1": "1000", "s2": "000"}),
                                                        "v1": result({"s1": "1100", "s2": "100"}),
                                                        "v2": result({"s1": "1110", "s2": "110"})})
    offline = made["longform"]["agreement"][0]
    assert (offline["mode"], offline["format"], offline["clip_format"]) == ("offline", "int8", "int8")
    assert offline["kendall_tau"] == pytest.approx(1 / 3)
    assert (offline["top_by_clips"], offline["top_by_longform"], offline["same_top"]) == ("v1", "v2", False)
    assert offline["longform_order"] == ["v2", "v1", "base"]
    said = continuous_recitation(made, "v1")
    assert not said["rankings_agree"]
    assert said["note"].startswith("the continuous-recitation ranking disagrees on v1: offline (int8), v2 has the "
                                   "highest verse F1, 83.3% against v1's 60.0%; streamed (int8)")
    # v1 finds 3 of the 7 verses and nothing else: recall 3/7, precision 1, F1 6/10
    assert said["figures"]["int8"]["streamed"]["f1"] == pytest.approx(0.6)
    assert continuous_recitation(made, "v2")["rankings_agree"]


def test_the_table_in_the_leaderboard_and_the_figures_in_best_json():
    made = board({"base": 0.3, "v1": 0.6}, {"base": result({"s1": "1000", "s2": "000"}, extra=[Timed(9, 9, 8.5, 8.9)]),
                                            "v1": result({"s1": "1111", "s2": "111"})})
    markdown = "\n".join(longform_markdown(made["longform"]))
    assert "Every model on 2 long-form sessions (7 verses, 0.3 min)" in markdown
    # base: 1 of 7 found, and one false verse in the sessions' 9 s of non-recitation; 6 edits of 7 verses
    assert "| base | int8 | offline | 22.2% | 14.3% | 50.0% | 85.7% | 100 / 100 | 6.67 | — | — | 0.050 | — |" \
        in markdown
    assert "| v1 | int8 | streamed | 100.0% | 100.0% | 100.0% | 0.0% | 100 / 100 | 0.00 | 1.2 / 1.5 | 0 | 0.050 | " \
        "+75.0 pts; +6 / −0 verses; sessions 2↑ 0↓; p=0.0312, Holm 0.0312 * |" in markdown
    assert "- offline (int8, 2 models): Kendall's tau +1.00; both put v1 first; by F1: v1, base." in markdown
    made["rows"] = [{**row, "versus_base": None if row["model"] == "base" else {
        "significant": True, "recovered": [1, 2], "regressed": [], "mcnemar_p": 0.01, "mcnemar_p_holm": 0.01,
        "deltas": {"sequence_accuracy": {"delta": 0.3}}}} for row in made["rows"]]
    best = choose({**made, "matcher": "ctc"})
    assert best["model"] == "v1"
    assert best["continuous_recitation"]["figures"]["int8"]["offline"]["f1"] == 1.0
    assert best["continuous_recitation"]["note"] == ("the continuous-recitation ranking agrees: v1 has the highest "
                                                     "verse F1 offline and streamed")


def test_an_export_is_held_to_the_bound_against_its_nemo_on_the_verses_it_found():
    """Where the .nemo is judged too, each export's loss of verses found is bounded as on the clips
    (4 of 7 verses lost: not fit at any margin the clips would allow); best.json's choice follows."""
    from quranft.evaluation.best import _with_longform

    nemo, int8 = result({"s1": "1111", "s2": "111"}), result({"s1": "1100", "s2": "100"})
    rows = [{"model": "v1", "sequence_accuracy": 0.6, "rank": 1}, {"model": "base", "sequence_accuracy": 0.3, "rank": 2}]
    made = {"rows": rows, "multiple_comparisons": {"alpha": 0.05}}
    made["longform"] = longform_section({"v1": {"formats": {"nemo": nemo, "int8": int8}},
                                         "base": {"formats": {"nemo": nemo, "int8": nemo}}},
                                        {"v1": "v1.json", "base": "base.json"}, made, max_seqacc_loss=0.05)
    lost = next(row for row in made["longform"]["rows"] if row["model"] == "v1" and row["format"] == "int8")
    assert (lost["versus_nemo"]["reference_only"], lost["versus_nemo"]["other_only"]) == (4, 0)
    assert not lost["versus_nemo"]["fit"] and lost["versus_nemo"]["loss"] == pytest.approx(4 / 7)
    assert "versus_nemo" not in next(row for row in made["longform"]["rows"] if row["format"] == "nemo")
    judged = {"int8": {"fit": True, "bound": 0.03, "browser_bound": None}}
    _with_longform(judged, made, "v1")
    assert not judged["int8"]["fit"] and judged["int8"]["longform_bound"] == lost["versus_nemo"]["bound"]


def test_a_verse_a_later_emission_overlaps_is_a_retraction():
    """Counted from the emissions (verse, interval, when emitted): 1:2 shown at 5 s, then 1:3 over
    the same audio at 7 s, is one verse the app would take back; verses apart in time are none."""
    from quranft.evaluation.longform_scoring import retractions

    emitted = [Timed(1, 1, 0.0, 2.0), Timed(1, 2, 3.0, 4.0), Timed(1, 3, 3.5, 5.0), Timed(1, 4, 6.0, 7.0)]
    assert retractions(emitted, [3.0, 5.0, 7.0, 8.5]) == 1
    assert retractions(emitted[:2] + emitted[3:], [3.0, 5.0, 8.5]) == 0
    # the same verse emitted twice over one stretch of audio: the first is taken back
    assert retractions([Timed(1, 1, 0.0, 2.0), Timed(1, 1, 0.5, 2.5)], [3.0, 4.0]) == 1
