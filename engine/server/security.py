"""Where the server may listen: loopback always; any other address only with a token configured."""

from __future__ import annotations

import ipaddress
import os
from typing import Mapping

from engine.config import ServeConfig
from engine.errors import ConfigError


def is_loopback(host: str) -> bool:
    """Whether ``host`` only reaches this machine; a host name other than localhost counts as not."""
    if host.strip().lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_bind(host: str, settings: ServeConfig, env: Mapping[str, str] | None = None) -> None:
    """Refuse a non-loopback ``host`` unless the token variable (``serve.token_env``) is set.

    Raises:
        ConfigError: naming the variable and the setting.
    """
    env = os.environ if env is None else env
    if is_loopback(host) or env.get(settings.token_env, "").strip():
        return
    raise ConfigError(
        f"refusing to listen on {host}, which is not a loopback address, without an API token: "
        f"set the environment variable {settings.token_env} (named by serve.token_env) to a secret, "
        f"or listen on 127.0.0.1"
    )
