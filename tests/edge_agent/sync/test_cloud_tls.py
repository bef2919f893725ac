"""Which TLS files the sync channel uses: options, else [cloud] tls_* keys, else enrollment's record."""

from __future__ import annotations

from pathlib import Path

import pytest

from edge_agent.config import CloudSection
from edge_agent.sync.cloud_tls import (
    TLS_FILENAME,
    CloudTls,
    CloudTlsError,
    load_enrolled_tls,
    resolve_cloud_tls,
    save_enrolled_tls,
)


def _pem(path: Path) -> Path:
    path.write_text("-----BEGIN CERTIFICATE-----\nMA==\n-----END CERTIFICATE-----\n")
    return path


def test_options_win_then_config_then_the_enrolled_record(tmp_path: Path) -> None:
    recorded, configured, given = (_pem(tmp_path / f"{n}.pem") for n in ("recorded", "configured", "given"))
    save_enrolled_tls(tmp_path, CloudTls(ca=recorded))
    assert resolve_cloud_tls(CloudSection(), tmp_path) == CloudTls(ca=recorded.resolve())
    section = CloudSection(tls_ca=configured)
    assert resolve_cloud_tls(section, tmp_path) == CloudTls(ca=configured)
    assert resolve_cloud_tls(section, tmp_path, ca=given) == CloudTls(ca=given)


def test_enrolling_without_tls_leaves_no_record(tmp_path: Path) -> None:
    save_enrolled_tls(tmp_path, CloudTls(ca=_pem(tmp_path / "ca.pem")))
    save_enrolled_tls(tmp_path, CloudTls())
    assert not (tmp_path / TLS_FILENAME).exists()
    assert resolve_cloud_tls(CloudSection(), tmp_path) == CloudTls()
    assert resolve_cloud_tls(CloudSection(), tmp_path).credentials() is None


@pytest.mark.parametrize("content", ["{not json", "[1, 2]"])
def test_a_broken_record_says_how_to_fix_it(tmp_path: Path, content: str) -> None:
    (tmp_path / TLS_FILENAME).write_text(content)
    with pytest.raises(CloudTlsError, match=r"tls_ca/tls_cert/tls_key|tls_\*"):
        load_enrolled_tls(tmp_path)


def test_a_half_client_pair_and_a_non_pem_file_are_refused(tmp_path: Path) -> None:
    with pytest.raises(CloudTlsError, match="both --tls-cert and --tls-key"):
        resolve_cloud_tls(CloudSection(), tmp_path, cert=tmp_path / "a.pem")
    junk = tmp_path / "junk.pem"
    junk.write_text("not a certificate")
    with pytest.raises(CloudTlsError, match="is not PEM"):
        CloudTls(ca=junk).credentials()
