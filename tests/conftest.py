"""Test set-up: Qt offscreen before anything imports Qt; shared-data location and skip helper."""
from __future__ import annotations

import os
import tempfile
import sys
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
# Bundles trained by the tests are signed with a development key made for this run; the application trusts it only
# where WARDLENS_TRUST_DEV_MODELS=1 (services.inference.manifest). The committed bundles carry the release signature.
os.environ["WARDLENS_TRUST_DEV_MODELS"] = "1"
# The GUI makes a daily backup at the first unlock of the day; tests that are not about it leave it out (it would add a
# backup of the demo store to every window test). tests/test_daily_backup.py turns it on.
os.environ["WARDLENS_DAILY_BACKUP"] = "off"
os.environ["WARDLENS_MODEL_DEV_KEY"] = os.path.join(tempfile.mkdtemp(prefix="wardlens-test-"), "model-dev.key")
# onnxruntime must not write its telemetry/device-id files into the real home during tests.
ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import pytest  # noqa: E402

SHARED_DATA = Path(os.environ.get("WARDLENS_DATA", ROOT.parent / "shared" / "data"))


def shared_path(*parts: str) -> Path:
    """Path inside ../shared/data; skips the calling test with a clear reason where it is absent."""
    p = SHARED_DATA.joinpath(*parts)
    if not p.exists():
        pytest.skip(f"needs the full data set at {p} (present in CI, absent in a user's clone)")
    return p


# --- stores -------------------------------------------------------------------------------------
import shutil  # noqa: E402

from services.store.keyfile import KdfParams, key_file_path  # noqa: E402

FAST = KdfParams.fast()  # same code path as production, a fraction of the cost


def copy_store(src: Path, dst_dir: Path) -> Path:
    dst_dir.mkdir(parents=True, exist_ok=True)
    dst = dst_dir / src.name
    for suffix in ("", "-wal", "-shm"):
        if Path(str(src) + suffix).exists():
            shutil.copyfile(str(src) + suffix, str(dst) + suffix)
    shutil.copyfile(key_file_path(src), key_file_path(dst))
    return dst


@pytest.fixture(scope="session")
def _demo_master(tmp_path_factory) -> Path:
    from services.records.demo import build_demo_store
    path = tmp_path_factory.mktemp("demo_master") / "demo.db"
    build_demo_store(path, kdf=FAST)
    return path


@pytest.fixture
def demo_store(_demo_master, tmp_path) -> Path:
    """A private copy of the demo store (built once per test session with cheap KDF parameters)."""
    return copy_store(_demo_master, tmp_path / "store")


@pytest.fixture
def empty_store(tmp_path):
    from services.site.accounts import create_store
    (tmp_path / "store").mkdir()
    created = create_store(tmp_path / "store" / "site.db", "admin", "admin-password", FAST)
    return created


@pytest.fixture(params=["desk store", "server store"])
def desk(request, tmp_path):
    """The administrator's desk on an empty store with two wards (Renal R-1..4, Cardiology C-1..4): where records
    from a hospital's systems are imported in the interoperability tests. Every such test runs on both stores: the
    SQLCipher file and a PostgreSQL server (skipped with the reason where no server can be started)."""
    from services.desk import open_desk
    if request.param == "server store":
        site = request.getfixturevalue("server_store")
        d = open_desk(site.url, site.admin, site.password)
    else:
        store = request.getfixturevalue("empty_store")
        d = open_desk(store.path, "admin", "admin-password")
    d.capacity.wards.add_ward("Renal", "medical", 4, prefix="R-")
    d.capacity.wards.add_ward("Cardiology", "cardiology", 4, prefix="C-")
    yield d
    _lock_all({"admin": d})


@pytest.fixture
def qt_settings(tmp_path, qapp):
    """Orange's habit: every widget test starts from empty settings in its own folder."""
    from PySide6.QtCore import QSettings
    QSettings.setDefaultFormat(QSettings.Format.IniFormat)
    QSettings.setPath(QSettings.Format.IniFormat, QSettings.Scope.UserScope, str(tmp_path / "settings"))
    s = QSettings()
    s.clear()
    yield s
    s.clear()


@pytest.fixture
def owner(qapp):
    """Parent for view-models made in a test: deleted in the GUI thread at teardown, never left to a
    garbage collection that could run on a worker thread."""
    from PySide6.QtCore import QCoreApplication, QEvent, QObject
    o = QObject()
    yield o
    o.deleteLater()
    QCoreApplication.sendPostedEvents(None, QEvent.Type.DeferredDelete)


DEMO_PASSWORDS = {"admin": "wardlens-admin", "dr.demo": "wardlens-clinician", "nurse.demo": "wardlens-nurse",
                  "analyst.demo": "wardlens-analyst"}


def _per_user(open_as, store: Path):
    """get(user[, password]) opening one session per user with `open_as(store, user, password)`; all locked after."""
    opened: dict = {}

    def get(user: str, pw: str | None = None):
        if user not in opened:
            opened[user] = open_as(store, user, pw or DEMO_PASSWORDS[user])
        return opened[user]
    get.store = store   # what opens the same store again: its file, or the server copy's URL
    return get, opened


def _lock_all(opened: dict) -> None:
    """Lock every session a test opened, once no background job of the test still reads through one: the application
    waits the same way before it locks (a job still running on a closed server connection crashed psycopg)."""
    import sys
    if "PySide6.QtCore" in sys.modules:
        from PySide6.QtCore import QThreadPool
        QThreadPool.globalInstance().waitForDone(30_000)
    for s in opened.values():
        s.lock()


@pytest.fixture
def sessions(demo_store):
    """sessions(user[, password]): an unlocked Session on the private demo store, one per user, locked at teardown."""
    from services.site.accounts import unlock
    get, opened = _per_user(unlock, demo_store)
    yield get
    _lock_all(opened)


@pytest.fixture(params=["desk store", "server store"])
def desks(request):
    """desks(user[, password]): a Desk (the session and its façades, opened as the GUI and the CLI open it) on
    a private copy of the demo store, one per user, locked at teardown. Every such test runs on both stores: the
    SQLCipher file, and the demo store moved to a PostgreSQL server (a database of its own per test)."""
    from services.desk import open_desk
    store = request.getfixturevalue("demo_store") if request.param == "desk store" else \
        request.getfixturevalue("server_demo_store")
    get, opened = _per_user(open_desk, store)
    yield get
    _lock_all(opened)


def pytest_collection_modifyitems(config, items):
    """Mark every test that reads ../shared/data (its own code, or a fixture's, calls shared_path or names
    SHARED_DATA) as shared_data, so `-m "not shared_data"` is exactly what a user's clone runs in full."""
    import inspect
    sources: dict[object, str] = {}

    def source(obj) -> str:
        if obj not in sources:
            try:
                sources[obj] = inspect.getsource(obj)
            except (OSError, TypeError):
                sources[obj] = ""
        return sources[obj]

    for item in items:
        fn = getattr(item, "function", None)
        texts = [source(fn)] if fn else []
        fixtures = getattr(item, "_fixtureinfo", None)
        for name in (fixtures.names_closure if fixtures else ()):
            for d in (fixtures.name2fixturedefs.get(name) or ()):
                texts.append(source(d.func))
        if any("shared_path(" in t or "SHARED_DATA" in t for t in texts):
            item.add_marker(pytest.mark.shared_data)


@pytest.fixture(autouse=True)
def _private_home(tmp_path, monkeypatch):
    """Each test has its own user data folder: the audit anchors one desk remembers (services.site.anchors) must
    not leak into another test that opens a copy of the same demo store."""
    monkeypatch.setenv("WARDLENS_HOME", str(tmp_path / "home"))


def make_active(desk, version_id: int) -> None:
    """Make a stored version the active one the way a promotion does: status changed and signed by the
    administrator's session (tests that need a given model active without passing the promotion gate)."""
    from services.store import integrity
    with desk.session.db.transaction() as c:
        c.execute("UPDATE model_versions SET status = 'active' WHERE id = ?", (version_id,))
        integrity.sign_model(c, desk.session.db.trust, version_id)
        integrity.seal_state(c, desk.session.db.trust)


def identities(store) -> dict:
    """Who each patient is ({patient id: Ident}), read through a clinician's identity key: the store holds names,
    numbers and birth dates sealed, so a test that checks they do not leak must get them this way."""
    from services.site.accounts import unlock
    s = unlock(store, "dr.demo", DEMO_PASSWORDS["dr.demo"])
    try:
        d = s.directory()
        return {pid: d.get(pid) for pid in d.order()}
    finally:
        s.lock()


# --- a real PostgreSQL server for the server-store tests (tests/pgcluster.py) ----------------------------------------
@pytest.fixture(scope="session")
def pg_cluster():
    """One throwaway TLS cluster for the whole run. Without a PostgreSQL server installed the server tests skip
    (`make test` installs Debian's postgresql where it can, so CI always runs them)."""
    from tests import pgcluster
    if pgcluster.pg_bin() is None:
        pytest.skip("no PostgreSQL server on this machine (Debian: apt-get install postgresql); `make test` as root "
                    "installs it")
    cluster = pgcluster.start_cluster()
    yield cluster
    cluster.stop()


SERVER_PASSWORD = "chief-server-password-1"
DBA = ("site_dba", "dba-password-not-for-staff")


class ServerSite:
    """A WardLens database on the test cluster. Logins are cluster-wide, so each site's people get a suffix."""

    def __init__(self, cluster, dbname: str, tag: str) -> None:
        self.cluster, self.dbname, self.tag = cluster, dbname, tag
        self.url = cluster.url(dbname)
        self.admin = self.name("chief")
        self.password = SERVER_PASSWORD

    def name(self, person: str) -> str:
        return f"{person}-{self.tag}"

    def login(self, user: str | None = None, password: str | None = None):
        from services.site.server_accounts import unlock_server
        return unlock_server(self.url, user or self.admin, password or self.password)


@pytest.fixture
def server_store(pg_cluster):
    """An empty database made by the DBA and set up by `init` (its administrator: site.admin)."""
    import psycopg
    from services.store.server import ServerAddress
    from services.site.server_setup import init_server
    tag = os.urandom(3).hex()
    name = f"wl_test_{tag}"
    with psycopg.connect(pg_cluster.superuser_conninfo(), autocommit=True) as c:
        if not c.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (DBA[0],)).fetchone():
            c.execute(f"CREATE ROLE {DBA[0]} LOGIN CREATEROLE PASSWORD '{DBA[1]}'")
        c.execute(f'CREATE DATABASE "{name}" OWNER {DBA[0]}')
    site = ServerSite(pg_cluster, name, tag)
    init_server(ServerAddress.parse(pg_cluster.url(name, DBA[0])), DBA[1], site.admin, site.password,
                display_name="Chief")
    return site


@pytest.fixture(scope="session")
def _server_demo_master(pg_cluster, _demo_master, tmp_path_factory):
    """The demo store moved to the server once (migrate-store), with the demo's people given their demo passwords:
    the template each test's server copy is made from."""
    import psycopg
    from services.site.accounts import unlock
    from services.site.server_migrate import migrate_store
    store = copy_store(_demo_master, tmp_path_factory.mktemp("server-demo"))
    name = "wl_demo_master"
    with psycopg.connect(pg_cluster.superuser_conninfo(), autocommit=True) as c:
        if not c.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (DBA[0],)).fetchone():
            c.execute(f"CREATE ROLE {DBA[0]} LOGIN CREATEROLE PASSWORD '{DBA[1]}'")
        c.execute(f'CREATE DATABASE "{name}" OWNER {DBA[0]}')
    s = unlock(store, "admin", DEMO_PASSWORDS["admin"])
    try:
        report = migrate_store(s, pg_cluster.url(name, DBA[0]), DBA[1], DEMO_PASSWORDS["admin"])
    finally:
        s.lock()
    assert report.ok, report.problems
    with psycopg.connect(pg_cluster.superuser_conninfo(name), autocommit=True) as c:
        for user, pw in DEMO_PASSWORDS.items():
            c.execute(f'ALTER ROLE "{user}" PASSWORD \'{pw}\'')
        c.execute("UPDATE wardlens.users SET must_change = 0")
    return name


DEMO_ROLES = {"admin": "admin", "dr.demo": "clinician", "nurse.demo": "nurse", "analyst.demo": "analyst"}


@pytest.fixture
def server_demo_store(pg_cluster, _server_demo_master):
    """A private copy of the server demo store (CREATE DATABASE … TEMPLATE): its URL. Logins are the cluster's, shared
    by every copy, so what a test changes of them (passwords, roles, new people) is put back afterwards."""
    import psycopg
    name = f"wl_demo_{os.urandom(3).hex()}"
    with psycopg.connect(pg_cluster.superuser_conninfo(), autocommit=True) as c:
        c.execute(f'CREATE DATABASE "{name}" TEMPLATE "{_server_demo_master}" OWNER {DBA[0]}')
    yield pg_cluster.url(name)
    prefix = "wl_wl_demo_master_"
    with psycopg.connect(pg_cluster.superuser_conninfo(), autocommit=True) as c:
        members = {u for (u,) in c.execute(
            "SELECT m.rolname FROM pg_auth_members a JOIN pg_roles r ON r.oid = a.roleid JOIN pg_roles m ON "
            "m.oid = a.member WHERE r.rolname LIKE %s AND m.rolname NOT LIKE 'wl%%'", (prefix + "%",))}
        for user in members | set(DEMO_ROLES):
            if user not in DEMO_ROLES:   # someone a test added
                c.execute(f'DROP ROLE IF EXISTS "{user}"')
                continue
            for group in ("admin", "clinician", "nurse", "analyst"):
                c.execute(f'REVOKE "{prefix}{group}" FROM "{user}"')
            c.execute(f'GRANT "{prefix}{DEMO_ROLES[user]}" TO "{user}"')
            c.execute(f'ALTER ROLE "{user}" LOGIN PASSWORD \'{DEMO_PASSWORDS[user]}\'')


@pytest.fixture(autouse=True, scope="session")
def _fast_server_signing_keys():
    """Server signing keys sealed with cheap scrypt parameters, as the desk stores of the tests are (FAST)."""
    from services.store import server_keys
    server_keys.KDF = FAST
    yield


# --- a server store with its people (tests/test_server_roles.py, test_server_attacks.py) ---------------------------
STAFF_PASSWORD = "staff-password-for-tests-9"
SERVER_PATIENT = {"mrn": "H-1001", "given_name": "Ada", "family_name": "Lovelace", "birth_date": "1950-02-03",
                  "sex": "Female", "race": "?"}


@pytest.fixture
def staff(server_store):
    """The site with a clinician, a nurse and an analyst (password STAFF_PASSWORD), and one patient."""
    from models.domain import Role
    from services.records.patients import PatientService
    from services.site.server_accounts import ServerAccounts
    admin = server_store.login()
    people = {r: server_store.name(r) for r in ("clinician", "nurse", "analyst")}
    acc = ServerAccounts(admin)
    for role, name in people.items():
        acc.add_user(name, STAFF_PASSWORD, Role(role), role.title())
    svc = PatientService(admin)
    pid = svc.add_patient(SERVER_PATIENT)
    admin.lock()
    return server_store, people, pid


def at_once(*calls) -> list:
    """Run each zero-argument call on a thread of its own, all at once (desks working together): what each returned,
    or the exception it raised, in the order given."""
    import threading
    out: list = [None] * len(calls)

    def run(i, call):
        try:
            out[i] = call()
        except Exception as exc:   # noqa: BLE001 - the caller asserts on it
            out[i] = exc
    threads = [threading.Thread(target=run, args=(i, c)) for i, c in enumerate(calls)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return out
