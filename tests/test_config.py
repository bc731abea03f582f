"""Config: precedence, env parsing, *_file secrets, validation messages, and openpanel.toml == defaults."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

import msgspec
import pytest

from openpanel_lite import config as cfgmod
from openpanel_lite.config import Config, ConfigError, load, resolve_path

REPO = Path(__file__).resolve().parent.parent


def _keys(struct: type[msgspec.Struct], prefix: str = "") -> set[str]:
    out: set[str] = set()
    for f in msgspec.structs.fields(struct):
        if isinstance(f.type, type) and issubclass(f.type, msgspec.Struct):
            out |= _keys(f.type, f"{prefix}{f.name}.")
        else:
            out.add(f"{prefix}{f.name}")
    return out


def _toml_keys(node: dict[str, Any], prefix: str = "") -> set[str]:
    out: set[str] = set()
    for k, v in node.items():
        if isinstance(v, dict):
            out |= _toml_keys(v, f"{prefix}{k}.")
        else:
            out.add(f"{prefix}{k}")
    return out


def test_openpanel_toml_lists_every_config_key_and_nothing_else() -> None:
    raw = tomllib.loads((REPO / "openpanel.toml").read_text())
    assert _toml_keys(raw) == _keys(Config)


def test_openpanel_toml_values_are_the_defaults() -> None:
    assert load(REPO / "openpanel.toml", {}) == Config()


def test_every_key_in_openpanel_toml_has_a_comment_block() -> None:
    # Each section's first key is preceded by a comment, or the key itself is documented inline above.
    lines = (REPO / "openpanel.toml").read_text().splitlines()
    undocumented = []
    for i, line in enumerate(lines):
        if "=" in line and not line.startswith("#") and not line.startswith("["):
            key = line.split("=")[0].strip()
            # Walk up over sibling keys until a comment or section header.
            j = i - 1
            while j >= 0 and "=" in lines[j] and not lines[j].startswith("#"):
                j -= 1
            if j < 0 or not (lines[j].startswith("#") or lines[j].startswith("[")):
                undocumented.append(key)
    assert undocumented == []


def test_precedence_defaults_file_env_overrides(tmp_path: Path) -> None:
    f = tmp_path / "c.toml"
    f.write_text('[server]\nport = 4000\nhost = "0.0.0.0"\n[ingest]\nflush_max_events = 7\n')
    assert load(None, {}).server.port == 3000
    c = load(f, {})
    assert (c.server.port, c.server.host, c.ingest.flush_max_events) == (4000, "0.0.0.0", 7)
    c = load(f, {"OPENPANEL_SERVER__PORT": "5000"})
    assert (c.server.port, c.server.host) == (5000, "0.0.0.0")
    c = load(f, {"OPENPANEL_SERVER__PORT": "5000"}, {"server.port": 6000, "server.host": None})
    assert (c.server.port, c.server.host) == (6000, "0.0.0.0")


def test_env_nested_bool_and_list_values() -> None:
    c = load(
        None,
        {
            "OPENPANEL_STORAGE__DUCKDB__MEMORY_LIMIT": "512MiB",
            "OPENPANEL_AUTH__ALLOW_REGISTRATION": "true",
            "OPENPANEL_SERVER__TRUSTED_PROXIES": "10.0.0.0/8, 192.168.1.1",
            "OPENPANEL_TEST_CLICKHOUSE_URL": "ignored: no double underscore",
            "UNRELATED": "x",
        },
    )
    assert c.storage.duckdb.memory_limit == "512MiB"
    assert c.auth.allow_registration is True
    assert c.server.trusted_proxies == ("10.0.0.0/8", "192.168.1.1")
    c = load(None, {"OPENPANEL_SERVER__TRUSTED_PROXIES": '["::1/128"]'})
    assert c.server.trusted_proxies == ("::1/128",)


def test_secret_from_file(tmp_path: Path) -> None:
    secret = tmp_path / "pw"
    secret.write_text("s3cr3t-value\n")
    c = load(
        None,
        {
            "OPENPANEL_STORAGE__CLICKHOUSE__PASSWORD_FILE": str(secret),
            "OPENPANEL_AUTH__SECRET_KEY_FILE": str(secret),
        },
    )
    assert c.storage.clickhouse.password == "s3cr3t-value"
    assert c.auth.secret_key == "s3cr3t-value"
    masked = cfgmod.to_dict(c)
    assert masked["storage"]["clickhouse"]["password"] == cfgmod.MASK
    assert masked["auth"]["secret_key"] == cfgmod.MASK
    assert "s3cr3t-value" not in cfgmod.to_toml(masked)


def test_secret_file_and_value_both_set_is_an_error(tmp_path: Path) -> None:
    secret = tmp_path / "pw"
    secret.write_text("a")
    with pytest.raises(
        ConfigError, match=r"^storage\.clickhouse\.password and storage\.clickhouse\.password_file"
    ):
        load(
            None,
            {
                "OPENPANEL_STORAGE__CLICKHOUSE__PASSWORD": "b",
                "OPENPANEL_STORAGE__CLICKHOUSE__PASSWORD_FILE": str(secret),
            },
        )


def test_missing_secret_file_names_the_key(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"^auth\.secret_key_file: cannot read"):
        load(None, {"OPENPANEL_AUTH__SECRET_KEY_FILE": str(tmp_path / "missing")})


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"OPENPANEL_SERVER__PORT": "abc"}, r"^server\.port: Expected `int`, got `str`"),
        ({"OPENPANEL_SERVER__PORT": "70000"}, r"^server\.port: must be 1\.\.65535"),
        ({"OPENPANEL_STORAGE__BACKEND": "mysql"}, r"^storage\.backend: Invalid enum value 'mysql'"),
        ({"OPENPANEL_STORAGE__BACKEND": "clickhouse"}, r"^storage\.clickhouse\.url: required"),
        ({"OPENPANEL_SERVER__TRUSTED_PROXIES": "nope"}, r"^server\.trusted_proxies: 'nope' is not an IP"),
        ({"OPENPANEL_STORAGE__DUCKDB__MEMORY_LIMIT": "lots"}, r"^storage\.duckdb\.memory_limit: not a size"),
        ({"OPENPANEL_SERVER__LOG_LEVEL": "loud"}, r"^server\.log_level: Invalid enum value 'loud'"),
        ({"OPENPANEL_INGEST__FLUSH_MAX_EVENTS": "0"}, r"^ingest\.flush_max_events: must be positive"),
        ({"OPENPANEL_NOPE__X": "1"}, r"^unknown setting OPENPANEL_NOPE__X"),
        ({"OPENPANEL_SERVER": "1"}, None),
    ],
)
def test_bad_values_name_the_key(env: dict[str, str], message: str | None) -> None:
    if message is None:
        load(None, env)  # no double underscore: not a config variable
        return
    with pytest.raises(ConfigError, match=message):
        load(None, env)


def test_unknown_key_in_file_is_named(tmp_path: Path) -> None:
    f = tmp_path / "c.toml"
    f.write_text("[server]\nprot = 1\n")
    with pytest.raises(ConfigError, match=r"^server\.prot: unknown key"):
        load(f, {})
    f.write_text("[sever]\nport = 1\n")
    with pytest.raises(ConfigError, match=r"^sever: unknown key"):
        load(f, {})


def test_invalid_toml_and_missing_file(tmp_path: Path) -> None:
    f = tmp_path / "c.toml"
    f.write_text("[server\n")
    with pytest.raises(ConfigError, match="is not valid TOML"):
        load(f, {})
    with pytest.raises(ConfigError, match="config file not found"):
        load(tmp_path / "missing.toml", {})


def test_resolve_path_order(tmp_path: Path) -> None:
    (tmp_path / "openpanel.toml").write_text("")
    assert resolve_path("x.toml", {"OPENPANEL_CONFIG": "y.toml"}, tmp_path) == Path("x.toml")
    assert resolve_path(None, {"OPENPANEL_CONFIG": "y.toml"}, tmp_path) == Path("y.toml")
    assert resolve_path(None, {}, tmp_path) == tmp_path / "openpanel.toml"
    assert resolve_path(None, {}, tmp_path / "nowhere") is None


def test_base_url() -> None:
    assert load(None, {}).base_url == "http://127.0.0.1:3000"
    assert load(None, {"OPENPANEL_SERVER__HOST": "0.0.0.0", "OPENPANEL_SERVER__PORT": "80"}).base_url == (
        "http://127.0.0.1:80"
    )
    assert load(None, {"OPENPANEL_SERVER__PUBLIC_URL": "https://s.example.com/"}).base_url == (
        "https://s.example.com"
    )


def test_only_config_module_reads_the_environment() -> None:
    offenders = []
    for path in (REPO / "openpanel_lite").rglob("*.py"):
        if path.name == "config.py":
            continue
        text = path.read_text()
        if "os.environ" in text or "os.getenv" in text or "environ.get(" in text:
            offenders.append(str(path.relative_to(REPO)))
    assert offenders == []
