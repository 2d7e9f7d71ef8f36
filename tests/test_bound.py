"""The accuracy bound of an export before it is named: Tango's score interval of a paired
difference of proportions, the non-inferiority test built on it, the Deployable table's bound and
best.json's choice of the file to ship, on constructed benchmark results whose bounds are known."""

from __future__ import annotations

import json
import math

import pytest
from scipy.optimize import minimize_scalar
from scipy.stats import norm

from quranft.cli import main
from quranft.evaluation.statistics import non_inferiority, paired_difference_interval
from test_leaderboard import ALL_RIGHT, benchmark

Z = float(norm.ppf(0.975))


def outcomes(both: int, first_only: int, second_only: int, neither: int) -> tuple[list[int], list[int]]:
    """Paired 0/1 outcomes with the given counts of each kind of pair."""
    first = [1] * both + [1] * first_only + [0] * second_only + [0] * neither
    second = [1] * both + [0] * first_only + [1] * second_only + [0] * neither
    return first, second


def score_by_likelihood(delta: float, first_only: int, second_only: int, n: int) -> float:
    """Tango's score statistic with its nuisance share found by maximising the likelihood
    numerically, independently of the closed form the code uses."""
    def minus_log_likelihood(share):
        return -(first_only * math.log(share + delta) + second_only * math.log(share)
                 + (n - first_only - second_only) * math.log(1 - 2 * share - delta))

    low, high = max(0.0, -delta) + 1e-12, (1 - delta) / 2 - 1e-12
    share = minimize_scalar(minus_log_likelihood, bounds=(low, high), method="bounded",
                            options={"xatol": 1e-13}).x
    return (first_only - second_only - n * delta) / math.sqrt(n * (2 * share + delta * (1 - delta)))


def test_with_no_discordant_pair_the_bound_is_z_squared_over_n_plus_z_squared():
    """The common case of an export that computes what its .nemo does: 4.2 points on the demo's 87
    recitations, where a Wald interval has zero width."""
    interval = paired_difference_interval(*outcomes(47, 0, 0, 40))
    assert interval["ci"] == (-Z * Z / (87 + Z * Z), Z * Z / (87 + Z * Z))
    assert interval["ci"][1] == pytest.approx(0.0422875069441)
    record = non_inferiority(*outcomes(47, 0, 0, 40), margin=0.01)
    assert (record["fit"], record["resolvable"], record["samples_needed"]) == (False, False, 381)
    assert non_inferiority(*outcomes(0, 0, 0, 380), margin=0.01)["bound"] > 0.01
    assert non_inferiority(*outcomes(0, 0, 0, 381), margin=0.01)["bound"] < 0.01
    assert non_inferiority(*outcomes(0, 0, 0, 381), margin=0.01)["fit"]


@pytest.mark.parametrize("first_only, second_only, n", [(1, 0, 87), (0, 1, 87), (1, 2, 87), (3, 1, 61),
                                                         (1, 7, 21), (6, 16, 161), (40, 20, 160)])
def test_the_interval_ends_are_where_the_score_test_turns(first_only, second_only, n):
    """Each end solves |T| = z, T's nuisance share found by maximum likelihood apart from the code."""
    interval = paired_difference_interval(*outcomes(0, first_only, second_only, n - first_only - second_only))
    lower, upper = interval["ci"]
    assert interval["estimate"] == (first_only - second_only) / n and lower < interval["estimate"] < upper
    assert score_by_likelihood(lower, first_only, second_only, n) == pytest.approx(Z, abs=1e-6)
    assert score_by_likelihood(upper, first_only, second_only, n) == pytest.approx(-Z, abs=1e-6)
    swapped = paired_difference_interval(*outcomes(0, second_only, first_only, n - first_only - second_only))
    assert swapped["ci"] == pytest.approx((-upper, -lower), abs=1e-9)


def test_the_demos_discordant_counts_give_these_bounds():
    """On 87 recitations: regressed / recovered 0/1 (the demo's v2 int8), 1/0, 1/1, 1/2."""
    bounds = {(r, c): non_inferiority(*outcomes(40, r, c, 47 - r - c), margin=0.05)["bound"]
              for r, c in ((0, 1), (1, 0), (1, 1), (1, 2))}
    assert bounds == pytest.approx({(0, 1): 0.0312793, (1, 0): 0.0622720, (1, 1): 0.0521464, (1, 2): 0.0421105},
                                   abs=1e-7)


def test_an_export_that_gets_everything_wrong_is_bounded_at_one():
    interval = paired_difference_interval(*outcomes(0, 5, 0, 0))
    assert interval["estimate"] == 1.0 and interval["ci"][1] == 1.0
    assert not non_inferiority(*outcomes(0, 5, 0, 0), margin=0.5)["fit"]


def test_outcomes_that_are_not_paired_zeros_and_ones_are_refused():
    with pytest.raises(ValueError, match="different lengths: 2 and 1"):
        paired_difference_interval([1, 0], [1])
    with pytest.raises(ValueError, match="must be 0 or 1; got \\[2\\]"):
        paired_difference_interval([1, 2], [1, 1])
    with pytest.raises(ValueError, match="at least one sample"):
        paired_difference_interval([], [])
    with pytest.raises(ValueError, match="between 0 and 1; got 1.5"):
        non_inferiority([1], [1], margin=1.5)


# The constructed benchmarks: 8 recitations (test_leaderboard.benchmark); the .nemo of v1 gets all 8.
EIGHT = Z * Z / (8 + Z * Z)  # the bound of an export that agrees on all 8: 0.3244
ONE_REGRESSED = 0.4708882  # 1 of 8 regressed, none recovered


def with_file(name: str, right: set[str], fmt: str = "nemo", size: int = 1_000_000) -> dict:
    """test_leaderboard.benchmark's JSON with the file it is of."""
    record = benchmark(name, right)
    file = f"results/{name}/model.nemo" if fmt == "nemo" else f"results/{name}/export/{fmt}.onnx"
    record["model"].update(file=file, bytes=size, format=fmt if fmt == "nemo" else f"onnx-{fmt}")
    return record


def write_results(tmp_path, exports: dict[str, set[str]], margin: float, browser: dict | None = None
                  ) -> tuple[dict, dict]:
    """The leaderboard (base right on none, v1 on all 8, v1's exports as `exports` says: {format:
    samples right}; v1's browser check `browser` when given) and best.json, through the CLI as the
    workflow runs them."""
    results = tmp_path / "results"
    files, export_args = [], []
    for name, right in (("base", set()), ("v1", ALL_RIGHT)):
        path = results / name / "benchmark.json"
        path.parent.mkdir(parents=True)
        path.write_text(json.dumps(with_file(name, right)), encoding="utf-8")
        files.append(f"{name}={path}")
    sizes = {"fp32": 8_000_000, "int8": 4_000_000, "int4": 3_000_000}
    for fmt, right in exports.items():
        path = results / "v1" / "export" / f"benchmark.{fmt}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(with_file("v1", right, fmt, sizes[fmt])), encoding="utf-8")
        export_args.append(f"v1:{fmt}={path}")
    board = results / "leaderboard"
    browser_args = []
    if browser is not None:
        path = results / "v1" / "export" / "browser.json"
        path.write_text(json.dumps(browser), encoding="utf-8")
        browser_args = ["--browser", f"v1={path}"]
    assert main(["leaderboard", "--benchmarks", *files, "--markdown", f"{board}.md", "--json", f"{board}.json",
                 "--png", f"{board}.png", "--exports", *export_args, "--max-seqacc-loss", str(margin),
                 *browser_args]) == 0
    best = results / "best.json"
    assert main(["best-model", "--leaderboard", f"{board}.json", "--models", "base=results/base/model.nemo",
                 "v1=results/v1/model.nemo", "--export-formats", *exports, "--output", str(best)]) == 0
    return (json.loads((results / "leaderboard.json").read_text(encoding="utf-8")),
            json.loads(best.read_text(encoding="utf-8")))


def test_best_json_names_fp32_when_int8_is_not_fit_and_says_by_how_much(tmp_path):
    board, best = write_results(tmp_path, {"fp32": ALL_RIGHT, "int8": ALL_RIGHT - {"s3"}}, margin=0.4)
    rows = {row["format"]: row for row in board["deployable"]["rows"] if row["model"] == "v1"}
    assert board["deployable"]["max_seqacc_loss"] == 0.4
    assert rows["fp32"]["bound"]["bound"] == EIGHT and rows["fp32"]["bound"]["fit"]
    assert rows["int8"]["bound"]["bound"] == pytest.approx(ONE_REGRESSED, abs=1e-7)
    assert not rows["int8"]["bound"]["fit"] and rows["int8"]["bound"]["regressed"] == ["s3"]
    assert best["model"] == "v1" and best["export"]["format"] == "fp32"
    assert best["ship"] == "results/v1/export/model.onnx"
    assert best["export"]["formats"]["int8"]["over_margin"] == pytest.approx(ONE_REGRESSED - 0.4, abs=1e-7)
    assert best["export"]["reason"] == (
        "the smallest fit export (8.0 MB): its SeqAcc loss against the .nemo is at most 32.4 points (upper end of "
        "the 95% interval; 0 regressed, 0 recovered), below the margin of 40.0; int8 is not fit: bound 47.1 points, "
        "7.1 over the margin of 40.0 (1 regressed, 0 recovered)")
    markdown = (tmp_path / "results" / "leaderboard.md").read_text(encoding="utf-8")
    assert "| v1 | fp32 | 8.0 | 0.010 / 0.020 | 100.0% | 100.0% | — | 32.4 (yes; 0 / 0) |" in markdown
    assert "| v1 | int8 | 4.0 | 0.010 / 0.020 | 87.5% | 87.5% | — | 47.1 (no; 1 / 0) |" in markdown
    assert "**The file to ship: fp32**: the smallest fit export (8.0 MB)" in markdown


def test_the_smallest_fit_export_is_named(tmp_path):
    _, best = write_results(tmp_path, {"fp32": ALL_RIGHT, "int8": ALL_RIGHT, "int4": ALL_RIGHT - {"s3"}},
                            margin=0.4)
    assert best["export"]["format"] == "int8" and best["ship"] == "results/v1/export/model.int8.onnx"
    assert best["export"]["reason"].startswith("the smallest fit export (4.0 MB)")
    assert "; fp32 fit too, larger; int4 is not fit: bound 47.1 points" in best["export"]["reason"]


def test_a_bound_equal_to_the_margin_is_not_below_it(tmp_path):
    """A tie: the one-sided test at 2.5% does not reject a loss of exactly the margin."""
    board, best = write_results(tmp_path, {"fp32": ALL_RIGHT}, margin=EIGHT)
    row = next(row for row in board["deployable"]["rows"] if row["format"] == "fp32")
    assert row["bound"]["bound"] == EIGHT == row["bound"]["margin"] and not row["bound"]["fit"]
    assert best["export"]["format"] is None
    _, best = write_results(tmp_path / "above", {"fp32": ALL_RIGHT}, margin=math.nextafter(EIGHT, 1))
    assert best["export"]["format"] == "fp32"


def test_with_no_export_fit_best_json_names_the_nemo_and_says_the_corpus_cannot_show_one(tmp_path):
    board, best = write_results(tmp_path, {"fp32": ALL_RIGHT, "int8": ALL_RIGHT - {"s3"}}, margin=0.3)
    assert best["export"]["format"] is None and best["ship"] == "results/v1/model.nemo"
    assert best["files"]["exports"] == {"fp32": "results/v1/export/model.onnx",
                                        "int8": "results/v1/export/model.int8.onnx"}
    assert best["export"]["reason"] == (
        "no export is fit (fp32 is not fit: bound 32.4 points, 2.4 over the margin of 30.0 (0 regressed, 0 "
        "recovered); int8 is not fit: bound 47.1 points, 17.1 over the margin of 30.0 (1 regressed, 0 recovered)); "
        "the corpus cannot show any: with all 8 recitations agreeing, the bound is 32.4 points; it takes 9 "
        "recitations. Ship the .nemo, the model these figures are of; an app that needs ONNX: the fp32 export, "
        "whose transcripts and log-probs are checked against the .nemo's clip by clip at export (export.json)")
    markdown = (tmp_path / "results" / "leaderboard.md").read_text(encoding="utf-8")
    assert ("No export can be shown fit on this corpus: with all 8 recitations agreeing with the `.nemo`, the bound "
            "is still 32.4 points, not below the margin of 30.0; it takes at least 9 recitations") in markdown


def test_without_benchmarked_exports_best_json_names_the_nemo(tmp_path):
    _, best = write_results(tmp_path, {}, margin=0.4)
    assert best["export"] == {"format": None, "max_seqacc_loss": None, "formats": {},
                              "reason": "no export of v1 was benchmarked: ship its .nemo"}
    assert best["ship"] == "results/v1/model.nemo"


def browser_json(right: set[str], corpus: str = "c0rpus") -> dict:
    """A browser check's JSON (rule browser_check; the parts the bound reads) of v1's int8 export."""
    share = len(right) / len(ALL_RIGHT)
    return {"model": "v1", "corpus": {"sha256": corpus}, "matchers": {"primary": "ctc"},
            "runtime": {"chromium": "156", "onnxruntime_web": "1.30.0", "backend": "wasm", "threads": 1},
            "formats": {"int8": {"rows": {s: {"sequence_accuracy": float(s in right)} for s in sorted(ALL_RIGHT)},
                                 "summary": {"ctc": {"sequence_accuracy": share, "recall": share}},
                                 "latency": {"median_ms": 61.0, "p90_ms": 99.4}, "load": {"ms": 700.0},
                                 "parity": {"identical_share": 0.875}}}}


def test_the_browsers_figures_are_held_to_the_same_bound():
    from quranft.evaluation.deployable import DeployableError, browser_bound

    nemo = with_file("v1", ALL_RIGHT)
    record = browser_bound(nemo, browser_json(ALL_RIGHT - {"s3"}), "int8", "ctc", 0.4)
    assert record["bound"] == pytest.approx(ONE_REGRESSED, abs=1e-7) and not record["fit"]
    assert record["regressed"] == ["s3"] and record["recovered"] == []
    assert browser_bound(nemo, browser_json(ALL_RIGHT), "int8", "ctc", 0.4)["bound"] == EIGHT
    with pytest.raises(DeployableError, match="the browser check of v1: run on another corpus"):
        browser_bound(nemo, browser_json(ALL_RIGHT, corpus="other"), "int8", "ctc", 0.4)


def test_a_format_fit_in_python_but_not_in_the_browser_is_not_shipped(tmp_path):
    """What ships is judged in the runtime it ships to: int8 agrees with the .nemo in onnxruntime,
    but in the browser it loses s3; best.json names fp32 and says why int8 is not fit."""
    board, best = write_results(tmp_path, {"fp32": ALL_RIGHT, "int8": ALL_RIGHT}, margin=0.4,
                                browser=browser_json(ALL_RIGHT - {"s3"}))
    int8 = next(row for row in board["deployable"]["rows"] if row["model"] == "v1" and row["format"] == "int8")
    assert int8["bound"]["fit"] and not int8["browser"]["bound"]["fit"] and not int8["fit"]
    assert (int8["browser"]["latency_median_ms"], int8["browser"]["sequence_accuracy"]) == (61.0, 0.875)
    assert best["export"]["format"] == "fp32"
    assert best["export"]["formats"]["int8"]["browser_bound"] == pytest.approx(ONE_REGRESSED, abs=1e-7)
    assert best["export"]["reason"].endswith(
        "; int8 is not fit: in the browser, bound 47.1 points, 7.1 over the margin of 40.0 (1 regressed, 0 recovered)")
    markdown = (tmp_path / "results" / "leaderboard.md").read_text(encoding="utf-8")
    assert "| v1 | int8 | 4.0 | 0.010 / 0.020 | 100.0% | 100.0% | — | 32.4 (yes; 0 / 0) | 61 / 99 | 87.5% | " \
           "47.1 (no; 1 / 0) |" in markdown
