"""`knet apiserver` refuses authorization modes and admission plugins it does not know, as a
usage error naming the flag (kube-apiserver exits the same way), before opening any store."""

from __future__ import annotations

from click.testing import CliRunner

from knet.cli.apiserver import apiserver


def _run(tmp_path, *flags: str):
    return CliRunner().invoke(apiserver, ["--data-dir", str(tmp_path), "--allow-insecure-http", *flags])


def test_unknown_authorization_mode_is_a_usage_error(tmp_path):
    result = _run(tmp_path, "--authorization-mode=Node,Webhooks")
    assert result.exit_code == 2
    assert "Invalid value for --authorization-mode: unknown authorization mode 'Webhooks'" in result.output


def test_unknown_admission_plugin_is_a_usage_error(tmp_path):
    result = _run(tmp_path, "--enable-admission-plugins=NodeRestriction,Bogus")
    assert result.exit_code == 2
    assert "Invalid value for --enable-admission-plugins: unknown admission plugin 'Bogus'" in result.output
