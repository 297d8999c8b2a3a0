"""`--from` values sorted into local paths and web addresses; `.txt` files read as lists of URLs."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from indexer.sources import InputFailure

URL_SCHEMES = ("http://", "https://")
URL_LIST_SUFFIX = ".txt"


def is_url(value: str) -> bool:
    return value.strip().lower().startswith(URL_SCHEMES)


@dataclass(frozen=True)
class Inputs:
    """`--from` values sorted by kind: local paths, URLs (lists read), and unreadable lines."""

    paths: list[Path]
    urls: list[str]
    failures: list[InputFailure]


def sort_inputs(values: list[str | Path]) -> Inputs:
    """Split ``values`` into local paths and URLs; a ``.txt`` file is a list of URLs."""
    paths: list[Path] = []
    urls: list[str] = []
    failures: list[InputFailure] = []
    for value in values:
        text = str(value)
        if is_url(text):
            urls.append(text.strip())
        elif text.lower().endswith(URL_LIST_SUFFIX):
            listed, bad = read_url_list(Path(text))
            urls += listed
            failures += bad
        else:
            paths.append(Path(text))
    return Inputs(paths, list(dict.fromkeys(urls)), failures)


def read_url_list(path: Path) -> tuple[list[str], list[InputFailure]]:
    """The http(s) URLs of a text file, one per line (blank lines and ``#`` comments skipped);
    each other line, or a file that cannot be read, is a failure naming it."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return [], [InputFailure("page", str(path), "no such URL list file")]
    except UnicodeDecodeError as exc:
        return [], [InputFailure("page", str(path), f"a URL list must be UTF-8 text ({exc.reason} at byte {exc.start})")]
    except OSError as exc:
        return [], [InputFailure("page", str(path), f"cannot read the URL list: {exc.strerror or exc}")]
    urls, failures = [], []
    for number, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if is_url(line) and " " not in line:
            urls.append(line)
        else:
            failures.append(InputFailure("page", f"{path}:{number}", f"not an http(s) URL: {line[:200]!r}"))
    if not urls:  # not a list of URLs at all: one failure for the file, not one per line
        reason = "not a URL list: no line is an http(s) URL (a .txt input lists page, feed or sitemap URLs, one per line)"
        return [], [InputFailure("page", str(path), reason)]
    return urls, failures
