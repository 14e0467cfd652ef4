"""mypy over the whole package, as it installs: ``core/`` is ``ftp``, ``plugins/`` is ``ftp.plugins``,
``backends/`` is ``ftp.backends``. Settings in pyproject.toml ([tool.mypy], with the pydantic plugin)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LAYOUT = {"plugins": ROOT / "plugins", "backends": ROOT / "backends"}


def link_tree(where: Path) -> Path:
    """``where/ftp``: a link per file of core/, and plugins/ and backends/ linked in as sub-packages."""
    package = where / "ftp"
    package.mkdir()
    for item in (ROOT / "core").iterdir():
        if item.name != "__pycache__":
            (package / item.name).symlink_to(item)
    for name, folder in LAYOUT.items():
        (package / name).symlink_to(folder)
    return package


def repo_path(line: str) -> str:
    """An error's path in the tree back to the file in the repository."""
    def back(m: re.Match[str]) -> str:
        first = m.group(1)
        return f"{first}/" if first in LAYOUT else f"core/{first}"
    return re.sub(r"^ftp/([^/:]+)/?", back, line)


def test_the_package_type_checks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from mypy import api

    link_tree(tmp_path)
    monkeypatch.chdir(tmp_path)
    out, err, status = api.run(["--config-file", str(ROOT / "pyproject.toml"), "--cache-dir", str(ROOT / ".mypy_cache"),
                                "--no-error-summary", "-p", "ftp"])
    problems = [repo_path(line) for line in out.splitlines() if line.strip()]
    assert status == 0 and not err, "mypy:\n" + "\n".join(problems) + err


def test_paths_point_back_into_the_repository() -> None:
    assert repo_path("ftp/runner.py:3: error: x") == "core/runner.py:3: error: x"
    assert repo_path("ftp/plugins/pii.py:3: error: x") == "plugins/pii.py:3: error: x"
    assert repo_path("ftp/backends/local/loss.py:9: note: y") == "backends/local/loss.py:9: note: y"
