"""TLS, mutual TLS and the bearer token, against real `textmend-server`s on loopback ports.

A throwaway CA, a server certificate for 127.0.0.1 and localhost, and a client certificate are
made with `cryptography` for the session; a second CA that signed nothing here plays the
stranger. Token failures are checked through the CLI, since its one-line error is what a person
sees.
"""

from __future__ import annotations

import contextlib
import datetime
import functools
import ipaddress
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import conftest
import grpc
import pytest
from conftest import ServerProcess, run_server
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from textmend_client import TextMendClient, Unavailable
from textmend_client.cli import EXIT_OK, EXIT_SERVER
from textmend_client.cli import main as cli_main
from textmend_client.client import Unauthenticated

TOKEN = "s3cr3t-t0ken-for-tests"


@dataclass(frozen=True)
class Pki:
    """Paths of the PEM files of one throwaway CA and what it signed."""

    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path
    stranger_ca: Path


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _certificate(
    name: str,
    key: ec.EllipticCurvePrivateKey,
    issuer: x509.Name | None = None,
    issuer_key: ec.EllipticCurvePrivateKey | None = None,
    *,
    ca: bool = False,
    sans: list[x509.GeneralName] | None = None,
    usage: list[x509.ObjectIdentifier] | None = None,
) -> x509.Certificate:
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer or subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if ca:
        builder = builder.add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    if usage:
        builder = builder.add_extension(x509.ExtendedKeyUsage(usage), critical=False)
    return builder.sign(issuer_key or key, hashes.SHA256())


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    directory = tmp_path_factory.mktemp("pki")
    pem = serialization.Encoding.PEM
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = _certificate("textmend test CA", ca_key, ca=True)
    server_key = ec.generate_private_key(ec.SECP256R1())
    server = _certificate(
        "textmend test server",
        server_key,
        ca.subject,
        ca_key,
        sans=[x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))],
        usage=[ExtendedKeyUsageOID.SERVER_AUTH],
    )
    client_key = ec.generate_private_key(ec.SECP256R1())
    client = _certificate(
        "textmend test client",
        client_key,
        ca.subject,
        ca_key,
        usage=[ExtendedKeyUsageOID.CLIENT_AUTH],
    )
    stranger_key = ec.generate_private_key(ec.SECP256R1())
    stranger = _certificate("some other CA", stranger_key, ca=True)
    return Pki(
        ca=_write(directory / "ca.pem", ca.public_bytes(pem)),
        server_cert=_write(directory / "server.pem", server.public_bytes(pem)),
        server_key=_write(directory / "server-key.pem", _key_pem(server_key)),
        client_cert=_write(directory / "client.pem", client.public_bytes(pem)),
        client_key=_write(directory / "client-key.pem", _key_pem(client_key)),
        stranger_ca=_write(directory / "stranger.pem", stranger.public_bytes(pem)),
    )


@contextlib.contextmanager
def _serve(directory: Path, *options: str, **client: object) -> Iterator[ServerProcess]:
    """`run_server` with one worker, whose readiness check (a plain `TextMendClient`) is given
    client's TLS options."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(conftest, "TextMendClient", functools.partial(TextMendClient, **client))
        with run_server(directory, "--workers", "1", *options) as running:
            yield running


@pytest.fixture(scope="module")
def token_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _write(tmp_path_factory.mktemp("token") / "token", f"{TOKEN}\n".encode())


@pytest.fixture(scope="module")
def tls_server(
    pki: Pki, token_file: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServerProcess]:
    """TLS, and a bearer token in token_file."""
    with _serve(
        tmp_path_factory.mktemp("tls-server"),
        "--tls-cert",
        str(pki.server_cert),
        "--tls-key",
        str(pki.server_key),
        "--auth-token-file",
        str(token_file),
        tls_ca=pki.ca,
    ) as running:
        yield running


@pytest.fixture(scope="module")
def mtls_server(pki: Pki, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """Mutual TLS: clients must present a certificate signed by the test CA."""
    with _serve(
        tmp_path_factory.mktemp("mtls-server"),
        "--tls-cert",
        str(pki.server_cert),
        "--tls-key",
        str(pki.server_key),
        "--tls-client-ca",
        str(pki.ca),
        tls_ca=pki.ca,
        tls_cert=pki.client_cert,
        tls_key=pki.client_key,
    ) as running:
        yield running


# --- TLS -------------------------------------------------------------------------------------


def test_tls_works_with_the_ca(tls_server: ServerProcess, pki: Pki) -> None:
    server = tls_server
    with TextMendClient(server.target, timeout=30, tls_ca=pki.ca, token=TOKEN) as client:
        assert client.repair("cafÃ©").text == "café"
        assert [r.text for r in client.repair_stream([{"id": "1", "text": "cafÃ©"}])] == ["café"]
    # The CA as PEM bytes instead of a path, and localhost instead of the address.
    port = server.target.rsplit(":", 1)[1]
    with TextMendClient(
        f"localhost:{port}", timeout=30, tls_ca=pki.ca.read_bytes(), token=TOKEN
    ) as client:
        assert client.repair("naÃ¯ve").text == "naïve"


@pytest.mark.parametrize("how", ["plaintext", "stranger CA", "system roots"])
def test_tls_fails_without_the_ca(tls_server: ServerProcess, pki: Pki, how: str) -> None:
    server = tls_server
    options: dict[str, object] = {
        "plaintext": {},
        "stranger CA": {"tls_ca": pki.stranger_ca},
        "system roots": {"tls": True},
    }[how]
    with TextMendClient(server.target, timeout=5, token=TOKEN, **options) as client:  # type: ignore[arg-type]
        with pytest.raises(Unavailable):
            client.repair("cafÃ©")
        assert not client.health()


def test_cli_health_over_tls(
    tls_server: ServerProcess, pki: Pki, capsys: pytest.CaptureFixture[str]
) -> None:
    server = tls_server
    assert cli_main(["health", "--server", server.target, "--tls-ca", str(pki.ca)]) == EXIT_OK
    assert capsys.readouterr().out == "SERVING\n"
    assert cli_main(["health", "--server", server.target, "--timeout", "5"]) == EXIT_SERVER
    assert "UNAVAILABLE" in capsys.readouterr().err


# --- mutual TLS ------------------------------------------------------------------------------


def test_mtls_accepts_a_client_certificate_from_the_ca(
    mtls_server: ServerProcess, pki: Pki
) -> None:
    with TextMendClient(
        mtls_server.target,
        timeout=30,
        tls_ca=pki.ca,
        tls_cert=pki.client_cert,
        tls_key=pki.client_key,
    ) as client:
        assert client.repair("cafÃ©").text == "café"
        assert client.health()


@pytest.mark.parametrize("how", ["no certificate", "server's certificate from a stranger"])
def test_mtls_rejects_a_client_without_a_good_certificate(
    mtls_server: ServerProcess, pki: Pki, tmp_path: Path, how: str
) -> None:
    options: dict[str, object] = {"tls_ca": pki.ca}
    if how != "no certificate":
        key = ec.generate_private_key(ec.SECP256R1())
        cert = _certificate("intruder", key, usage=[ExtendedKeyUsageOID.CLIENT_AUTH])
        options["tls_cert"] = cert.public_bytes(serialization.Encoding.PEM)
        options["tls_key"] = _key_pem(key)
    with TextMendClient(mtls_server.target, timeout=5, **options) as client:  # type: ignore[arg-type]
        with pytest.raises(Unavailable):
            client.repair("cafÃ©")
        # The handshake comes before any call, so health checks need a certificate too.
        assert not client.health()


def test_cli_with_a_client_certificate(
    mtls_server: ServerProcess, pki: Pki, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    document = _write(tmp_path / "doc.txt", "cafÃ©".encode())
    argv = ["repair", str(document), "--server", mtls_server.target, "--tls-ca", str(pki.ca)]
    tls = ["--tls-cert", str(pki.client_cert), "--tls-key", str(pki.client_key)]
    assert cli_main([*argv, *tls]) == EXIT_OK
    assert capsys.readouterr().out == "café"
    assert cli_main([*argv, "--timeout", "5"]) == EXIT_SERVER
    assert "UNAVAILABLE" in capsys.readouterr().err


# --- the bearer token ------------------------------------------------------------------------


def _repair_argv(server: ServerProcess, pki: Pki, document: Path) -> list[str]:
    return ["repair", str(document), "--server", server.target, "--tls-ca", str(pki.ca)]


def test_token_missing_is_unauthenticated(
    tls_server: ServerProcess,
    pki: Pki,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    server = tls_server
    document = _write(tmp_path / "doc.txt", "cafÃ©".encode())
    assert cli_main(_repair_argv(server, pki, document)) == EXIT_SERVER
    captured = capsys.readouterr()
    assert captured.out == ""
    [line] = captured.err.splitlines()
    assert line.startswith("textmend: error: UNAUTHENTICATED: ")
    assert "--token-file" in line


def test_token_wrong_is_unauthenticated(
    tls_server: ServerProcess,
    pki: Pki,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    server = tls_server
    document = _write(tmp_path / "doc.txt", "cafÃ©".encode())
    for wrong in (TOKEN[:-1], TOKEN + "x", "x" * len(TOKEN)):
        token_file = _write(tmp_path / "wrong", wrong.encode())
        argv = [*_repair_argv(server, pki, document), "--token-file", str(token_file)]
        assert cli_main(argv) == EXIT_SERVER
        [line] = capsys.readouterr().err.splitlines()
        assert (
            line
            == "textmend: error: UNAUTHENTICATED: the bearer token is not valid for this server"
        )
    assert TOKEN not in server.log_text()


def test_token_right_works_for_repair_and_streams(
    tls_server: ServerProcess,
    token_file: Path,
    pki: Pki,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    server = tls_server
    document = _write(tmp_path / "doc.txt", "cafÃ©".encode())
    assert cli_main([*_repair_argv(server, pki, document), "--token-file", str(token_file)]) == 0
    assert capsys.readouterr().out == "café"
    # The same through the environment twins, over a --jsonl stream.
    monkeypatch.setenv("TEXTMEND_TLS_CA", str(pki.ca))
    monkeypatch.setenv("TEXTMEND_TOKEN_FILE", str(token_file))
    jsonl = _write(tmp_path / "docs.jsonl", b'{"id": "a", "text": "caf\\u00c3\\u00a9"}\n')
    assert cli_main(["repair", "--jsonl", str(jsonl), "--server", server.target]) == EXIT_OK
    assert '"text":"café"' in capsys.readouterr().out


def test_token_streams_and_raw_calls_are_refused_without_it(
    tls_server: ServerProcess, pki: Pki
) -> None:
    server = tls_server
    with TextMendClient(server.target, timeout=10, tls_ca=pki.ca) as client:
        with pytest.raises(Unauthenticated):
            list(client.repair_stream([{"id": "1", "text": "x"}]))
    credentials = grpc.ssl_channel_credentials(pki.ca.read_bytes())
    with grpc.secure_channel(server.target, credentials) as channel:
        from textmend.v1 import textmend_pb2, textmend_pb2_grpc

        stub = textmend_pb2_grpc.TextMendStub(channel)
        request = textmend_pb2.RepairRequest(content=b"x")
        for metadata in ((), (("authorization", TOKEN),), (("authorization", f"Basic {TOKEN}"),)):
            with pytest.raises(grpc.RpcError) as caught:
                stub.Repair(request, timeout=10, metadata=metadata)
            assert caught.value.code() is grpc.StatusCode.UNAUTHENTICATED
        reply = stub.Repair(request, timeout=10, metadata=(("authorization", f"Bearer {TOKEN}"),))
        assert reply.text == "x"


def _grpcurl() -> str | None:
    beside = Path(sys.executable).parent / "grpcurl"
    return str(beside) if beside.exists() else shutil.which("grpcurl")


@pytest.mark.skipif(_grpcurl() is None, reason="grpcurl is not installed (dev extra)")
def test_a_token_that_is_not_latin1_is_unauthenticated(tls_server: ServerProcess, pki: Pki) -> None:
    """grpcurl sends `Bearer €` as UTF-8 (the Python client refuses to): the token check once
    failed on it with UNKNOWN instead of refusing the call."""
    grpcurl = _grpcurl()
    assert grpcurl is not None
    done = subprocess.run(
        [
            grpcurl,
            "-cacert",
            str(pki.ca),
            "-max-time",
            "30",
            "-H",
            "authorization: Bearer \u20ac",
            "-d",
            '{"content": "YWJj"}',
            tls_server.target,
            "textmend.v1.TextMend/Repair",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode != 0
    assert "Code: Unauthenticated" in done.stderr, done.stderr


def test_health_needs_no_token(
    tls_server: ServerProcess, pki: Pki, capsys: pytest.CaptureFixture[str]
) -> None:
    server = tls_server
    with TextMendClient(server.target, timeout=10, tls_ca=pki.ca) as client:
        assert client.health()
        assert client.health("textmend.v1.TextMend")
    argv = ["health", "--server", server.target, "--tls-ca", str(pki.ca)]
    assert cli_main(argv) == EXIT_OK
    assert capsys.readouterr().out == "SERVING\n"


def test_server_refuses_half_a_tls_configuration(pki: Pki, tmp_path: Path) -> None:
    from textmend_server.main import main as server_main

    for argv, complaint in (
        (["--tls-cert", str(pki.server_cert)], "--tls-key"),
        (["--tls-client-ca", str(pki.ca)], "--tls-cert"),
        (["--auth-token-file", str(tmp_path / "missing")], "--auth-token-file"),
    ):
        with pytest.raises(SystemExit) as caught:
            server_main(argv)
        assert caught.value.code == 2, complaint
