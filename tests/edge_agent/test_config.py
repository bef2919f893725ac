"""The agent's TOML configuration: defaults, the documented example, and clear refusals."""

from __future__ import annotations

import base64
import json
import logging
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from dockside.scanning import ScanReader
from edge_agent.config import (
    CONFIG_ENV,
    AgentConfig,
    ConfigError,
    configure_logging,
    default_config_path,
    load_config,
    parse_config,
    resolve_config_path,
)

EXAMPLE = Path(__file__).resolve().parents[2] / "installers" / "dockside-agent.toml"


def _public_key() -> str:
    raw = Ed25519PrivateKey.generate().public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    return base64.b64encode(raw).decode()


def _problems(text: str) -> str:
    with pytest.raises(ConfigError) as caught:
        parse_config(text, Path("agent.toml"))
    return caught.value.message


def test_the_documented_example_is_exactly_the_defaults() -> None:
    assert parse_config(EXAMPLE.read_text(), EXAMPLE) == AgentConfig()


def test_every_key_of_the_model_is_documented_in_the_example() -> None:
    text = EXAMPLE.read_text()
    for name, field in AgentConfig.model_fields.items():
        assert name in text, f"{name} is not documented"
        section = field.default
        for key in getattr(type(section), "model_fields", {}):
            assert f"\n{key} =" in text or f"\n# {key} =" in text, f"{name}.{key} is not documented"


def test_no_file_at_the_default_place_means_defaults(tmp_path: Path) -> None:
    config = load_config(None, env={"HOME": str(tmp_path)})
    assert config == AgentConfig()
    assert config.http.bind == "127.0.0.1:8100"
    assert config.packing.scale_wait_s == 3.0


def test_a_named_file_that_is_missing_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="there is no configuration file"):
        load_config(tmp_path / "nope.toml")
    with pytest.raises(ConfigError, match=CONFIG_ENV):
        load_config(None, env={CONFIG_ENV: str(tmp_path / "nope.toml")})


def test_the_option_wins_over_the_variable(tmp_path: Path) -> None:
    assert resolve_config_path("a.toml", env={CONFIG_ENV: "b.toml"}) == (Path("a.toml"), True)
    assert resolve_config_path(None, env={CONFIG_ENV: "b.toml"}) == (Path("b.toml"), True)
    assert resolve_config_path(None, env={})[1] is False


def test_per_os_defaults() -> None:
    assert default_config_path({}, "linux") == Path("/etc/dockside-agent/agent.toml")
    windows = default_config_path({"PROGRAMDATA": r"D:\Data"}, "win32")
    assert windows.parts[-3:] == ("Dockside", "Agent", "agent.toml")


def test_a_full_file_is_read(tmp_path: Path) -> None:
    ca = tmp_path / "ca.pem"
    ca.write_text("-----BEGIN CERTIFICATE-----\n")
    key = _public_key()
    config = parse_config(
        f"""
data_dir = "{tmp_path}"
[http]
bind = "0.0.0.0:9000"
[cloud]
address = "cloud.example:50051"
tls_ca = "{ca}"
[packing]
scale_wait_s = 1.5
carrier_label_limit_s = 12
print_confirm_timeout_s = 45
[log]
level = "debug"
format = "json"
[privacy]
personal_data_retention_days = 7
[update]
enabled = true
cloud_http = "https://cloud.example:8000/"
public_key = "{key}"
""",
        tmp_path / "agent.toml",
    )
    assert config.data_dir == tmp_path
    assert config.http.bind == "0.0.0.0:9000"
    assert config.cloud.tls_ca == ca
    assert config.packing.scale_wait_s == 1.5
    assert config.packing.carrier_label_limit_s == 12.0
    assert config.packing.print_confirm_timeout_s == 45.0
    assert config.privacy.personal_data_retention_days == 7
    assert config.update.cloud_http == "https://cloud.example:8000"


LIMIT = "packing.carrier_label_limit_s"
CONFIRM = "packing.print_confirm_timeout_s"


@pytest.mark.parametrize(
    ("text", "key", "fix"),
    [
        ("colour = 1", "colour", "unknown key"),
        ("[http]\nbindd = '1.2.3.4:5'", "http.bindd", "check its spelling"),
        ("[http]\nbind = 'localhost'", "http.bind", "HOST:PORT"),
        ("[http]\nbind = 'h:99999'", "http.bind", "HOST:PORT"),
        ("[packing]\nscale_wait_s = 0", "packing.scale_wait_s", "greater than or equal to 0.1"),
        ("[packing]\nscale_wait_s = 'soon'", "packing.scale_wait_s", "number"),
        ("[packing]\ncarrier_label_limit_s = 0.4", LIMIT, "greater than or equal to 0.5"),
        ("[packing]\ncarrier_label_limit_s = 61", LIMIT, "less than or equal to 60"),
        ("[packing]\ncarrier_label_limit_s = -1", "packing.carrier_label_limit_s", "0.5"),
        ("[packing]\ncarrier_label_limit_s = nan", "packing.carrier_label_limit_s", "finite number"),
        ("[packing]\ncarrier_label_limit_s = inf", "packing.carrier_label_limit_s", "finite number"),
        ("[packing]\ncarrier_label_limit_s = true", "packing.carrier_label_limit_s", "number"),
        ("[packing]\ncarrier_label_limit_s = '5'", "packing.carrier_label_limit_s", "number"),
        ("[packing]\ncarrier_label_limit_s = [5]", "packing.carrier_label_limit_s", "number"),
        ("[packing]\nprint_confirm_timeout_s = 0", CONFIRM, "greater than or equal to 1"),
        ("[packing]\nprint_confirm_timeout_s = 3601", CONFIRM, "less than or equal to 3600"),
        ("[packing]\nprint_confirm_timeout_s = nan", CONFIRM, "finite number"),
        ("[packing]\nprint_confirm_timeout_s = '30'", CONFIRM, "number"),
        ("[log]\nlevel = 'loud'", "log.level", "'debug', 'info', 'warning' or 'error'"),
        ("[log]\nformat = 'xml'", "log.format", "'text' or 'json'"),
        ("[privacy]\npersonal_data_retention_days = 0", "privacy.personal_data_retention_days", "1"),
        ("[cloud]\ntls_ca = '/no/such/ca.pem'", "cloud.tls_ca", "existing PEM file"),
        ("[update]\npublic_key = 'c2hvcnQ='", "update.public_key", "32-byte Ed25519"),
        ("[update]\ncloud_http = 'cloud:8000'", "update.cloud_http", "https://"),
        ("[update]\nenabled = true", "update.enabled", "update.cloud_http and update.public_key"),
        ("http = 'x'", "http", "valid dictionary"),
        (f"[scanner]\nprefix = '{'*' * 17}'", "scanner.prefix", "longer than 16 characters"),
        ('[scanner]\nsuffix = "\\u001d"', "scanner.suffix", "GS character"),
        ("[scanner]\norder_ais = []", "scanner.order_ais", "at least one"),
        ("[scanner]\norder_ais = ['40']", "scanner.order_ais", "not a GS1 application identifier"),
        ("[scanner]\norder_ais = [400]", "scanner.order_ais", "valid string"),
        ("[scanner]\norder_ais = '400'", "scanner.order_ais", "valid tuple"),
    ],
)
def test_bad_keys_are_refused_with_the_key_and_the_fix(text: str, key: str, fix: str) -> None:
    message = _problems(text)
    assert "agent.toml" in message
    assert key in message
    assert fix in message


def test_the_scanner_section_is_the_agents_scan_reader() -> None:
    config = parse_config("[scanner]\nprefix = ' * '\norder_ais = ['401', '400']\n", Path("agent.toml"))
    assert config.scanner.reader() == ScanReader(prefix="*", order_ais=("401", "400"))
    assert AgentConfig().scanner.reader() == ScanReader()


def test_every_problem_is_listed_at_once() -> None:
    message = _problems("[log]\nlevel = 'loud'\nformat = 'xml'\n[http]\nbind = 'x'")
    assert "3 problem(s)" in message


def test_a_file_that_is_not_toml_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "agent.toml"
    path.write_text("[http\nbind = 1\n")
    with pytest.raises(ConfigError, match=r"not valid TOML .*line 1"):
        load_config(path)


def test_an_unreadable_file_is_refused_clearly(tmp_path: Path) -> None:
    path = tmp_path / "agent.toml"
    path.write_bytes(b"\xff\xfe\x00bad")
    with pytest.raises(ConfigError, match="cannot read the configuration file"):
        load_config(path)


def test_json_logs_are_one_object_a_line(capsys: pytest.CaptureFixture[str]) -> None:
    config = parse_config("[log]\nformat = 'json'\nlevel = 'warning'", Path("agent.toml"))
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    try:
        configure_logging(config.log)
        logging.getLogger("dockside.test").warning("scale %s is slow", "S1")
        logging.getLogger("dockside.test").info("hidden")
    finally:
        root.handlers[:] = saved[0]
        root.setLevel(saved[1])
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1
    entry = json.loads(lines[0])
    assert (entry["level"], entry["logger"], entry["message"]) == (
        "warning",
        "dockside.test",
        "scale S1 is slow",
    )


def test_run_refuses_a_bad_config_before_starting(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from edge_agent.commands.cli import main

    path = tmp_path / "agent.toml"
    path.write_text("[packing]\nscale_wait_s = 120\n")
    result = CliRunner().invoke(main, ["run", "--config", str(path), "--data-dir", str(tmp_path / "d")])

    assert result.exit_code == 1
    assert "packing.scale_wait_s" in result.output
    assert "less than or equal to 60" in result.output
    assert not (tmp_path / "d").exists()
