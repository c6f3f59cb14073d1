"""venv and pip: the real modules run locally, a real venv and an offline editable project in a temp dir."""

from __future__ import annotations

from pathlib import Path

import pytest

from provision.tasks.venv import Pip, Venv
from tests.unit._modrun import local_context, run_task, tree

pytestmark = pytest.mark.unit

# A PEP 517/660 backend in the project itself: the editable install needs no index, no setuptools
# and no wheel package, so the test stays offline and does not depend on the venv's bundled tools.
BACKEND = '''
import base64, hashlib, os, zipfile

NAME, VERSION = "demo_app", "0.1.0"


def _line(path, data):
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"{path},sha256={digest},{len(data)}"


def build_editable(wheel_directory, config_settings=None, metadata_directory=None):
    root = os.path.dirname(os.path.abspath(__file__))
    dist = f"{NAME}-{VERSION}.dist-info"
    files = {
        f"{NAME}.pth": (root + "\\n").encode(),
        f"{dist}/METADATA": f"Metadata-Version: 2.1\\nName: {NAME}\\nVersion: {VERSION}\\n".encode(),
        f"{dist}/WHEEL": b"Wheel-Version: 1.0\\nGenerator: test\\nRoot-Is-Purelib: true\\nTag: py3-none-any\\n",
    }
    name = f"{NAME}-{VERSION}-py3-none-any.whl"
    with zipfile.ZipFile(os.path.join(wheel_directory, name), "w") as whl:
        record = []
        for path, data in files.items():
            whl.writestr(path, data)
            record.append(_line(path, data))
        record.append(f"{dist}/RECORD,,")
        whl.writestr(f"{dist}/RECORD", "\\n".join(record) + "\\n")
    return name


build_wheel = build_editable


def build_sdist(sdist_directory, config_settings=None):
    raise NotImplementedError
'''

PYPROJECT = """[build-system]
requires = []
build-backend = "_backend"
backend-path = ["."]

[project]
name = "demo_app"
version = "0.1.0"
"""

OFFLINE = "--no-index --no-build-isolation"


@pytest.fixture(scope="module")
def venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("venv") / "env"
    first = run_task(Venv, {"path": str(path)}, local_context())
    assert first.status == "changed", first.msg
    assert (path / "pyvenv.cfg").exists()
    return path


@pytest.fixture
def project(tmp_path: Path) -> Path:
    root = tmp_path / "apps" / "demo_app"
    (root / "demo_app").mkdir(parents=True)
    (root / "demo_app" / "__init__.py").write_text("VALUE = 1\n")
    (root / "_backend.py").write_text(BACKEND)
    (root / "pyproject.toml").write_text(PYPROJECT)
    return root


def test_venv_idempotent_and_check_mode(venv: Path, tmp_path: Path) -> None:
    again = run_task(Venv, {"path": str(venv)}, local_context())
    assert again.status == "ok", again.msg
    assert again.data["python_version"]
    fresh = tmp_path / "other-env"
    would = run_task(Venv, {"path": str(fresh)}, local_context(check=True))
    assert would.status == "changed" and not fresh.exists()


def test_venv_system_site_packages_toggle_and_absent(tmp_path: Path) -> None:
    path = tmp_path / "env"
    assert run_task(Venv, {"path": str(path)}, local_context()).status == "changed"
    toggled = run_task(Venv, {"path": str(path), "system_site_packages": True}, local_context())
    assert toggled.status == "changed"
    assert "include-system-site-packages = true" in (path / "pyvenv.cfg").read_text()
    assert run_task(Venv, {"path": str(path), "system_site_packages": True}, local_context()).status == "ok"
    assert run_task(Venv, {"path": str(path), "state": "absent"}, local_context()).status == "changed"
    assert not path.exists()
    assert run_task(Venv, {"path": str(path), "state": "absent"}, local_context()).status == "ok"


def test_editable_installed_once_then_on_metadata_change(venv: Path, project: Path) -> None:
    task = {"virtualenv": str(venv), "editable": [str(project)], "extra_args": OFFLINE}
    first = run_task(Pip, task, local_context())
    assert first.status == "changed", first.msg
    assert {"name": "demo-app", "version": "0.1.0"} in first.data["installed"]
    marker = venv / ".provision" / "pip-editable-demo_app.sha256"
    assert marker.read_text().endswith(f" {project}\n")

    again = run_task(Pip, task, local_context())
    assert again.status == "ok", again.msg

    # Code changes do not matter to an editable install; metadata changes do.
    (project / "demo_app" / "__init__.py").write_text("VALUE = 2\n")
    assert run_task(Pip, task, local_context()).status == "ok"
    (project / "pyproject.toml").write_text(PYPROJECT + "# dependencies changed\n")
    before = tree(venv)
    would = run_task(Pip, task, local_context(check=True))
    assert would.status == "changed" and str(project) in would.msg
    assert tree(venv) == before
    assert run_task(Pip, task, local_context()).status == "changed"
    assert run_task(Pip, task, local_context()).status == "ok"

    # A missing distribution is reinstalled even when the marker matches.
    uninstalled = run_task(Pip, {"virtualenv": str(venv), "name": ["demo_app"], "state": "absent"}, local_context())
    assert uninstalled.status == "changed", uninstalled.msg
    assert run_task(Pip, task, local_context()).status == "changed"


def test_names_and_requirements(venv: Path, tmp_path: Path) -> None:
    assert run_task(Pip, {"virtualenv": str(venv), "name": ["pip", "setuptools>=1"]}, local_context()).status == "ok"
    would = run_task(Pip, {"virtualenv": str(venv), "name": ["pip>=999"]}, local_context(check=True))
    assert would.status == "changed" and "pip>=999" in would.msg

    requirements = tmp_path / "requirements.txt"
    requirements.write_text("pip\n")
    task = {"virtualenv": str(venv), "requirements": str(requirements), "extra_args": OFFLINE}
    assert run_task(Pip, task, local_context()).status == "changed"
    assert run_task(Pip, task, local_context()).status == "ok"
    requirements.write_text("pip\nsetuptools\n")
    assert run_task(Pip, task, local_context()).status == "changed"
    assert run_task(Pip, task, local_context()).status == "ok"


def test_missing_editable_path_fails(venv: Path, tmp_path: Path) -> None:
    result = run_task(Pip, {"virtualenv": str(venv), "editable": [str(tmp_path / "nope")]}, local_context())
    assert result.status == "failed" and "nope" in result.msg
