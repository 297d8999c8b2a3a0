"""Joining a Ray cluster for one run (or starting a local Ray instance), and what it offers."""

from __future__ import annotations

import logging
import os

# Before Ray starts: its C++ core logs each actor whose constructor arguments sit in the object
# store (every Ray Data actor) as an error; failures still reach the run as Python exceptions.
os.environ.setdefault("RAY_BACKEND_LOG_LEVEL", "fatal")
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from engine.config import RayConfig
from engine.errors import ConfigError

INSTALL_HINT = "pip install 'engine[ray]'"


@dataclass(frozen=True)
class Resources:
    cpus: float
    gpus: float


def import_ray() -> Any:
    """The ray module, or a ConfigError saying how to install it."""
    try:
        import ray
        import ray.data  # noqa: F401 - the embedding stage runs on Ray Data
    except ImportError as exc:
        raise ConfigError(f"--executor ray needs Ray with Ray Data ({exc}); install it with: {INSTALL_HINT}") from None
    return ray


@contextmanager
def connected(config: RayConfig) -> Iterator[Any]:
    """Ray, connected for the block: to ``ray.address``, else to a local instance started here
    (and shut down after). An instance the caller already initialised is used as it is."""
    ray = import_ray()
    _quiet(ray)
    if ray.is_initialized():
        yield ray
        return
    options: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False, "logging_level": logging.ERROR}
    if config.address:
        options["address"] = config.address
    else:
        # "local": a new instance even where `ray start` left a cluster running (plain ray.init joins it).
        options.update(address="local", num_cpus=config.num_cpus or os.cpu_count() or 1)
    try:
        ray.init(**options)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        where = config.address or "a local instance"
        raise ConfigError(f"cannot start or join the Ray cluster ({where}, ray.address): {exc}") from None
    try:
        yield ray
    finally:
        ray.shutdown()


def _quiet(ray: Any) -> None:
    """Ray's progress lines would bury the run's own progress; its errors still reach the run."""
    from ray.data import DataContext

    DataContext.get_current().enable_progress_bars = False
    for name in ("ray", "ray.data"):
        logging.getLogger(name).setLevel(logging.ERROR)


def cluster_resources(ray: Any) -> Resources:
    total = ray.cluster_resources()
    return Resources(float(total.get("CPU", 0)), float(total.get("GPU", 0)))
