"""Development TLS material made with openssl: a CA, a server and a client certificate.

For local use and tests only. Production brokers use the operator's own PKI.
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from broker.errors import BrokerToolError


@dataclass(frozen=True)
class DevCerts:
    ca_cert: Path
    ca_key: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path

    @classmethod
    def in_dir(cls, directory: Path) -> DevCerts:
        return cls(
            ca_cert=directory / "ca.crt",
            ca_key=directory / "ca.key",
            server_cert=directory / "server.crt",
            server_key=directory / "server.key",
            client_cert=directory / "client.crt",
            client_key=directory / "client.key",
        )

    def exist(self) -> bool:
        return all(p.exists() for p in (self.ca_cert, self.server_cert, self.server_key))


def _openssl(*args: str) -> None:
    exe = shutil.which("openssl")
    if exe is None:
        raise BrokerToolError("openssl not found: install it (Debian: apt-get install openssl)")
    result = subprocess.run([exe, *args], capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise BrokerToolError(f"openssl {args[0]} failed: {result.stderr.strip()}")


def generate_dev_certs(
    directory: Path, *, hostnames: tuple[str, ...] = ("localhost",), days: int = 825
) -> DevCerts:
    """Create a CA plus server and client certificates signed by it in ``directory``.

    The server certificate is valid for ``hostnames`` and for 127.0.0.1 / ::1.
    """
    directory.mkdir(parents=True, exist_ok=True)
    certs = DevCerts.in_dir(directory)
    _openssl(
        "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", str(days),
        "-subj", "/CN=clawbeat development CA",
        "-keyout", str(certs.ca_key), "-out", str(certs.ca_cert),
        "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,keyCertSign,cRLSign",
    )  # fmt: skip
    san = ",".join([*(f"DNS:{h}" for h in hostnames), "IP:127.0.0.1", "IP:::1"])
    for cert, key, cn, ext in (
        (certs.server_cert, certs.server_key, hostnames[0], f"subjectAltName={san}"),
        (certs.client_cert, certs.client_key, "clawbeat-client", "extendedKeyUsage=clientAuth"),
    ):
        csr = directory / (cert.stem + ".csr")
        extfile = directory / (cert.stem + ".ext")
        extfile.write_text(ext + "\n")
        _openssl(
            "req", "-newkey", "rsa:2048", "-nodes", "-subj", f"/CN={cn}",
            "-keyout", str(key), "-out", str(csr),
        )  # fmt: skip
        _openssl(
            "x509", "-req", "-in", str(csr), "-CA", str(certs.ca_cert),
            "-CAkey", str(certs.ca_key), "-CAcreateserial", "-days", str(days),
            "-extfile", str(extfile), "-out", str(cert),
        )  # fmt: skip
        csr.unlink()
        extfile.unlink()
        key.chmod(0o600)
    return certs
