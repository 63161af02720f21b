"""A real ``redis-server`` for tests: a free loopback port, a temporary folder, nothing saved to disk.

Used by the fleet suite's ``conftest.py`` and by ``tests/unit/send/test_fleet.py``. When the binary is missing the
tests skip with the reason printed, unless ``TEST_REQUIRE_REDIS=1`` (CI sets it), which turns the skip into a
failure so a broken CI image cannot silently skip the fleet tests.
"""

from __future__ import annotations

import contextlib
import datetime
import ipaddress
import os
import shutil
import socket
import ssl
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

REQUIRED_VARIABLE = "TEST_REQUIRE_REDIS"


def redis_server_binary() -> str:
    """The path of ``redis-server``; skips (or fails when it is required) without one."""
    found = shutil.which("redis-server")
    if found is None:
        reason = "redis-server is not installed (apt-get install redis-server)"
        if os.environ.get(REQUIRED_VARIABLE) == "1":
            pytest.fail(f"{reason}, and {REQUIRED_VARIABLE}=1 says the Redis tests must run")
        pytest.skip(reason)
    return found


def free_port() -> int:
    """A loopback TCP port nobody listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class RedisServer:
    """One ``redis-server`` process that can be killed and started again on the same port (empty, like a restart)."""

    def __init__(self, binary: str, folder: Path, password: str | None = None, tls: bool = False) -> None:
        self.binary = binary
        self.folder = folder
        self.password = password
        self.tls = tls
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """The ``redis://`` (or ``rediss://``, trusting the test CA) URL of this server, with any password."""
        auth = f":{self.password}@" if self.password else ""
        if self.tls:
            return f"rediss://{auth}127.0.0.1:{self.port}/0?ssl_ca_certs={self.folder / 'ca.pem'}"
        return f"redis://{auth}127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 10.0) -> None:
        """Start the server and wait until it answers PING."""
        command = [
            self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
            "--dir", str(self.folder), "--daemonize", "no", "--logfile", str(self.folder / "redis.log"),
        ]  # fmt: skip
        if self.password:
            command += ["--requirepass", self.password]
        if self.tls:
            if not (self.folder / "server.pem").exists():
                write_test_certificates(self.folder)
            command[1:3] = ["--port", "0", "--tls-port", str(self.port)]
            command += [
                "--tls-cert-file", str(self.folder / "server.pem"), "--tls-key-file", str(self.folder / "server.key"),
                "--tls-ca-cert-file", str(self.folder / "ca.pem"), "--tls-auth-clients", "no",
            ]  # fmt: skip
        self.process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout
        while not self._answers():
            if self.process.poll() is not None:
                log = (self.folder / "redis.log").read_text(errors="replace")[-2000:]
                raise RuntimeError(f"redis-server exited with status {self.process.returncode}:\n{log}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"redis-server did not answer on port {self.port} within {timeout} s")
            time.sleep(0.02)

    def kill(self) -> None:
        """Kill the server (SIGKILL) and wait for it: it keeps nothing, so a restart comes back empty."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)
        self.process = None

    def command(self, *args: str) -> bytes:
        """Send one command in RESP over a plain socket and return the raw reply (enough for tests)."""
        with self._connect() as conn:
            if self.password:
                conn.sendall(_resp("AUTH", self.password))
                conn.recv(1024)
            conn.sendall(_resp(*args))
            return conn.recv(65536)

    def _connect(self) -> socket.socket:
        conn = socket.create_connection(("127.0.0.1", self.port), timeout=2)
        if not self.tls:
            return conn
        context = ssl.create_default_context(cafile=str(self.folder / "ca.pem"))
        return context.wrap_socket(conn, server_hostname="127.0.0.1")

    def _answers(self) -> bool:
        try:
            return self.command("PING").startswith(b"+PONG")
        except OSError:
            return False


def _resp(*args: str) -> bytes:
    out = [f"*{len(args)}\r\n".encode()]
    for arg in args:
        data = arg.encode()
        out.append(b"$%d\r\n%s\r\n" % (len(data), data))
    return b"".join(out)


def write_test_certificates(folder: Path) -> None:
    """A throw-away CA (``ca.pem``) and a server certificate for 127.0.0.1 (``server.pem``, ``server.key``)."""
    from cryptography import x509  # noqa: PLC0415 - only the TLS test needs it
    from cryptography.hazmat.primitives import hashes, serialization  # noqa: PLC0415
    from cryptography.hazmat.primitives.asymmetric import ec  # noqa: PLC0415
    from cryptography.x509.oid import NameOID  # noqa: PLC0415

    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "segment-sidecar test CA")])
    ca = (
        x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )  # fmt: skip
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
        .issuer_name(ca_name).public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )  # fmt: skip
    (folder / "ca.pem").write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    (folder / "server.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (folder / "server.key").write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )


@contextlib.contextmanager
def running_redis(folder: Path, password: str | None = None, tls: bool = False) -> Iterator[RedisServer]:
    """A started :class:`RedisServer` in ``folder``, killed on exit."""
    server = RedisServer(redis_server_binary(), folder, password, tls)
    server.start()
    try:
        yield server
    finally:
        server.kill()
