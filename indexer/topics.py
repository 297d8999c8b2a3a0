"""Topic files: one topic per line; blank lines and lines starting with # are skipped."""

from __future__ import annotations

from pathlib import Path

from engine.errors import InputError


def read_topics(path: Path) -> list[str]:
    """The topics in ``path``, in order, without duplicates."""
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise InputError(str(path), "topics file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(str(path), f"topics file unreadable: {exc}") from None
    topics = [" ".join(line.split()) for line in lines if line.strip() and not line.lstrip().startswith("#")]
    if not topics:
        raise InputError(str(path), "the topics file holds no topic")
    return list(dict.fromkeys(topics))
