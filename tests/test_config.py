"""Config layering: defaults < TOML file < ENGINE_* environment < flags."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.config import Config
from engine.errors import ConfigError


def test_defaults_without_any_file(tmp_path):
    config = Config.load(env={"ENGINE_CONFIG": ""}, overrides={})
    assert config.text.model == "all-MiniLM-L6-v2"
    assert config.clip.model == "ViT-B-32" and config.clip.pretrained == "laion2b_s34b_b79k"
    assert config.store.path.name == "engine"


def test_file_then_env_then_flags_take_precedence(tmp_path):
    file = tmp_path / "config.toml"
    file.write_text('[store]\npath = "/from/file"\n[ask]\nk = 3\nmax_images = 4\n[clip]\nenabled = true\n')
    env = {"ENGINE_ASK_K": "5", "ENGINE_CLIP_ENABLED": "false"}
    config = Config.load(file, env=env, overrides={"store.path": "/from/flag", "ask.max_images": None})
    assert config.store.path == Path("/from/flag")  # flag beats file
    assert config.ask.k == 5  # env beats file
    assert config.ask.max_images == 4  # a None flag means "not given"
    assert config.clip.enabled is False  # env strings become booleans


def test_config_file_named_by_env(tmp_path):
    file = tmp_path / "c.toml"
    file.write_text("[text]\nbatch_size = 7\n")
    assert Config.load(env={"ENGINE_CONFIG": str(file)}).text.batch_size == 7


@pytest.mark.parametrize(
    "content, message",
    [
        ("[nope]\nx = 1\n", "unknown config section 'nope'"),
        ("[ask]\nkk = 1\n", "unknown key ask.kk"),
        ("[ask]\nk = 'many'\n", "ask.k"),
        ("[ask\n", "config file"),
    ],
)
def test_bad_config_file_names_the_file_and_key(tmp_path, content, message):
    file = tmp_path / "bad.toml"
    file.write_text(content)
    with pytest.raises(ConfigError, match=message) as info:
        Config.load(file, env={})
    assert str(file) in str(info.value)


def test_bad_env_value_names_the_variable_origin():
    with pytest.raises(ConfigError, match="environment: clip.enabled"):
        Config.load(env={"ENGINE_CONFIG": "", "ENGINE_CLIP_ENABLED": "maybe"})


def test_missing_named_config_file_is_an_error(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        Config.load(tmp_path / "absent.toml", env={})
