"""The ``recforge`` console script on files written here: evaluate, fit/recommend/similar."""

import json
import os
import subprocess
import sys
import sysconfig
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import recforge
from recforge.data import Interactions, temporal_split
from recforge.evaluate import evaluate_recall
from recforge.recall import ItemCF, Popularity

SRC = str(Path(recforge.__file__).resolve().parent.parent)


def _script() -> list[str]:
    """The installed console script (``python -m recforge`` when recforge is not installed)."""
    for name in ("recforge", "recforge.exe"):
        path = Path(sysconfig.get_path("scripts")) / name
        if path.is_file():
            return [str(path)]
    return [sys.executable, "-m", "recforge"]


def run(*args, cwd, check=True):
    """Run ``recforge ARGS`` importing the recforge under test; returns the CompletedProcess."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([SRC, os.environ.get("PYTHONPATH", "")]))
    proc = subprocess.run(
        [*_script(), *map(str, args)], cwd=cwd, env=env, capture_output=True, text=True, timeout=600
    )
    if check:
        assert proc.returncode == 0, proc.stderr
    return proc


def fail(*args, cwd) -> str:
    """Run a command that must fail with a one-line message; return that line."""
    proc = run(*args, cwd=cwd, check=False)
    assert proc.returncode == 1, (proc.returncode, proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stderr
    errors = [line for line in proc.stderr.splitlines() if not line.startswith("recforge: ")]
    assert len(errors) == 1, proc.stderr
    return errors[0]


def clustered_log(seed=0, n_users=150, n_items=120, per_user=25) -> pd.DataFrame:
    """Users in 4 taste groups, each rating its own 30 items high: CF has something to find."""
    rng = np.random.default_rng(seed)
    rows = []
    for u in range(n_users):
        group = u % 4
        liked = rng.choice(np.arange(group * 30, group * 30 + 30), size=per_user - 5, replace=False)
        other = rng.choice(n_items, size=5, replace=False)
        for item in liked:
            rows.append((u + 1, int(item) + 1000, float(rng.choice([4.0, 4.5, 5.0]))))
        for item in other:
            if item + 1000 not in set(liked + 1000):
                rows.append((u + 1, int(item) + 1000, float(rng.choice([1.0, 2.0, 3.0]))))
    df = pd.DataFrame(rows, columns=["userId", "movieId", "stars"])
    df["time"] = rng.permutation(len(df)) + 1_600_000_000
    return df


@pytest.fixture(scope="module")
def log():
    return clustered_log()


@pytest.fixture
def csv(tmp_path, log):
    path = tmp_path / "log.csv"
    log.to_csv(path, index=False)
    return path


def in_process_split(log):
    x = Interactions.from_dataframe(
        log,
        user_col="userId",
        item_col="movieId",
        weight_col="stars",
        timestamp_col="time",
        duplicates="last",
    )
    return x, temporal_split(x.positives(4.0), test_fraction=0.2, min_interactions=5)


def test_evaluate_prints_the_demo_table(csv, log, tmp_path):
    out = run(
        "evaluate", csv, "--models", "popularity,itemcf", "--threads", "1", "-q", cwd=tmp_path
    ).stdout
    _x, (train, test) = in_process_split(log)
    assert "log.csv (user=userId, item=movieId, rating=stars, timestamp=time)" in out
    assert f"{len(log):,} interactions · 150 users · 120 items" in out
    assert "Recall @10 — full-catalogue ranking, train items filtered" in out
    lines = {
        line.split()[0]: line.split()
        for line in out.splitlines()
        if line.startswith("  ") and line.split()[0] in ("popularity", "itemcf")
    }
    expected = evaluate_recall(Popularity().fit(train), train, test, k=10)
    ndcg, _precision, recall, _hit_rate, coverage = map(float, lines["popularity"][1:6])
    assert ndcg == pytest.approx(expected.ndcg, abs=5e-5)
    assert recall == pytest.approx(expected.recall, abs=5e-5)
    assert coverage == pytest.approx(expected.coverage, abs=5e-5)
    assert float(lines["itemcf"][1]) > ndcg  # the taste groups are there to be found


def test_evaluate_json_matches_the_library(csv, log, tmp_path):
    proc = run(
        "evaluate", csv, "--models", "itemcf", "--k", "5", "--json", "--threads", "1", cwd=tmp_path
    )
    result = json.loads(proc.stdout)
    assert (
        "fitting and evaluating itemcf" in proc.stderr
    )  # progress goes to stderr, never into the JSON
    x, (train, test) = in_process_split(log)
    data = result["data"]
    assert (data["ratings"], data["users"], data["items"]) == (x.nnz, 150, 120)
    assert (data["train"], data["test"]) == (train.nnz, test.nnz)
    assert data["min_rating"] == 4.0 and data["split"].startswith("temporal")
    (row,) = result["models"]
    expected = evaluate_recall(ItemCF(n_threads=1).fit(train), train, test, k=5)
    assert row["model"] == "itemcf" and row["k"] == 5 == result["k"]
    for metric in ("precision", "recall", "ndcg", "hit_rate", "coverage"):
        assert row[metric] == pytest.approx(getattr(expected, metric), rel=1e-9)


def test_evaluate_tsv_without_header_or_timestamps(tmp_path, log):
    path = tmp_path / "log.tsv"
    log[["userId", "movieId", "stars"]].to_csv(path, sep="\t", index=False, header=False)
    result = json.loads(
        run("evaluate", path, "--models", "popularity", "--json", "-q", cwd=tmp_path).stdout
    )
    assert result["data"]["columns"] == {
        "user": "user",
        "item": "item",
        "rating": "rating",
        "timestamp": None,
    }
    assert (
        result["data"]["split"].startswith("random split")
        and result["models"][0]["n_users_evaluated"] > 100
    )


def test_evaluate_named_columns_string_ids_and_dates(tmp_path, log):
    df = pd.DataFrame(
        {
            "who": "u" + log["userId"].astype(str),
            "what": "sku-" + log["movieId"].astype(str),
            "when": pd.to_datetime(log["time"], unit="s").dt.strftime("%Y-%m-%d %H:%M:%S"),
        }
    )
    path = tmp_path / "clicks.csv"
    df.to_csv(path, index=False)
    missing = fail("evaluate", path, cwd=tmp_path)
    assert "clicks.csv" in missing and "no user column" in missing and "--user-col" in missing
    result = json.loads(
        run(
            "evaluate",
            path,
            "--user-col",
            "who",
            "--item-col",
            "what",
            "--time-col",
            "when",
            "--models",
            "popularity",
            "--json",
            "-q",
            cwd=tmp_path,
        ).stdout
    )
    assert result["data"]["min_rating"] is None and result["data"]["positives"] == len(df)
    assert result["data"]["split"].startswith("temporal")


def test_evaluate_parquet(tmp_path, log):
    path = tmp_path / "log.parquet"
    try:
        import pyarrow  # noqa: F401
    except ImportError:
        path.write_bytes(b"PAR1")
        assert "pip install pyarrow" in fail("evaluate", path, cwd=tmp_path)
        return
    log.to_parquet(path)
    result = json.loads(
        run("evaluate", path, "--models", "popularity", "--json", "-q", cwd=tmp_path).stdout
    )
    assert result["data"]["ratings"] == len(log)


def test_evaluate_movielens_folder_with_content_based(tmp_path, log):
    folder = tmp_path / "ml"
    folder.mkdir()
    log.rename(columns={"stars": "rating", "time": "timestamp"}).to_csv(
        folder / "ratings.csv", index=False
    )
    items = np.unique(log["movieId"])
    genres = np.array(["Action", "Comedy", "Drama", "Horror"])[(items - 1000) // 30]
    pd.DataFrame({"movieId": items, "title": [f"m{i}" for i in items], "genres": genres}).to_csv(
        folder / "movies.csv", index=False
    )
    result = json.loads(
        run(
            "evaluate", folder, "--models", "content_based,popularity", "--json", "-q", cwd=tmp_path
        ).stdout
    )
    rows = {r["model"]: r for r in result["models"]}
    assert (
        rows["content_based"]["ndcg"] > rows["popularity"]["ndcg"]
    )  # the genres are the taste groups


def test_fit_recommend_similar_round_trip(csv, log, tmp_path):
    out = run(
        "fit",
        csv,
        "--model",
        "itemcf",
        "--param",
        "n_neighbors=20",
        "--threads",
        "1",
        "-o",
        "m.npz",
        "-q",
        cwd=tmp_path,
    ).stdout
    assert "saved ItemCF (150 users, 120 items) to m.npz" in out
    x, _ = in_process_split(log)
    model = ItemCF(n_neighbors=20, n_threads=1).fit(x.positives(4.0))
    assert ItemCF.load(tmp_path / "m.npz").get_params() == model.get_params()

    text = run("recommend", "m.npz", "3", "7", "--k", "4", cwd=tmp_path).stdout.splitlines()
    assert text[0] == "user\trank\titem\tscore"
    got = [line.split("\t") for line in text[1:]]
    items, scores = model.recommend([3, 7], k=4)
    assert [(int(u), int(r), int(i)) for u, r, i, _ in got] == [
        (u, r + 1, int(items[n, r])) for n, u in enumerate([3, 7]) for r in range(4)
    ]
    assert [float(s) for *_, s in got] == pytest.approx(scores.ravel().tolist(), rel=1e-5)

    similar = json.loads(run("similar", "m.npz", "1005", "--k", "3", "--json", cwd=tmp_path).stdout)
    items, scores = model.similar_items(1005, k=3)
    assert [d["item"] for d in similar["1005"]] == items.tolist()
    assert [d["score"] for d in similar["1005"]] == pytest.approx(scores.tolist(), rel=1e-6)


def test_string_ids_round_trip(tmp_path, log):
    df = log.assign(
        userId="u" + log["userId"].astype(str), movieId="m" + log["movieId"].astype(str)
    )
    df.to_csv(tmp_path / "s.csv", index=False)
    run("fit", "s.csv", "--model", "popularity", "-o", "p.npz", "-q", cwd=tmp_path)
    result = json.loads(run("recommend", "p.npz", "u1", "--k", "3", "--json", cwd=tmp_path).stdout)
    assert len(result["u1"]) == 3 and all(d["item"].startswith("m") for d in result["u1"])


@pytest.mark.parametrize(
    "content, message",
    [
        (
            "user,item,rating\n1,a,5\n2,b,x\n",
            "bad.csv, line 3: column 'rating': 'x' is not a finite number",
        ),
        ("user,item,rating\n1,a,5\n,b,4\n", "bad.csv, line 3: column 'user' is empty"),
        (
            "user,item,rating\n1,a,5\n2,b,-1\n",
            "bad.csv, line 3: column 'rating': negative value -1",
        ),
        (
            "user,item,rating\n1,a,5\n2,b,4,9,9\n",
            "bad.csv: cannot be parsed: Expected 3 fields in line 3, saw 5",
        ),
        ("user,item,rating\n", "bad.csv: no interactions"),
        ("", "bad.csv: the file is empty"),
    ],
)
def test_bad_files_name_the_file_and_line(tmp_path, content, message):
    (tmp_path / "bad.csv").write_text(content)
    assert message in fail("evaluate", "bad.csv", cwd=tmp_path)


def test_bad_command_lines(csv, tmp_path):
    assert "nope.csv: no such file or folder" in fail("evaluate", "nope.csv", cwd=tmp_path)
    assert "unknown model 'foo'; choose from popularity, itemcf" in fail(
        "evaluate", csv, "--models", "itemcf,foo", cwd=tmp_path
    )
    assert "content_based needs item features" in fail(
        "evaluate", csv, "--models", "content_based", cwd=tmp_path
    )
    assert "invalid parameter 'bogus' for ItemCF" in fail(
        "fit", csv, "--model", "itemcf", "--param", "bogus=1", "-o", "m.npz", cwd=tmp_path
    )
    assert "expected key=value" in fail(
        "fit", csv, "--model", "itemcf", "--param", "n_neighbors", "-o", "m.npz", cwd=tmp_path
    )
    assert "--rating-col 'score' is not a column" in fail(
        "evaluate", csv, "--rating-col", "score", cwd=tmp_path
    )
    (tmp_path / "implicit.csv").write_text("user,item\n1,a\n2,b\n")
    assert "--min-rating needs a rating column" in fail(
        "evaluate", "implicit.csv", "--min-rating", "3", cwd=tmp_path
    )
    proc = run("evaluate", csv, "--k", "0", cwd=tmp_path, check=False)
    assert proc.returncode == 2 and "must be >= 1" in proc.stderr  # argparse usage error


def test_bad_model_files_and_ids(csv, tmp_path):
    run("fit", csv, "--model", "popularity", "-o", "p.npz", "-q", cwd=tmp_path)
    assert "unknown user_id 99999" in fail("recommend", "p.npz", "99999", cwd=tmp_path)
    assert "user id 'abc' is not an integer" in fail("recommend", "p.npz", "abc", cwd=tmp_path)
    assert "unknown item_id 5" in fail("similar", "p.npz", "5", cwd=tmp_path)
    (tmp_path / "text.npz").write_text("not a model")
    assert "text.npz is not a recforge model file" in fail(
        "recommend", "text.npz", "1", cwd=tmp_path
    )
    truncated = (tmp_path / "p.npz").read_bytes()[:200]
    (tmp_path / "cut.npz").write_bytes(truncated)
    assert "cut.npz" in fail("recommend", "cut.npz", "1", cwd=tmp_path)
    assert "missing.npz: no such model file" in fail("similar", "missing.npz", "1", cwd=tmp_path)


@pytest.mark.parametrize(
    "command", ["evaluate", "fit", "recommend", "similar", "demo", "info", "warmup"]
)
def test_help_has_examples(command, tmp_path):
    out = run(command, "--help", cwd=tmp_path).stdout
    assert "examples:" in out and f"recforge {command}" in out
