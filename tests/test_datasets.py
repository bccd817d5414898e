"""Bundled MovieLens / Adult, and the loaders on tiny fixture files of every supported format."""

import gzip
from importlib import resources
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from recforge.datasets import Adult, MovieLens, adult, load_adult, load_movielens, movielens_small

SHARED = Path("/work/shared/data")
needs_shared = pytest.mark.skipif(not SHARED.is_dir(), reason="/work/shared/data is not available")
pytestmark = pytest.mark.data

# ---------------------------------------------------------------------- bundled data
DATA_DIR = resources.files("recforge.datasets").joinpath("_data")


def test_bundle_is_small_compressed_and_licensed():
    files = {
        "ml-latest-small/ratings.csv.gz",
        "ml-latest-small/movies.csv.gz",
        "ml-latest-small/README.txt",
        "adult/adult.data.gz",
        "adult/adult.test.gz",
        "adult/README.txt",
    }
    total = 0
    for rel in files:
        res = DATA_DIR.joinpath(*rel.split("/"))
        assert res.is_file(), rel
        total += len(res.read_bytes())
    assert total < 2 * 2**20
    assert "GroupLens" in DATA_DIR.joinpath("ml-latest-small", "README.txt").read_text(
        encoding="utf-8"
    )
    licence = DATA_DIR.joinpath("adult", "README.txt").read_text(encoding="utf-8")
    assert (
        "CC BY 4.0" in licence and "Becker" in licence and "Kohavi" in licence and "1996" in licence
    )


def test_movielens_small_shapes_and_dtypes():
    ml = movielens_small()
    assert isinstance(ml, MovieLens)
    r, m = ml.ratings, ml.movies
    assert list(r.columns) == ["userId", "movieId", "rating", "timestamp"]
    assert r.shape == (100_836, 4)
    assert [str(t) for t in r.dtypes] == ["int64", "int64", "float32", "int64"]
    assert r["userId"].nunique() == 610 and r["movieId"].nunique() == 9_724
    assert r["rating"].min() == 0.5 and r["rating"].max() == 5.0
    assert list(m.columns) == ["movieId", "title", "genres"]
    assert m.shape == (9_742, 3) and m["movieId"].dtype == np.int64
    assert m.loc[m.movieId == 1, "genres"].item() == "Adventure|Animation|Children|Comedy|Fantasy"
    assert not m["title"].isna().any() and not m["genres"].isna().any()
    assert "MovieLens(ratings=100836 rows" in repr(ml)


def test_movielens_small_interactions():
    ml = movielens_small()
    x = ml.interactions()
    assert x.shape == (610, 9_724) and x.nnz == 100_836
    np.testing.assert_array_equal(x.user_map.ids, np.arange(1, 611))
    p = ml.interactions(min_rating=4.0)
    assert p.nnz == int((ml.ratings.rating >= 4).sum()) == 48_580
    assert p.user_map == x.user_map and p.item_map == x.item_map
    # fresh objects: mutating one copy does not leak into the next call
    ml.ratings.loc[0, "rating"] = 0.0
    assert movielens_small().ratings.loc[0, "rating"] == 4.0


@needs_shared
def test_bundled_movielens_equals_shared_copy():
    ml, ref = movielens_small(), load_movielens(SHARED / "ml-latest-small")
    pd.testing.assert_frame_equal(ml.ratings, ref.ratings)
    pd.testing.assert_frame_equal(ml.movies, ref.movies)
    raw = pd.read_csv(SHARED / "ml-latest-small" / "ratings.csv")
    np.testing.assert_array_equal(raw.to_numpy(), ml.ratings.to_numpy(dtype=np.float64))


@needs_shared
def test_bundled_adult_equals_shared_copy():
    a, ref = adult(), load_adult(SHARED / "adult")
    pd.testing.assert_frame_equal(a.train, ref.train)
    pd.testing.assert_frame_equal(a.test, ref.test)


ADULT_COLUMNS = [
    "age",
    "workclass",
    "fnlwgt",
    "education",
    "education_num",
    "marital_status",
    "occupation",
    "relationship",
    "race",
    "sex",
    "capital_gain",
    "capital_loss",
    "hours_per_week",
    "native_country",
    "income",
]


def test_adult_bundled_shapes_dtypes_labels():
    a = adult()
    assert isinstance(a, Adult)
    assert a.train.shape == (32_561, 15) and a.test.shape == (16_281, 15)
    assert list(a.train.columns) == ADULT_COLUMNS
    for c in ["age", "fnlwgt", "education_num", "capital_gain", "capital_loss", "hours_per_week"]:
        assert a.train[c].dtype == np.int64 and a.test[c].dtype == np.int64
    assert a.train["income"].dtype == np.int8
    assert int(a.y_train.sum()) == 7_841 and int(a.y_test.sum()) == 3_846
    assert abs(a.y_train.mean() - 0.2408) < 1e-3 and abs(a.y_test.mean() - 0.2362) < 1e-3
    assert a.X_train.shape == (32_561, 14) and "income" not in a.X_test.columns
    assert a.y_test.dtype == np.int8 and a.y_test.shape == (16_281,)
    # '?' became NaN, values are stripped
    assert a.train["workclass"].isna().sum() == 1_836
    assert a.train["occupation"].isna().sum() == 1_843
    assert a.train["native_country"].isna().sum() == 583
    for c in ["workclass", "education", "sex", "native_country"]:
        values = a.train[c].dropna()
        assert not values.str.startswith(" ").any() and not (values == "?").any()
    assert a.train.loc[0, "workclass"] == "State-gov"
    assert set(a.test["sex"]) == {"Male", "Female"}
    assert repr(a) == "Adult(train=32561 rows, test=16281 rows)"


# ---------------------------------------------------------------------- Adult files
def _bundled_adult_text(name):
    return gzip.decompress(DATA_DIR.joinpath("adult", name + ".gz").read_bytes()).decode("utf-8")


@pytest.fixture(scope="module")
def adult_ref():
    return adult()


def test_load_adult_with_header(tmp_path, adult_ref):
    f = tmp_path / "adult.test"
    f.write_text(_bundled_adult_text("adult.test"), encoding="utf-8")
    assert f.read_text().startswith("age, workclass")
    pd.testing.assert_frame_equal(load_adult(f), adult_ref.test)


def test_load_adult_without_header_and_uci_first_line(tmp_path, adult_ref):
    lines = _bundled_adult_text("adult.data").splitlines(keepends=True)
    f = tmp_path / "train.txt"
    f.write_text("".join(lines[1:]), encoding="utf-8")
    pd.testing.assert_frame_equal(load_adult(f), adult_ref.train)
    g = tmp_path / "adult.test"
    test_lines = _bundled_adult_text("adult.test").splitlines(keepends=True)
    g.write_text("|1x3 Cross validator\n" + "".join(test_lines[1:]) + "\n\n", encoding="utf-8")
    pd.testing.assert_frame_equal(load_adult(g), adult_ref.test)


def test_load_adult_directory_and_gzip(tmp_path, adult_ref):
    for name in ("adult.data", "adult.test"):
        (tmp_path / (name + ".gz")).write_bytes(
            DATA_DIR.joinpath("adult", name + ".gz").read_bytes()
        )
    a = load_adult(tmp_path)
    pd.testing.assert_frame_equal(a.train, adult_ref.train)
    pd.testing.assert_frame_equal(a.test, adult_ref.test)
    with pytest.raises(FileNotFoundError, match=r"adult.test"):
        (tmp_path / "adult.test.gz").unlink()
        load_adult(tmp_path)


ROW = "39, State-gov, 77516, Bachelors, 13, Never-married, Adm-clerical, Not-in-family, White, Male, 2174, 0, 40, "


def test_load_adult_labels_missing_values_blank_lines(tmp_path):
    f = tmp_path / "a.csv"
    f.write_text(
        ROW
        + "United-States, <=50K.\n"
        + ROW.replace("State-gov", "?")
        + "?, >50K\n"
        + ROW
        + "Cuba, >50K.\n"
        + ROW
        + "Cuba,<=50K\n\n\n",
        encoding="utf-8",
    )
    df = load_adult(f)
    assert df["income"].tolist() == [0, 1, 1, 0]
    assert df["income"].dtype == np.int8
    assert df["workclass"].isna().tolist() == [False, True, False, False]
    assert df["native_country"].tolist()[2:] == ["Cuba", "Cuba"] and pd.isna(
        df["native_country"][1]
    )


def test_load_adult_numeric_missing_becomes_float(tmp_path):
    f = tmp_path / "a.csv"
    f.write_text(
        ROW + "Cuba, >50K\n" + ROW.replace("39,", "?,", 1) + "Cuba, >50K\n", encoding="utf-8"
    )
    df = load_adult(f)
    assert df["age"].dtype == np.float64 and np.isnan(df["age"][1])
    assert df["fnlwgt"].dtype == np.int64


@pytest.mark.parametrize(
    "bad_line, reason",
    [
        ("39, State-gov, 77516, Bachelors, 13, Never-married, Adm-clerical", "expected 15 fields"),
        (ROW + "Cuba, maybe", "income"),
        (ROW.replace("77516", "lots") + "Cuba, >50K", "fnlwgt"),
        (ROW + "Cuba, >50K, extra", "expected 15 fields"),
    ],
)
def test_load_adult_corrupt_names_file_and_line(tmp_path, bad_line, reason):
    f = tmp_path / "adult.data"
    f.write_text(
        ROW + "Cuba, >50K\n" + ROW + "Cuba, >50K\n" + bad_line + "\n" + ROW + "Cuba, >50K\n",
        encoding="utf-8",
    )
    with pytest.raises(ValueError, match=rf"adult\.data, line 3: .*{reason}"):
        load_adult(f)


def test_load_adult_truncated_copy(tmp_path):
    text = _bundled_adult_text("adult.data")
    cut = text[: len(text) // 2]
    cut = cut[: cut.rfind(",")]  # stop in the middle of a row
    n_lines = cut.count("\n") + 1
    f = tmp_path / "adult.data"
    f.write_text(cut, encoding="utf-8")
    with pytest.raises(ValueError, match=rf"adult\.data, line {n_lines}: expected 15 fields"):
        load_adult(f)


def test_load_adult_missing_path(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_adult(tmp_path / "nope")


# ---------------------------------------------------------------------- MovieLens fixtures
# the same 5 ratings in every format
RATINGS = [
    (1, 10, 4.0, 881250949),
    (1, 20, 3.0, 881250950),
    (2, 10, 5.0, 881250951),
    (2, 30, 1.0, 881250952),
    (3, 20, 2.0, 881250953),
]
GENRES_100K = [
    "unknown",
    "Action",
    "Adventure",
    "Animation",
    "Children's",
    "Comedy",
    "Crime",
    "Documentary",
    "Drama",
    "Fantasy",
    "Film-Noir",
    "Horror",
    "Musical",
    "Mystery",
    "Romance",
    "Sci-Fi",
    "Thriller",
    "War",
    "Western",
]


def _flags(*names):
    return "|".join("1" if g in names else "0" for g in GENRES_100K)


def write_ml100k(folder: Path, with_genre_file=True):
    folder.mkdir(exist_ok=True)
    (folder / "u.data").write_text("".join(f"{u}\t{i}\t{int(r)}\t{t}\n" for u, i, r, t in RATINGS))
    items = [
        f"10|Café Noir (1995)|01-Jan-1995||http://x|{_flags('Comedy', 'Drama')}",
        f"20|Star Wars: Episode IV (1977)|01-Jan-1977||http://y|{_flags('Action', 'Sci-Fi')}",
        f"30|Nothing (1996)|||http://z|{_flags()}",
    ]
    (folder / "u.item").write_bytes(("\n".join(items) + "\n").encode("latin-1"))
    if with_genre_file:
        (folder / "u.genre").write_text(
            "".join(f"{g}|{j}\n" for j, g in enumerate(GENRES_100K)) + "\n"
        )
    return folder


def write_ml1m(folder: Path):
    folder.mkdir(exist_ok=True)
    (folder / "ratings.dat").write_text(
        "".join(f"{u}::{i}::{int(r)}::{t}\n" for u, i, r, t in RATINGS)
    )
    movies = [
        "10::Café Noir (1995)::Comedy|Drama",
        "20::Star Wars: Episode IV (1977)::Action|Sci-Fi",
        "30::Nothing (1996)::(no genres listed)",
    ]
    (folder / "movies.dat").write_bytes(("\n".join(movies) + "\n").encode("latin-1"))
    return folder


def write_ml_latest(folder: Path, gz=False):
    folder.mkdir(exist_ok=True)
    ratings = "userId,movieId,rating,timestamp\n" + "".join(
        f"{u},{i},{r},{t}\n" for u, i, r, t in RATINGS
    )
    movies = (
        "movieId,title,genres\n10,Café Noir (1995),Comedy|Drama\n"
        '20,"Star Wars: Episode IV, A New Hope (1977)",Action|Sci-Fi\n30,Nothing (1996),(no genres listed)\n'
    )
    if gz:
        (folder / "ratings.csv.gz").write_bytes(gzip.compress(ratings.encode()))
        (folder / "movies.csv.gz").write_bytes(gzip.compress(movies.encode()))
    else:
        (folder / "ratings.csv").write_text(ratings, encoding="utf-8")
        (folder / "movies.csv").write_text(movies, encoding="utf-8")
    return folder


def _expected_ratings():
    df = pd.DataFrame(RATINGS, columns=["userId", "movieId", "rating", "timestamp"])
    return df.astype(
        {"userId": np.int64, "movieId": np.int64, "rating": np.float32, "timestamp": np.int64}
    )


@pytest.mark.parametrize(
    "writer", [write_ml100k, write_ml1m, write_ml_latest, lambda d: write_ml_latest(d, gz=True)]
)
def test_every_format_gives_the_same_ratings(tmp_path, writer):
    folder = writer(tmp_path / "ml")
    ml = load_movielens(folder)
    pd.testing.assert_frame_equal(ml.ratings, _expected_ratings())
    assert list(ml.movies.columns) == ["movieId", "title", "genres"]
    assert ml.movies["movieId"].tolist() == [10, 20, 30]
    assert ml.movies["title"][0] == "Café Noir (1995)"
    assert ml.movies["genres"].tolist() == ["Comedy|Drama", "Action|Sci-Fi", "(no genres listed)"]
    x = ml.interactions(min_rating=3.0)
    assert x.shape == (3, 3) and x.nnz == 3


def test_ml100k_without_genre_file_and_ratings_file_path(tmp_path):
    folder = write_ml100k(tmp_path / "ml-100k", with_genre_file=False)
    ml = load_movielens(folder / "u.data")
    assert ml.movies["genres"][1] == "Action|Sci-Fi"
    assert ml.movies["title"][1] == "Star Wars: Episode IV (1977)"


def test_ml1m_ratings_file_path_and_title_with_colons(tmp_path):
    folder = write_ml1m(tmp_path / "ml-1m")
    ml = load_movielens(folder / "ratings.dat")
    assert ml.movies["title"][1] == "Star Wars: Episode IV (1977)"
    pd.testing.assert_frame_equal(ml.ratings, _expected_ratings())


def test_ml_latest_quoted_title(tmp_path):
    ml = load_movielens(write_ml_latest(tmp_path / "ml-latest") / "ratings.csv")
    assert ml.movies["title"][1] == "Star Wars: Episode IV, A New Hope (1977)"


def test_ratings_without_movies_file(tmp_path):
    folder = write_ml_latest(tmp_path / "ml")
    (folder / "movies.csv").unlink()
    ml = load_movielens(folder)
    assert len(ml.ratings) == 5 and ml.movies.shape == (0, 3)


def test_sniffed_ratings_file(tmp_path):
    f = tmp_path / "myratings.txt"
    f.write_text("".join(f"{u}::{i}::{int(r)}::{t}\n" for u, i, r, t in RATINGS))
    pd.testing.assert_frame_equal(load_movielens(f).ratings, _expected_ratings())
    g = tmp_path / "other.txt"
    g.write_text("hello\n")
    with pytest.raises(ValueError, match="not a MovieLens ratings file"):
        load_movielens(g)


def test_missing_paths(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_movielens(tmp_path / "nope")
    with pytest.raises(FileNotFoundError, match="no MovieLens ratings file"):
        load_movielens(tmp_path)


@pytest.mark.parametrize(
    "fmt, name, good, bad, line",
    [
        ("latest", "ratings.csv", "userId,movieId,rating,timestamp\n1,10,4.0,5\n", "1,20,4.0\n", 3),
        (
            "latest",
            "ratings.csv",
            "userId,movieId,rating,timestamp\n1,10,4.0,5\n",
            "1,20,abc,6\n",
            3,
        ),
        (
            "latest",
            "ratings.csv",
            "userId,movieId,rating,timestamp\n1,10,4.0,5\n",
            "1,x,4.0,6\n",
            3,
        ),
        ("latest", "ratings.csv", "1,10,4.0,5\n\n", "1,20,4.0,6,7\n", 3),
        ("1m", "ratings.dat", "1::10::4::5\n", "1::20::4\n", 2),
        ("1m", "ratings.dat", "1::10::4::5\n2::10::4::5\n", "1::20::four::6\n", 3),
        ("100k", "u.data", "1\t10\t4\t5\n", "1\t20\n", 2),
    ],
)
def test_corrupt_ratings_name_file_and_line(tmp_path, fmt, name, good, bad, line):
    f = tmp_path / name
    f.write_text(good + bad + good.splitlines()[-1] + "\n")
    with pytest.raises(ValueError, match=rf"{name}, line {line}: "):
        load_movielens(f)


def test_corrupt_movies_file(tmp_path):
    folder = write_ml_latest(tmp_path / "ml")
    with open(folder / "movies.csv", "a", encoding="utf-8") as fh:
        fh.write("40,Truncated (2000)\n")
    with pytest.raises(ValueError, match=r"movies\.csv, line 5: expected 3 fields"):
        load_movielens(folder)


def test_corrupt_bundled_style_gz(tmp_path):
    folder = tmp_path / "ml"
    folder.mkdir()
    (folder / "ratings.csv.gz").write_bytes(
        gzip.compress(b"userId,movieId,rating,timestamp\n1,2,3.0,4\n1,2\n")
    )
    with pytest.raises(ValueError, match=r"ratings\.csv\.gz, line 3"):
        load_movielens(folder)


def test_ml10m_style_utf8_movies(tmp_path):
    folder = write_ml1m(tmp_path / "ml-10m")
    (folder / "movies.dat").write_text("10::Amélie (2001)::Comedy|Romance\n", encoding="utf-8")
    assert load_movielens(folder).movies["title"].tolist() == ["Amélie (2001)"]


def test_undecodable_ratings_name_file_and_line(tmp_path):
    f = tmp_path / "ratings.csv"
    f.write_bytes(b"userId,movieId,rating,timestamp\n1,2,3.0,4\n1,3,\xff,5\n")
    with pytest.raises(ValueError, match=r"ratings\.csv, line 3: cannot be decoded"):
        load_movielens(f)
