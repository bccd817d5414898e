"""`recforge demo` on the bundled data: the protocol of ANCHORS.md and the popularity row."""

import subprocess
import sys

import pytest

from recforge.demo import format_demo, run_demo


@pytest.fixture(scope="module")
def result():
    return run_demo(k=10, n_threads=1)


def test_split_matches_the_anchor_protocol(result):
    ml = result.movielens
    assert (ml["ratings"], ml["users"]) == (100_836, 610)
    assert (ml["train"], ml["test"], ml["test_users"], ml["universe"]) == (
        38_620,
        9_960,
        603,
        5_289,
    )


def test_popularity_row(result):
    (row,) = [r for r in result.recall_rows if r["model"] == "popularity"]
    # ANCHORS.md popularity: NDCG 0.0673, P 0.0511, R 0.0514, coverage 0.010. Measured here
    # 0.0669 / 0.0507 / 0.0508 / 0.0102 (the anchor's popularity definition is not stated; ours counts
    # users per item). Margin 0.001 catches any change of protocol or metric.
    assert row["ndcg"] == pytest.approx(0.0669, abs=1e-3)
    assert row["precision"] == pytest.approx(0.0507, abs=1e-3)
    assert row["recall"] == pytest.approx(0.0508, abs=1e-3)
    assert row["coverage"] == pytest.approx(0.0102, abs=5e-4)
    assert row["n_users_evaluated"] == 603 and row["n_users_skipped"] == 0


def test_adult_summary(result):
    assert (result.adult["train"], result.adult["test"]) == (32_561, 16_281)
    assert 0.23 < result.adult["positive_rate"] < 0.25


def test_format(result):
    text = format_demo(result)
    assert "popularity" in text and "5,289 items with a train positive" in text


def test_cli_demo_runs():
    out = subprocess.run(
        [sys.executable, "-m", "recforge", "demo", "--threads", "1"],
        capture_output=True,
        text=True,
        check=True,
        timeout=600,
    ).stdout
    assert "popularity" in out and "NDCG" in out


def test_cli_rejects_bad_k():
    proc = subprocess.run(
        [sys.executable, "-m", "recforge", "demo", "-k", "0"], capture_output=True, text=True
    )
    assert proc.returncode != 0 and "-k must be >= 1" in proc.stderr


def test_neural_rank_rows(result):
    """DNN and Wide&Deep rows (seed 0, 5 epochs): measured 0.911x; thresholds 0.909."""
    rows = {r["model"]: r for r in result.rank_rows}
    assert rows["DNN"]["auc"] > 0.909 and rows["Wide&Deep"]["auc"] > 0.909
