"""A throwaway PostgreSQL cluster with TLS for the server-store tests and benchmarks.

It starts Debian's PostgreSQL (15 here) in a temporary folder: its own CA, a server certificate for localhost signed by
it, `hostssl` only for TCP (scram-sha-256), a Unix socket in the folder for the superuser. As root the cluster runs as
the `postgres` system user (initdb refuses root). Nothing of the machine's own PostgreSQL is touched.
"""
from __future__ import annotations

import datetime as dt
import glob
import os
import pwd
import secrets
import shutil
import socket
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID


def pg_bin() -> Path | None:
    """The folder of initdb/pg_ctl/postgres, or None when no PostgreSQL server is installed."""
    for cand in sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: int(Path(p).parent.name), reverse=True):
        if (Path(cand) / "postgres").exists() and (Path(cand) / "initdb").exists():
            return Path(cand)
    found = shutil.which("pg_ctl")
    if found and (Path(found).resolve().parent / "postgres").exists():
        return Path(found).resolve().parent
    return None


def _key_pem(key) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
                             serialization.NoEncryption())


def make_ca(folder: Path, name: str = "WardLens test CA") -> tuple[Path, object, object]:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = dt.datetime.now(dt.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=2))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                         content_commitment=False, key_encipherment=False, data_encipherment=False,
                                         key_agreement=False, encipher_only=False, decipher_only=False), critical=True)
            .sign(key, hashes.SHA256()))
    path = folder / f"{name.replace(' ', '-').lower()}.pem"
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return path, cert, key


def make_server_cert(folder: Path, ca_cert, ca_key, host: str = "localhost") -> tuple[Path, Path]:
    import ipaddress
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host)]))
            .issuer_name(ca_cert.subject).public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=2))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(host),
                                                        x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                           critical=False)
            .sign(ca_key, hashes.SHA256()))
    crt, key_path = folder / "server.crt", folder / "server.key"
    crt.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(_key_pem(key))
    return crt, key_path


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Cluster:
    root: Path
    port: int
    ca: Path
    superuser: str
    superpass: str
    bin: Path
    run_as: str | None

    @property
    def socket_dir(self) -> Path:
        return self.root / "sock"

    def url(self, dbname: str, user: str | None = None, sslmode: str = "verify-full", ca: Path | None = None,
            host: str = "localhost") -> str:
        who = f"{user}@" if user else ""
        tail = f"sslmode={sslmode}" + (f"&sslrootcert={ca or self.ca}" if sslmode.startswith("verify") else "")
        return f"postgresql://{who}{host}:{self.port}/{dbname}?{tail}"

    def socket_url(self, dbname: str, user: str) -> str:
        return f"postgresql://{user}@/{dbname}?host={self.socket_dir}&port={self.port}"

    def superuser_conninfo(self, dbname: str = "postgres") -> str:
        return f"host={self.socket_dir} port={self.port} dbname={dbname} user={self.superuser} password={self.superpass}"

    def psql(self, dbname: str, user: str, password: str, sql: str) -> subprocess.CompletedProcess:
        """psql as `user` over verified TLS: what a staff member with their login could do outside WardLens."""
        env = dict(os.environ, PGPASSWORD=password, PGSSLMODE="verify-full", PGSSLROOTCERT=str(self.ca))
        return subprocess.run([str(self.bin / "psql") if (self.bin / "psql").exists() else "psql", "-X", "-v",
                               "ON_ERROR_STOP=1", "-h", "localhost", "-p", str(self.port), "-U", user, "-d", dbname,
                               "-c", sql], env=env, capture_output=True, text=True, timeout=60)

    def create_database(self, name: str, owner: str | None = None) -> None:
        import psycopg
        with psycopg.connect(self.superuser_conninfo(), autocommit=True) as c:
            c.execute(f'CREATE DATABASE "{name}"' + (f' OWNER "{owner}"' if owner else ""))

    def create_dba(self, name: str, password: str) -> None:
        """The site DBA's login that runs `init`: CREATEROLE, owns the empty database, no superuser."""
        import psycopg
        from psycopg import sql
        with psycopg.connect(self.superuser_conninfo(), autocommit=True) as c:
            c.execute(sql.SQL("CREATE ROLE {} LOGIN CREATEROLE PASSWORD {}").format(sql.Identifier(name),
                                                                                   sql.Literal(password)))

    def pause(self) -> None:
        """The server goes away (a restart, a network cut): every connection drops."""
        _as(self.run_as, [str(self.bin / "pg_ctl"), "-D", str(self.root / "data"), "-m", "fast", "-w", "stop"])

    def resume(self) -> None:
        _as(self.run_as, [str(self.bin / "pg_ctl"), "-D", str(self.root / "data"), "-l",
                          str(self.root / "sock" / "server.log"), "-w", "-t", "60", "start"])

    def stop(self) -> None:
        _as(self.run_as, [str(self.bin / "pg_ctl"), "-D", str(self.root / "data"), "-m", "immediate", "-w", "stop"],
            check=False)
        shutil.rmtree(self.root, ignore_errors=True)


def _as(user: str | None, cmd: list[str], check: bool = True, **kw) -> subprocess.CompletedProcess:
    if user:
        cmd = ["runuser", "-u", user, "--"] + cmd
    done = subprocess.run(cmd, check=False, capture_output=True, text=True, timeout=120, **kw)
    if check and done.returncode != 0:
        raise RuntimeError(f"{Path(cmd[4 if user else 0]).name} failed: {done.stderr.strip()[-2000:]}")
    return done


def start_cluster() -> Cluster:
    """Start a TLS-only cluster; raise RuntimeError with the server's log when it does not come up."""
    binary = pg_bin()
    if binary is None:
        raise RuntimeError("no PostgreSQL server installed (Debian: apt-get install postgresql)")
    run_as = "postgres" if os.geteuid() == 0 else None
    root = Path(tempfile.mkdtemp(prefix="wardlens-pg-"))
    root.chmod(0o755)
    data, sock = root / "data", root / "sock"
    sock.mkdir()
    data.mkdir(mode=0o700)
    ca_path, ca_cert, ca_key = make_ca(root)
    crt, key = make_server_cert(root, ca_cert, ca_key)
    superpass = secrets.token_urlsafe(24)
    pwfile = root / "pw"
    pwfile.write_text(superpass)
    if run_as:
        ent = pwd.getpwnam(run_as)
        for p in (sock, data, crt, key, pwfile):
            os.chown(p, ent.pw_uid, ent.pw_gid)
    key.chmod(0o600)
    pwfile.chmod(0o600)
    _as(run_as, [str(binary / "initdb"), "-D", str(data), "-U", "postgres", f"--pwfile={pwfile}", "-A",
                 "scram-sha-256", "-E", "UTF8", "--locale=C"])
    port = _free_port()
    conf = (f"port = {port}\nlisten_addresses = '127.0.0.1'\nunix_socket_directories = '{sock}'\nssl = on\n"
            f"ssl_cert_file = '{crt}'\nssl_key_file = '{key}'\nfsync = off\nmax_connections = 60\n"
            "shared_buffers = 64MB\n")
    hba = ("local all all scram-sha-256\n"
           "hostssl all all 127.0.0.1/32 scram-sha-256\n"
           "hostnossl all all 127.0.0.1/32 reject\n")
    _as(run_as, ["sh", "-c", f"cat >> {data}/postgresql.conf && printf '%s' \"$HBA\" > {data}/pg_hba.conf"],
        input=conf, env=dict(os.environ, HBA=hba))
    started = _as(run_as, [str(binary / "pg_ctl"), "-D", str(data), "-l", str(root / "sock" / "server.log"), "-w",
                           "-t", "60", "start"], check=False)
    if started.returncode != 0:
        text = (root / "sock" / "server.log").read_text(errors="replace") if (root / "sock" / "server.log").exists() else ""
        shutil.rmtree(root, ignore_errors=True)
        raise RuntimeError(f"PostgreSQL did not start: {started.stderr.strip()} {text[-2000:]}")
    return Cluster(root, port, ca_path, "postgres", superpass, binary, run_as)
