"""Install and first run as an IT admin meets them: what each make target installs, stores created only where a
person meant, the version and the licences on show, the site configuration read. (The Debian package is built,
installed, smoke-tested and purged by `make deb-test` in .ci/run; the upgrade path is tests/test_upgrade.py.)"""
from __future__ import annotations

import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from services.core.about import VERSION, about
from services.core.paths import default_store_path

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))


def cli(*args: str, cwd: Path | None = None, env: dict | None = None) -> subprocess.CompletedProcess:
    e = {**os.environ, "PYTHONPATH": str(ROOT), "WARDLENS_PASSWORD": "a-new-admin-pass-1", **(env or {})}
    return subprocess.run([sys.executable, str(ROOT / "main.py"), *args], capture_output=True, text=True, env=e,
                          cwd=cwd, timeout=120, stdin=subprocess.DEVNULL)


def test_make_run_installs_the_runtime_only_and_make_test_adds_the_tools(tmp_path):
    def planned(target: str) -> str:
        r = subprocess.run(["make", "-n", f"VENV={tmp_path / 'v'}", target], cwd=ROOT, capture_output=True, text=True)
        assert r.returncode == 0, r.stderr
        return r.stdout
    run = planned("run")
    assert "pip install -q -e .\n" in run and "[dev" not in run and "train]" not in run and "torch" not in run
    test = planned("test")
    assert 'pip install -q -e ".[dev,train]"' in test and "pytest" in test
    assert 'pip install -q -e ".[train]"' in planned("train")
    runtime = " ".join(PYPROJECT["project"]["dependencies"])
    assert "torch" not in runtime and "pytest" not in runtime


@pytest.mark.parametrize("bad", ["postgresql://wardlens@db.hospital.local/wardlens", "postgres:site", "https://x/y.db"])
def test_init_refuses_a_url_and_creates_nothing(tmp_path, bad):
    """A postgresql:// URL is a server store (docs: README, several desks), and one that would not verify the server's
    certificate is refused before anything; other URL-like paths are refused as store files."""
    r = cli("init", "--db", bad, "--admin", "itadmin", cwd=tmp_path)
    why = "only over TLS that checks the server's certificate" if bad.startswith("postgresql://") else "looks like a URL"
    assert r.returncode == 1 and why in r.stderr, r.stderr
    assert list(tmp_path.iterdir()) == [], "no folder tree named after the URL"


def test_backup_refuses_a_url_and_a_missing_folder_and_creates_nothing(tmp_path, demo_store):
    env = {"WARDLENS_USER": "admin", "WARDLENS_PASSWORD": "wardlens-admin"}
    for bad, why in (("postgresql://h/db", "looks like a URL"), (str(tmp_path / "no" / "b.db"), "does not exist")):
        r = cli("backup", "--db", str(demo_store), "--output", bad, cwd=tmp_path, env=env)
        assert r.returncode == 1 and why in r.stderr, (bad, r.stderr)
    assert not (tmp_path / "postgresql:").exists() and not (tmp_path / "no").exists()


def test_commands_that_create_a_store_refuse_a_missing_folder(tmp_path):
    for cmd, why in ((["init", "--admin", "itadmin"], "only over TLS"), (["demo"], "is for a desk store file")):
        r = cli(*cmd, "--db", "postgresql://wardlens@db/wardlens", cwd=tmp_path)
        assert r.returncode == 1 and why in r.stderr, (cmd, r.stderr)
        target = tmp_path / "no-such-folder" / "deeper" / "site.db"
        r = cli(*cmd, "--db", str(target))
        assert r.returncode == 1 and "does not exist" in r.stderr, (cmd, r.stderr)
        assert not (tmp_path / "no-such-folder").exists()
    r = cli("init", "--db", str(tmp_path), "--admin", "itadmin")
    assert r.returncode == 1 and "is a folder" in r.stderr
    ok = cli("init", "--db", str(tmp_path / "site.db"), "--admin", "itadmin")
    assert ok.returncode == 0 and (tmp_path / "site.db").is_file(), ok.stderr


def test_version_is_one_number_everywhere():
    assert PYPROJECT["project"]["version"] == VERSION
    r = cli("--version")
    assert r.returncode == 0 and r.stdout.strip().startswith(f"WardLens {VERSION}")


def test_about_names_every_bundled_library_and_data_set_with_its_licence():
    info = about()
    listed = {c.name.split()[0].lower() for c in info["libraries"]}
    import json
    raw = json.loads((ROOT / "resources" / "about.json").read_text(encoding="utf-8"))
    distributions = {x["distribution"] for x in raw["libraries"]}
    for dep in PYPROJECT["project"]["dependencies"]:
        name = dep.split(">")[0].split("<")[0].split("=")[0].split("[")[0].strip()
        assert name in distributions, f"{name} is shipped but not in resources/about.json"
    assert all(c.licence and c.version and c.version != "not installed" for c in info["libraries"]), listed
    uci = next(d for d in info["data"] if "UCI" in d.name)
    assert uci.licence == "CC BY 4.0" and "doi:10.1155/2014/781670" in uci.source


def test_help_about_shows_versions_and_licences(qtbot, qt_settings, tmp_path, owner):
    from ui.main_window import MainWindow
    from viewmodels.background import BackgroundRunner
    from viewmodels.session_vm import SessionViewModel
    runner = BackgroundRunner(owner)
    vm = SessionViewModel(tmp_path / "none.db", runner, build_demo_if_missing=False, parent=owner)
    window = MainWindow(vm, runner, qt_settings)
    qtbot.addWidget(window)
    action = next(a for m in window.menuBar().findChildren(type(window.menuBar().addMenu("x")))
                  for a in m.actions() if a.text() == "&About WardLens")
    action.trigger()
    text = window.about_dialog.view.toPlainText()
    assert f"WardLens {VERSION}" in text and "CC BY 4.0" in text and "LGPL-3.0" in text and "ONNX Runtime" in text
    window.about_dialog.close()


def test_site_configuration_names_the_shared_store(tmp_path, monkeypatch):
    conf = tmp_path / "wardlens.conf"
    conf.write_text("[store]\npath = /srv/wardlens/site.db\n", encoding="utf-8")
    monkeypatch.setenv("WARDLENS_CONFIG", str(conf))
    assert default_store_path() == Path("/srv/wardlens/site.db")
    conf.write_text((ROOT / "installer" / "wardlens.conf").read_text(encoding="utf-8"), encoding="utf-8")
    monkeypatch.setenv("WARDLENS_HOME", str(tmp_path / "home"))
    assert default_store_path() == tmp_path / "home" / "wardlens.db"   # the shipped file names no store
    conf.write_text("[store\npath = x\n", encoding="utf-8")
    with pytest.raises(ValueError, match="cannot be read"):
        default_store_path()
