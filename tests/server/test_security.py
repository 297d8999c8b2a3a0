"""`engine serve` listens on loopback by default and refuses any other address without a token."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from cli.app import app
from engine.config import Config, ServeConfig
from engine.errors import ConfigError
from engine.server.security import check_bind, is_loopback


@pytest.mark.parametrize(("host", "loopback"), [
    ("127.0.0.1", True), ("127.0.0.2", True), ("::1", True), ("[::1]", True), ("localhost", True),
    ("0.0.0.0", False), ("::", False), ("192.168.1.5", False), ("example.org", False),
])
def test_loopback_addresses(host, loopback):
    assert is_loopback(host) is loopback


def test_a_public_address_needs_the_token_variable_the_setting_names():
    settings = ServeConfig(token_env="MY_TOKEN")
    check_bind("127.0.0.1", settings, env={})
    check_bind("0.0.0.0", settings, env={"MY_TOKEN": "s3cret"})
    with pytest.raises(ConfigError, match=r"MY_TOKEN \(named by serve.token_env\)"):
        check_bind("0.0.0.0", settings, env={"ENGINE_SERVE_TOKEN": "not the one named"})
    with pytest.raises(ConfigError):
        check_bind("0.0.0.0", settings, env={"MY_TOKEN": "  "})


def test_the_defaults_are_loopback_port_8000_and_engine_serve_token():
    serve = Config.load(env={}).serve
    assert (serve.host, serve.port, serve.token_env) == ("127.0.0.1", 8000, "ENGINE_SERVE_TOKEN")
    assert Config.load(env={"ENGINE_SERVE_TOKEN_ENV": "KB_TOKEN"}).serve.token_env == "KB_TOKEN"


def test_the_cli_refuses_a_public_host_without_a_token(tmp_path):
    result = CliRunner().invoke(app, ["--store", str(tmp_path / "kb"), "serve", "--host", "0.0.0.0"])
    assert result.exit_code == 2
    assert "ConfigError" in result.output and "ENGINE_SERVE_TOKEN" in result.output
    assert not (tmp_path / "kb").exists()  # refused before opening anything
