"""``recforge pipeline fit|evaluate`` through the console script, on a CSV written here."""

import json
import textwrap
from pathlib import Path

import numpy as np
import pytest

from recforge.data import Interactions, temporal_split
from recforge.pipeline import TwoStage, evaluate_pipeline
from recforge.rank import GBDTClassifier
from recforge.recall import ItemCF, Popularity
from tests.test_cli import clustered_log, fail, run

EXAMPLE = Path(__file__).resolve().parent.parent / "docs" / "examples" / "pipeline.toml"

CONFIG = """\
n_candidates = 30
negatives_per_user = 10

[sources.pop]
model = "popularity"
quota = 10

[sources.itemcf]
quota = 20
params = { n_neighbors = 20 }

[ranker]
model = "gbdt"
params = { n_estimators = 20, max_depth = 3 }
"""


def in_process_pipeline(seed=0) -> TwoStage:
    """The pipeline of CONFIG built in Python, as ``--threads 1 --seed SEED`` builds it."""
    return TwoStage(
        {"pop": Popularity(n_threads=1), "itemcf": ItemCF(n_neighbors=20, n_threads=1)},
        quotas={"pop": 10, "itemcf": 20},
        n_candidates=30,
        negatives_per_user=10,
        ranker=GBDTClassifier(n_estimators=20, max_depth=3, n_threads=1, random_state=seed),
        n_threads=1,
        random_state=seed,
    )


@pytest.fixture(scope="module")
def log():
    return clustered_log(n_users=300)


@pytest.fixture(scope="module")
def positives(log):
    return Interactions.from_dataframe(
        log, user_col="userId", item_col="movieId", weight_col="stars", timestamp_col="time"
    ).positives(4.0)


@pytest.fixture
def files(tmp_path, log):
    log.to_csv(tmp_path / "log.csv", index=False)
    (tmp_path / "pipeline.toml").write_text(CONFIG)
    return tmp_path


def test_fit_then_recommend_equals_the_in_process_pipeline(files, positives):
    out = run(
        "pipeline",
        "fit",
        "log.csv",
        "--config",
        "pipeline.toml",
        "-o",
        "p.npz",
        "--threads",
        "1",
        "--seed",
        "3",
        "-q",
        cwd=files,
    ).stdout
    users = [1, 2, 50, 299]
    printed = run("recommend", "p.npz", *users, "--k", "5", "--json", cwd=files).stdout
    lists = json.loads(printed)

    expected = in_process_pipeline(seed=3).fit(positives)
    # what ranks is chosen on validation users (the GBDT or, on this small log, maybe a source)
    assert f"saved TwoStage (pop, itemcf -> {expected.ranked_by()}; 300 users" in out
    items, scores = expected.recommend(users, k=5)
    assert list(lists) == [str(u) for u in users]
    for user, row_items, row_scores in zip(users, items, scores):
        got = lists[str(user)]
        assert [entry["item"] for entry in got] == row_items.tolist()
        np.testing.assert_allclose([entry["score"] for entry in got], row_scores, rtol=1e-6)


def test_evaluate_prints_the_funnel_of_evaluate_pipeline(files, positives):
    proc = run(
        "pipeline",
        "evaluate",
        "log.csv",
        "--config",
        "pipeline.toml",
        "--k",
        "5",
        "--threads",
        "1",
        cwd=files,
    )
    assert "recforge: fitting the pipeline (pop, itemcf)" in proc.stderr
    out = proc.stdout
    assert "temporal split (last 20% per user)" in out
    for stage in ("pop", "itemcf", "rrf (no ranker)", "pipeline"):
        assert any(line.split()[: len(stage.split())] == stage.split() for line in out.splitlines())
    assert "candidate union R@30 (the ceiling)" in out

    result = json.loads(
        run(
            "pipeline",
            "evaluate",
            "log.csv",
            "--config",
            "pipeline.toml",
            "--k",
            "5",
            "--threads",
            "1",
            "--json",
            "-q",
            cwd=files,
        ).stdout
    )
    train, test = temporal_split(positives, test_fraction=0.2, min_interactions=5)
    report = evaluate_pipeline(in_process_pipeline().fit(train), train, test, k=5)
    assert result["data"]["train"] == train.nnz and result["data"]["test"] == test.nnz
    assert [r["model"] for r in result["rows"]] == [r["model"] for r in report.rows]
    assert result["ceiling"] == pytest.approx(report.ceiling)
    for got, want in zip(result["rows"], report.rows):
        assert got["ndcg"] == pytest.approx(want["ndcg"]), got["model"]


@pytest.mark.parametrize(
    "config, message",
    [
        ("n_candidatez = 30\n", "unknown key 'n_candidatez'"),
        ("[sources.itemcf]\nquotaa = 3\n", "unknown key 'sources.itemcf.quotaa'"),
        ("[features]\nwindow = [7]\n", "unknown key 'features.window'"),
        ("[ranker]\nmodel = 'gbdt'\nparms = {}\n", "unknown key 'ranker.parms'"),
        ("[sources.x]\nmodel = 'nosuchmodel'\n", "sources.x.model: unknown model 'nosuchmodel'"),
        ("[sources.itemcf]\nparams = { k = 3 }\n", "sources.itemcf.params: invalid parameter 'k'"),
        ("[ranker]\nmodel = 'forest'\n", "ranker.model: unknown ranker 'forest'"),
        (
            "[ranker]\nmodel = 'gbdt'\nparams = { trees = 3 }\n",
            "ranker.params: invalid parameter 'trees' for GBDTClassifier",
        ),
        ("n_candidates = 'many'\n", "n_candidates"),
        ("cut = 'sometimes'\n", "cut"),
        ("[sources\nitemcf = 1\n", "not valid TOML"),
    ],
)
def test_bad_config_names_the_file_and_the_key(files, config, message):
    (files / "bad.toml").write_text(config)
    error = fail("pipeline", "fit", "log.csv", "--config", "bad.toml", "-o", "p.npz", cwd=files)
    assert error.startswith("recforge pipeline: error: bad.toml: "), error
    assert message in error, error
    assert not (files / "p.npz").exists()


def test_missing_config_and_missing_timestamps(files, log):
    error = fail("pipeline", "fit", "log.csv", "--config", "no.toml", "-o", "p.npz", cwd=files)
    assert error == "recforge pipeline: error: no.toml: no such config file"
    log.drop(columns="time").to_csv(files / "untimed.csv", index=False)
    error = fail(
        "pipeline", "fit", "untimed.csv", "--config", "pipeline.toml", "-o", "p.npz", cwd=files
    )
    assert "untimed.csv" in error and "timestamp column" in error


def test_the_shipped_example_config_builds():
    from recforge._cli.pipeline import build_pipeline

    model, needs_side = build_pipeline(str(EXAMPLE), seed=0, n_threads=1)
    assert list(model.sources) == ["popularity", "itemcf", "lfm", "item2vec"]
    assert model.quotas == {"popularity": 10, "itemcf": 40, "lfm": 30, "item2vec": 20}
    assert model.sources["itemcf"].n_neighbors == 50
    assert model.sources["lfm"].random_state == 0
    assert isinstance(model.ranker, GBDTClassifier) and model.ranker.n_estimators == 100
    assert model.windows == (7, 30, 365) and not needs_side


def test_help_shows_a_config_that_builds(tmp_path):
    from recforge._cli.pipeline import build_pipeline

    out = run("pipeline", "fit", "--help", cwd=tmp_path).stdout
    assert "recforge pipeline fit ratings.csv --config pipeline.toml" in out
    shown = textwrap.dedent(out.split("the config (TOML", 1)[1].split("\n", 1)[1])
    (tmp_path / "shown.toml").write_text(shown)
    model, _ = build_pipeline(str(tmp_path / "shown.toml"))
    assert list(model.sources) == ["itemcf", "pop"] and model.n_candidates == 100
