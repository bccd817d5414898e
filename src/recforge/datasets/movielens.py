"""MovieLens ratings and movies: the bundled ml-latest-small, and a loader for the GroupLens formats.

Formats (auto-detected):

========================  ==========================================  =================================
release                   ratings                                     movies
========================  ==========================================  =================================
ml-100k                   ``u.data`` (tab-separated, no header)       ``u.item`` ('|', 19 genre flags;
                                                                      names from ``u.genre``)
ml-1m (ml-10m)            ``ratings.dat`` ('::')                      ``movies.dat`` ('::')
ml-latest(-small), 20m,   ``ratings.csv`` (header row)                ``movies.csv`` (quoted CSV)
25m, 32m
========================  ==========================================  =================================

Files may also be gzip-compressed (``ratings.csv.gz`` ...). ``u.item`` and ``movies.dat`` are read
as UTF-8 when they decode as such, else as latin-1 (the encoding of ml-100k and ml-1m).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ..data import Interactions
from ._parse import FLOAT, INT, STR, Col, DecodeError, Source, detect_header, read_table

RATING_COLUMNS = ["userId", "movieId", "rating", "timestamp"]
_RATING_COLS = [
    Col("userId", INT),
    Col("movieId", INT),
    Col("rating", FLOAT),
    Col("timestamp", INT),
]
_NO_GENRES = "(no genres listed)"
#: ml-100k genre order when ``u.genre`` is absent
ML100K_GENRES = [
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

# release -> (ratings file names, movies file names), in detection order
_FORMATS = {
    "ml-100k": (["u.data", "u.data.gz"], ["u.item", "u.item.gz"]),
    "ml-1m": (["ratings.dat", "ratings.dat.gz"], ["movies.dat", "movies.dat.gz"]),
    "ml-latest": (["ratings.csv", "ratings.csv.gz"], ["movies.csv", "movies.csv.gz"]),
}


@dataclass(frozen=True, eq=False, repr=False)
class MovieLens:
    """A MovieLens release.

    Attributes
    ----------
    ratings : pandas.DataFrame
        One row per rating: ``userId`` int64, ``movieId`` int64, ``rating`` float32 (stars),
        ``timestamp`` int64 (seconds since the epoch).
    movies : pandas.DataFrame
        ``movieId`` int64, ``title`` str, ``genres`` str ('|'-separated genre names,
        ``"(no genres listed)"`` when none). Empty when the release's movies file is absent.

    Examples
    --------
    >>> from recforge.datasets import movielens_small
    >>> ml = movielens_small()
    >>> ml.ratings.shape, ml.movies.shape
    ((100836, 4), (9742, 3))
    >>> ml.interactions(min_rating=4.0)
    Interactions(n_users=610, n_items=9724, nnz=48580, timestamps=True)
    """

    ratings: pd.DataFrame
    movies: pd.DataFrame

    def interactions(self, min_rating=None) -> Interactions:
        """The ratings as :class:`~recforge.data.Interactions` (weight = rating, with timestamps).

        Parameters
        ----------
        min_rating : float, optional
            Keep only ratings >= ``min_rating`` (e.g. 4.0 for "positives"). The id maps are those
            of all ratings either way (users / items = sorted unique ``userId`` / ``movieId``), so
            interactions built with different thresholds share their indices.

        Returns
        -------
        Interactions
            Shape (n_users, n_items); if a user rated a movie twice, the latest rating is kept.
        """
        x = Interactions.from_dataframe(
            self.ratings,
            user_col="userId",
            item_col="movieId",
            weight_col="rating",
            timestamp_col="timestamp",
            duplicates="last",
        )
        return x if min_rating is None else x.positives(min_rating)

    def __repr__(self) -> str:
        return f"MovieLens(ratings={len(self.ratings)} rows, movies={len(self.movies)} rows)"


def _finish_ratings(df: pd.DataFrame) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "userId": df["userId"].to_numpy(dtype=np.int64),
            "movieId": df["movieId"].to_numpy(dtype=np.int64),
            "rating": df["rating"].to_numpy(dtype=np.float32),
            "timestamp": df["timestamp"].to_numpy(dtype=np.int64),
        }
    )


def _empty_movies() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "movieId": np.zeros(0, dtype=np.int64),
            "title": pd.Series([], dtype="str"),
            "genres": pd.Series([], dtype="str"),
        }
    )


def _finish_movies(movie_id, title, genres) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "movieId": np.asarray(movie_id, dtype=np.int64),
            "title": pd.Series(title, dtype="str"),
            "genres": pd.Series(genres, dtype="str"),
        }
    )


# ---------------------------------------------------------------------- per-format readers
def _ratings_100k(src: Source) -> pd.DataFrame:
    return read_table(src, _RATING_COLS, sep="\t")


def _utf8_or_latin1(read):
    """``read(encoding)`` as UTF-8 (ml-10m and later), else latin-1 (ml-100k, ml-1m)."""
    try:
        return read("utf-8")
    except DecodeError:
        return read("latin-1")


def _movies_100k(src: Source, genre_src: Source | None) -> pd.DataFrame:
    names = ML100K_GENRES
    if genre_src is not None:
        g = _utf8_or_latin1(
            lambda enc: read_table(
                genre_src,
                [Col("genre", STR), Col("index", INT)],
                sep="|",
                encoding=enc,
                engine="python",
            )
        )
        names = list(g.sort_values("index")["genre"])
    cols = [
        Col("movieId", INT),
        Col("title", STR),
        Col("release", STR, empty_ok=True),
        Col("video", STR, empty_ok=True),
        Col("url", STR, empty_ok=True),
    ] + [Col(f"g{j}", INT) for j in range(len(names))]
    df = _utf8_or_latin1(lambda enc: read_table(src, cols, sep="|", encoding=enc))
    flags = df[[f"g{j}" for j in range(len(names))]].to_numpy() != 0
    labels = np.array(names, dtype=object)
    genres = ["|".join(labels[row]) if row.any() else _NO_GENRES for row in flags]
    return _finish_movies(df["movieId"], df["title"], genres)


def _ratings_1m(src: Source) -> pd.DataFrame:
    return read_table(src, _RATING_COLS, sep="::", colon_pairs=True)


def _movies_1m(src: Source) -> pd.DataFrame:
    cols = [Col("movieId", INT), Col("title", STR), Col("genres", STR)]
    df = _utf8_or_latin1(lambda enc: read_table(src, cols, sep="::", encoding=enc, engine="python"))
    return _finish_movies(df["movieId"], df["title"], df["genres"])


def _ratings_latest(src: Source) -> pd.DataFrame:
    return read_table(
        src, _RATING_COLS, sep=",", skip=detect_header(src, sep=",", encoding="utf-8")
    )


def _movies_latest(src: Source) -> pd.DataFrame:
    skip = detect_header(src, sep=",", encoding="utf-8", quoted=True)
    df = read_table(
        src,
        [Col("movieId", INT), Col("title", STR), Col("genres", STR)],
        sep=",",
        quoted=True,
        skip=skip,
    )
    return _finish_movies(df["movieId"], df["title"], df["genres"])


def _read(
    release: str, ratings: Source, movies: Source | None, genres: Source | None = None
) -> MovieLens:
    if release == "ml-100k":
        r = _ratings_100k(ratings)
        m = _movies_100k(movies, genres) if movies is not None else _empty_movies()
    elif release == "ml-1m":
        r = _ratings_1m(ratings)
        m = _movies_1m(movies) if movies is not None else _empty_movies()
    else:
        r = _ratings_latest(ratings)
        m = _movies_latest(movies) if movies is not None else _empty_movies()
    return MovieLens(ratings=_finish_ratings(r), movies=m)


def _first_existing(folder: Path, names: list[str]) -> Path | None:
    for name in names:
        if (folder / name).is_file():
            return folder / name
    return None


def _sniff(path: Path) -> str:
    with Source.from_path(path).reading() as f:
        head = f.readline().decode("latin-1")
    if "::" in head:
        return "ml-1m"
    if "\t" in head:
        return "ml-100k"
    if "," in head:
        return "ml-latest"
    raise ValueError(
        f"{path}: not a MovieLens ratings file (expected u.data, ratings.dat or ratings.csv; "
        f"first line {head.strip()[:80]!r})"
    )


def load_movielens(path) -> MovieLens:
    """Load a MovieLens release from a folder, or from its ratings file.

    The format (ml-100k, ml-1m/10m, ml-latest/-small/20m/25m/32m) is detected from the file
    names (see the module docstring), falling back to the first line of the ratings file. The
    movies file is looked up beside the ratings file; without one, ``movies`` is empty.

    Parameters
    ----------
    path : str or os.PathLike
        A folder holding ``u.data`` / ``ratings.dat`` / ``ratings.csv`` (optionally ``.gz``), or
        one of those files.

    Returns
    -------
    MovieLens

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist or a folder holds no ratings file.
    ValueError
        If a file is truncated or corrupt; the message names the file and the line.

    Examples
    --------
    >>> import pathlib, tempfile
    >>> from recforge.datasets import load_movielens
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> _ = (d / "u.data").write_text("1\\t10\\t4\\t881250949\\n2\\t10\\t3\\t881250950\\n")
    >>> ml = load_movielens(d)
    >>> ml.ratings.shape, list(ml.ratings.columns)
    ((2, 4), ['userId', 'movieId', 'rating', 'timestamp'])
    """
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"path {str(p)!r} does not exist")
    if p.is_dir():
        for release in _FORMATS:
            ratings = _first_existing(p, _FORMATS[release][0])
            if ratings is not None:
                break
        else:
            raise FileNotFoundError(
                f"{p} holds no MovieLens ratings file "
                "(u.data, ratings.dat or ratings.csv, optionally .gz)"
            )
    else:
        ratings = p
        name = p.name.removesuffix(".gz")
        if name == "u.data":
            release = "ml-100k"
        elif name.endswith(".dat"):
            release = "ml-1m"
        elif name.endswith(".csv"):
            release = "ml-latest"
        else:
            release = _sniff(p)
    folder = ratings.parent
    movies = _first_existing(folder, _FORMATS[release][1])
    genres = _first_existing(folder, ["u.genre"]) if release == "ml-100k" else None
    return _read(
        release,
        Source.from_path(ratings),
        None if movies is None else Source.from_path(movies),
        None if genres is None else Source.from_path(genres),
    )


def movielens_small() -> MovieLens:
    """MovieLens ml-latest-small, bundled with recforge (no download, no network).

    100,836 ratings (0.5-5 stars) by 610 users on 9,724 of the 9,742 movies, 1996-2018.
    GroupLens, University of Minnesota; research use only, see
    ``recforge/datasets/_data/ml-latest-small/README.txt`` (cite Harper & Konstan, 2015).

    Returns
    -------
    MovieLens
        A fresh copy on every call.

    Examples
    --------
    >>> from recforge.datasets import movielens_small
    >>> ml = movielens_small()
    >>> ml.ratings.dtypes.astype(str).tolist()
    ['int64', 'int64', 'float32', 'int64']
    >>> ml.movies.loc[0, "title"], ml.movies.loc[0, "genres"]
    ('Toy Story (1995)', 'Adventure|Animation|Children|Comedy|Fantasy')
    """
    return _read(
        "ml-latest",
        Source.bundled("ml-latest-small/ratings.csv.gz"),
        Source.bundled("ml-latest-small/movies.csv.gz"),
    )
