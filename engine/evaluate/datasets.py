"""Evaluation datasets: image–caption pairs and articles with an image.

Files (UTF-8, a BOM is fine), one record per CSV row or JSONL line:

- pairs: ``image,caption``; an image may appear on several rows (one per caption).
- articles: ``id,title,text,image`` (``article_id`` is accepted for ``id``).

Image paths are relative to the ``images`` folder (default: the dataset file's folder)
unless absolute. Every bad row is found before any model runs; the error names the
file, the line and the reason for the first few.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass, field
from pathlib import Path

from engine.errors import ConfigError, InputError

IMAGE_KEYS = ("image", "image_path", "file", "filename")
ID_KEYS = ("id", "article_id")
SHOWN_PROBLEMS = 5


@dataclass(frozen=True)
class Pair:
    image: Path
    caption: str
    where: str  # "captions.csv:4", or "store image 12"


@dataclass(frozen=True)
class Article:
    id: str
    title: str
    text: str
    image: Path
    where: str


@dataclass
class PairDataset:
    """Images with one or more captions each."""

    name: str
    pairs: list[Pair]
    # Store datasets only: content hash of each image file, so stored vectors can be reused.
    content_hashes: dict[Path, str] = field(default_factory=dict)
    kind = "pairs"

    def images(self) -> list[Path]:
        return list(dict.fromkeys(p.image for p in self.pairs))

    def captions(self) -> list[str]:
        return list(dict.fromkeys(p.caption for p in self.pairs))

    def where(self) -> dict[Path, str]:
        """The first record that names each image (for error messages)."""
        out: dict[Path, str] = {}
        for p in self.pairs:
            out.setdefault(p.image, p.where)
        return out

    def describe(self) -> dict:
        return {
            "name": self.name,
            "kind": self.kind,
            "pairs": len(self.pairs),
            "images": len(self.images()),
            "captions": len(self.captions()),
        }


@dataclass
class ArticleDataset:
    """Articles (title and text), each illustrated by one image."""

    name: str
    articles: list[Article]
    kind = "articles"

    def images(self) -> list[Path]:
        return list(dict.fromkeys(a.image for a in self.articles))

    def where(self) -> dict[Path, str]:
        out: dict[Path, str] = {}
        for a in self.articles:
            out.setdefault(a.image, a.where)
        return out

    def describe(self) -> dict:
        return {"name": self.name, "kind": self.kind, "articles": len(self.articles), "images": len(self.images())}


Dataset = PairDataset | ArticleDataset


def load_dataset(path: Path, images: Path | None = None) -> Dataset:
    """Read a pairs or articles file (CSV or JSONL), telling them apart by their columns.

    Raises:
        ConfigError: the file is missing or its type or columns are not a dataset's.
        InputError: rows are bad (missing fields, images not found); names file:line.
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"dataset file {path} does not exist")
    root = Path(images) if images is not None else path.parent
    if not root.is_dir():
        raise ConfigError(f"image folder {root} does not exist")
    suffix = path.suffix.lower()
    if suffix == ".csv":
        rows = _csv_rows(path)
    elif suffix in (".jsonl", ".ndjson"):
        rows = _jsonl_rows(path)
    else:
        raise ConfigError(f"dataset file {path}: expected .csv or .jsonl, not {suffix or 'no extension'!r}")
    if not rows:
        raise InputError(str(path), "no records")
    columns = set().union(*(r.keys() for _, r in rows))
    if "caption" in columns:
        return _pairs(path, root, rows)
    if "title" in columns or "text" in columns:
        return _articles(path, root, rows)
    raise ConfigError(
        f"dataset file {path}: columns {sorted(columns)} are neither pairs (image, caption) "
        "nor articles (id, title, text, image)"
    )


def _csv_rows(path: Path) -> list[tuple[int, dict[str, str]]]:
    try:
        with open(path, encoding="utf-8-sig", newline="") as f:
            reader = csv.DictReader(f)
            if reader.fieldnames is None:
                return []
            rows = []
            start = reader.line_num + 1
            for row in reader:
                rows.append((start, {_key(k): (v or "").strip() for k, v in row.items() if k is not None}))
                start = reader.line_num + 1
            return rows
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise InputError(str(path), f"cannot be read as CSV: {exc}") from exc


def _jsonl_rows(path: Path) -> list[tuple[int, dict[str, str]]]:
    rows, problems = [], []
    try:
        lines = path.read_text(encoding="utf-8-sig").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(str(path), f"cannot be read: {exc}") from exc
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            problems.append(f"{path.name}:{number}: not JSON ({exc.msg})")
            continue
        if not isinstance(record, dict):
            problems.append(f"{path.name}:{number}: not a JSON object")
            continue
        rows.append((number, {_key(k): "" if v is None else str(v).strip() for k, v in record.items()}))
    _raise_problems(path, problems)
    return rows


def _key(name: str) -> str:
    return name.strip().lower()


def _first(row: dict[str, str], keys: tuple[str, ...]) -> str:
    return next((row[k] for k in keys if row.get(k)), "")


def _image(root: Path, value: str) -> Path:
    candidate = Path(value).expanduser()
    return candidate if candidate.is_absolute() else root / candidate


def _pairs(path: Path, root: Path, rows: list[tuple[int, dict[str, str]]]) -> PairDataset:
    pairs, problems = [], []
    for line, row in rows:
        where = f"{path.name}:{line}"
        image, caption = _first(row, IMAGE_KEYS), row.get("caption", "")
        problem = _missing(("image", image), ("caption", caption)) or _not_a_file(root, image)
        if problem:
            problems.append(f"{where}: {problem}")
            continue
        pairs.append(Pair(_image(root, image), caption, where))
    _raise_problems(path, problems)
    return PairDataset(path.name, pairs)


def _articles(path: Path, root: Path, rows: list[tuple[int, dict[str, str]]]) -> ArticleDataset:
    articles, problems, seen = [], [], {}
    for line, row in rows:
        where = f"{path.name}:{line}"
        ident, title, text, image = (
            _first(row, ID_KEYS),
            row.get("title", ""),
            row.get("text", ""),
            _first(row, IMAGE_KEYS),
        )
        problem = _missing(("id", ident), ("title", title), ("text", text), ("image", image)) or _not_a_file(
            root, image
        )
        if not problem and ident in seen:
            problem = f"id {ident!r} repeats line {seen[ident]}"
        if problem:
            problems.append(f"{where}: {problem}")
            continue
        seen[ident] = line
        articles.append(Article(ident, title, text, _image(root, image), where))
    _raise_problems(path, problems)
    return ArticleDataset(path.name, articles)


def _missing(*fields: tuple[str, str]) -> str | None:
    empty = [name for name, value in fields if not value]
    return f"missing {', '.join(empty)}" if empty else None


def _not_a_file(root: Path, value: str) -> str | None:
    image = _image(root, value)
    return None if image.is_file() else f"image {value!r} not found (looked for {image})"


def _raise_problems(path: Path, problems: list[str]) -> None:
    if not problems:
        return
    shown = "; ".join(problems[:SHOWN_PROBLEMS])
    more = f"; and {len(problems) - SHOWN_PROBLEMS} more" if len(problems) > SHOWN_PROBLEMS else ""
    raise InputError(str(path), f"{len(problems)} bad record(s): {shown}{more}")


def store_dataset(store) -> PairDataset:  # noqa: ANN001 - engine.store.store.Store
    """The store's images paired with the alt text and captions their pages gave them.

    Each distinct non-empty text becomes one caption of the image; generated captions
    are left out (they are the model's words, not ground truth).
    """
    from sqlalchemy import select

    from engine.store.schema import document_images, images

    query = (
        select(images.c.id, images.c.path, images.c.content_hash, document_images.c.alt, document_images.c.caption)
        .join(document_images, document_images.c.image_id == images.c.id)
        .order_by(images.c.id, document_images.c.document_id)
    )
    with store.reading() as conn:
        rows = conn.execute(query).all()
    pairs, hashes, seen = [], {}, set()
    for image_id, relpath, content_hash, alt, caption in rows:
        path = store.root / relpath
        for text in (caption, alt):
            text = " ".join((text or "").split())
            if text and (image_id, text) not in seen and path.is_file():
                seen.add((image_id, text))
                pairs.append(Pair(path, text, f"store image {image_id}"))
                hashes[path] = content_hash
    if not pairs:
        raise InputError(str(store.root), "the store has no images with alt text or a caption to evaluate")
    return PairDataset(f"store {store.root}", pairs, hashes)
