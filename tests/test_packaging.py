"""Packaging: every package directory ships, and the suites are found outside the repo."""

from __future__ import annotations

import sys
from pathlib import Path

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

ROOT = Path(__file__).resolve().parent.parent


def _declared() -> tuple[set[str], dict[str, str]]:
    tool = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    return set(tool["packages"]), tool.get("package-dir", {})


def _package_dirs() -> dict[str, Path]:
    """Every directory holding an __init__.py, under the import name it installs as."""
    found: dict[str, Path] = {}
    for init in ROOT.glob("benchtool/**/__init__.py"):
        rel = init.parent.relative_to(ROOT)
        found[".".join(rel.parts)] = init.parent
    for init in ROOT.glob("plugins/*/**/__init__.py"):
        rel = init.parent.relative_to(ROOT / "plugins")
        found[".".join(rel.parts)] = init.parent
    for init in ROOT.glob("suites/**/__init__.py"):
        rel = init.parent.relative_to(ROOT / "suites")
        found[".".join(("benchtool_suites", *rel.parts))] = init.parent
    return found


def test_every_package_directory_is_declared() -> None:
    declared, _ = _declared()
    missing = sorted(set(_package_dirs()) - declared)
    assert not missing, f"add these to [tool.setuptools] packages in pyproject.toml: {missing}"


def test_every_declared_package_exists() -> None:
    declared, package_dir = _declared()
    found = _package_dirs()
    absent = sorted(name for name in declared if name not in found)
    assert not absent, f"declared but missing on disk: {absent}"
    assert package_dir["benchtool_suites"] == "suites"


def test_no_generic_top_level_names() -> None:
    declared, _ = _declared()
    assert all(name.split(".")[0].startswith("benchtool") for name in declared)
