"""The command line: errors as one clear line and exit code 2, and the trigger reference."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
import yaml

from metrics_adapter import __version__
from metrics_adapter.cli import _parser, main, settings_from, trigger_markdown, trigger_reference
from metrics_adapter.config.settings import Settings


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["version"]) == 0
    assert capsys.readouterr().out.strip() == f"metrics-adapter {__version__}"


def test_triggers_json_is_the_reference(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["triggers", "-o", "json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed == trigger_reference()
    nats = next(k for k in printed if k["type"] == "nats-jetstream")
    lag = next(p for p in nats["parameters"] if p["name"] == "lagThreshold")
    assert lag == {
        "name": "lagThreshold",
        "aliases": [],
        "type": "integer",
        "sources": ["triggerMetadata"],
        "default": "10",
        "required": False,
        "enum": [],
        "doc": "",
    }
    endpoint = next(p for p in nats["parameters"] if p["name"] == "natsServerMonitoringEndpoint")
    assert endpoint["sources"] == ["authParams", "triggerMetadata"] and endpoint["required"]


def test_triggers_text_lists_every_type(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["triggers"]) == 0
    out = capsys.readouterr().out
    for kind in ("cron:", "metrics-api:", "nats-jetstream:"):
        assert kind in out
    assert "lagThreshold" in out and "default 10" in out
    modes = next(line for line in out.splitlines() if line.strip().startswith("authModes"))
    assert modes.endswith("(also authMode)")


def test_aliases_are_shown_in_the_markdown_reference() -> None:
    """KEDA's ``name=authModes;authMode``: a user who writes the alias finds it."""
    rows = [line for line in trigger_markdown().splitlines() if line.startswith("| `authModes`")]
    assert rows and all("also `authMode`" in row for row in rows)


def test_missing_directory_is_one_line_and_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "nope"
    assert main(["serve", "--scaledobjects", str(missing), "--metrics-port", "0"]) == 2
    err = capsys.readouterr().err
    assert err.strip() == f"metrics-adapter serve: --scaledobjects {missing}: is not a directory"


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "is not a file"),
        ("garbage: [\n", "is not a valid kubeconfig"),
    ],
)
def test_an_unreadable_kubeconfig_is_one_line_and_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: str | None, message: str
) -> None:
    path = tmp_path / "kubeconfig"
    if content is not None:
        path.write_text(content)
    assert main(["serve", "--kubeconfig", str(path), "--metrics-port", "0"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"metrics-adapter serve: --kubeconfig {path}: ") and message in err
    assert "Traceback" not in err


def test_half_a_tls_pair_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["serve", "--scaledobjects", str(tmp_path), "--tls-cert-file", "x.crt"]) == 2
    assert "go together" in capsys.readouterr().err


def test_docs_trigger_reference_is_generated_and_current() -> None:
    docs = Path(__file__).resolve().parents[2] / "docs" / "triggers.md"
    assert docs.read_text() == trigger_markdown(), (
        "docs/triggers.md is stale: run `.venv/bin/metrics-adapter triggers -o markdown "
        "> docs/triggers.md`"
    )


def test_the_deployments_arguments_are_serve_flags() -> None:
    """deploy/deployment.yaml starts the adapter with flags this CLI has, as the Settings the
    manifest means: self-managed certificates for metrics-adapter.keda.svc."""
    deployment = yaml.safe_load(
        (Path(__file__).resolve().parents[2] / "deploy" / "deployment.yaml").read_text()
    )
    [container] = deployment["spec"]["template"]["spec"]["containers"]
    settings = settings_from(container["args"])
    assert settings.in_cluster and settings.cert_secret == "metrics-adapter-certs"
    assert (settings.service, settings.apiservice) == (
        "metrics-adapter",
        "v1beta1.external.metrics.k8s.io",
    )
    assert settings.cert_dir == Path("/tmp/certs")


def test_the_flags_defaults_are_the_settings_defaults() -> None:
    """serve's flags, and the two explain shares, default to what Settings() holds."""
    served = settings_from(["serve", "--in-cluster"])
    assert dataclasses.replace(served, in_cluster=False) == Settings()
    explained = _parser().parse_args(["explain", "objects"])
    assert (explained.scaler_timeout, explained.cluster_object_namespace) == (
        Settings().scaler_timeout,
        Settings().cluster_object_namespace,
    )


def test_a_certificate_file_that_does_not_load_is_one_line_and_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "objects").mkdir()
    (tmp_path / "tls.crt").write_text("not a certificate")
    (tmp_path / "tls.key").write_text("not a key")
    code = main(
        [
            "serve",
            f"--scaledobjects={tmp_path / 'objects'}",
            f"--tls-cert-file={tmp_path / 'tls.crt'}",
            f"--tls-private-key-file={tmp_path / 'tls.key'}",
            f"--cert-dir={tmp_path / 'scratch'}",
            "--metrics-port=0",
        ]
    )
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert code == 2
    assert err == (
        f"metrics-adapter serve: {tmp_path / 'tls.crt'} and {tmp_path / 'tls.key'}: "
        "the certificate is not PEM (-----BEGIN CERTIFICATE-----)"
    )


def test_the_certificate_directory_must_be_ours_and_private(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from metrics_adapter.api.tls import private_dir

    loose = tmp_path / "loose"
    loose.mkdir(mode=0o755)
    loose.chmod(0o777)
    assert private_dir(loose).stat().st_mode & 0o777 == 0o700  # ours: tightened
    monkeypatch.setattr("os.getuid", lambda: loose.stat().st_uid + 4242)
    with pytest.raises(ValueError, match=r"not by us .*choose another --cert-dir"):
        private_dir(loose)  # someone else's: refused, never used
