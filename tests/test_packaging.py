"""A built wheel (non-editable install) carries its configs and runs without the source tree."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def test_wheel_install_finds_its_configs(tmp_path: Path):
    source = tmp_path / "src"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, source / name)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    shutil.copytree(REPO / "kta_cli", source / "kta_cli", ignore=ignore)
    shutil.copytree(REPO / "configs", source / "configs", ignore=ignore)
    wheels, site = tmp_path / "wheels", tmp_path / "site"
    pip = [sys.executable, "-m", "pip", "-q", "--disable-pip-version-check"]
    subprocess.run(
        [*pip, "wheel", "--no-deps", "--no-build-isolation", "-w", str(wheels), str(source)],
        check=True,
        capture_output=True,
    )
    wheel = next(wheels.glob("kta-*.whl"))
    subprocess.run(
        [*pip, "install", "--no-deps", "--target", str(site), str(wheel)],
        check=True,
        capture_output=True,
    )
    shutil.rmtree(source)  # nothing may come from the source tree any more

    code = (
        "import kta_cli, sys; from kta_cli.cli import main; "
        "from kta_cli.overrides import config_dir; "
        "print(kta_cli.__file__); print(config_dir()); main(['train', '--cfg', 'job'])"
    )
    run_dir = tmp_path / "elsewhere"
    run_dir.mkdir()
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=run_dir,
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(site)},
    )
    assert result.returncode == 0, result.stderr[-2000:]
    module_file, configs, *config_text = result.stdout.splitlines()
    assert module_file.startswith(str(site)) and configs == str(site / "kta_cli" / "configs")
    assert "name: resnet18" in "\n".join(config_text)


def test_every_package_of_the_source_tree_is_listed_for_the_wheel():
    """pyproject lists packages by hand (configs/ is mapped into kta_cli.configs), so a new
    package left off the list would be missing from an installed kta."""
    import tomllib

    listed = set(
        tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]
    )
    on_disk = {
        ".".join(folder.relative_to(REPO).parts)
        for folder in (REPO / "kta_cli").rglob("*")
        if folder.is_dir() and any(folder.glob("*.py")) and "__pycache__" not in folder.parts
    } | {"kta_cli"}
    assert on_disk - listed == set()
    for package in on_disk:
        assert (REPO / package.replace(".", "/") / "__init__.py").is_file(), package
