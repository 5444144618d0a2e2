"""The wheel installs anywhere: built from the sources, installed into a fresh venv, `securemsg demo` run from
a directory outside the checkout serves every page, template and static file it ships.

The fresh venv installs only the wheel (no download): the third-party dependencies are seen through a .pth
line pointing at this venv's site-packages, added after the install so pip never sees the checkout's
editable securemsg. Nothing from the checkout is importable there: no PYTHONPATH, another working directory.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import sysconfig
import time
import urllib.error
import urllib.request
import venv
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("gateway", "inbox", "push", "mailer", "portal_links")

pytestmark = pytest.mark.slow


def _build_wheel(tmp: Path) -> Path:
    # A copy of exactly the sources, so a stale build/ in the checkout cannot put files into the wheel.
    src = tmp / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, src / name)
    for package in PACKAGES:
        shutil.copytree(ROOT / package, src / package, ignore=shutil.ignore_patterns("__pycache__"))
    dist = tmp / "dist"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", str(src), "--no-deps", "--no-build-isolation", "--no-index"]
        + ["--quiet", "--wheel-dir", str(dist)],
        check=True,
        timeout=120,
    )
    (wheel,) = dist.glob("securemsg-*.whl")
    return wheel


def _fresh_venv(tmp: Path, wheel: Path) -> Path:
    env_dir = tmp / "venv"
    venv.EnvBuilder(with_pip=False).create(env_dir)
    python = env_dir / "bin" / "python"
    subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(python), "install", "--quiet", "--no-deps"]
        + ["--no-index", str(wheel)],
        check=True,
        timeout=120,
    )
    site = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    ours = {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]}
    Path(site, "zz_dependencies.pth").write_text("".join(f"{path}\n" for path in sorted(ours)))
    return env_dir


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _get(url: str) -> tuple[int, str, str]:
    """Status, final URL and body; redirects are followed as a browser would."""
    try:
        with urllib.request.urlopen(url, timeout=10) as resp:
            return resp.status, resp.url, resp.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, url, exc.read().decode()


def _wait_until_serving(proc: subprocess.Popen[bytes], base: str, log: Path) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert proc.poll() is None, f"securemsg demo exited {proc.returncode}:\n{log.read_text()}"
        try:
            with urllib.request.urlopen(f"{base}/healthz", timeout=2):
                return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            time.sleep(0.2)
    pytest.fail(f"securemsg demo did not serve within 60 s:\n{log.read_text()}")


def _shipped_files(wheel: Path) -> set[str]:
    with zipfile.ZipFile(wheel) as whl:
        return {name for name in whl.namelist() if not name.endswith(".py") and ".dist-info/" not in name}


def test_the_wheel_installed_in_a_fresh_venv_runs_the_demo_with_every_page(tmp_path: Path) -> None:
    wheel = _build_wheel(tmp_path)
    data_dirs = [ROOT / "gateway" / "templates", ROOT / "gateway" / "static", ROOT / "mailer" / "templates"]
    data = {str(p.relative_to(ROOT)) for d in data_dirs for p in d.rglob("*") if p.is_file()}
    data = {name for name in data if "__pycache__" not in name}
    assert (
        len(data) > 40 and _shipped_files(wheel) == data
    )  # every page, template and static file, nothing else
    with zipfile.ZipFile(wheel) as whl:
        migrations = {n for n in whl.namelist() if n.startswith("inbox/migrations/0")}
    assert len(migrations) == len(list((ROOT / "inbox" / "migrations").glob("0*.py")))
    env_dir = _fresh_venv(tmp_path, wheel)
    where = subprocess.run(
        [
            str(env_dir / "bin" / "python"),
            "-c",
            "import gateway, mailer; print(gateway.__file__, mailer.__file__)",
        ],
        cwd=tmp_path,
        env={"PATH": os.environ["PATH"]},
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    assert str(ROOT) not in where and str(env_dir) in where  # the installed copy, not the checkout

    run_dir = tmp_path / "run"
    run_dir.mkdir()
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    log = tmp_path / "demo.log"
    env = {
        "PATH": os.environ["PATH"],
        "HOME": str(run_dir),
        "SECUREMSG_SECRET_KEY": "wheel-test-secret-0123456789",
    }
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [str(env_dir / "bin" / "securemsg"), "demo", "--port", str(port)],
            cwd=run_dir,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        _wait_until_serving(proc, base, log)
        status, _, home = _get(f"{base}/")
        assert status == 200 and "<html" in home.lower()
        # Signed out, the web inbox sends a person to the team's sign-in page (at /), and back after.
        status, url, signin = _get(f"{base}/inbox")
        assert status == 200 and url == f"{base}/?next=%2Finbox", url
        assert 'type="password"' in signin and "/static/app.css" in signin
        status, _, css = _get(f"{base}/static/app.css")
        assert status == 200 and css == (ROOT / "gateway" / "static" / "app.css").read_text()
        status, _, portal = _get(f"{base}/portal/sign-in")
        assert status == 200 and "<form" in portal
        status, _, mail = _get(f"{base}/dev/mail")
        assert status == 200 and "<html" in mail.lower()
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    assert (run_dir / "var").is_dir()  # it ran where it was started, not in the checkout
