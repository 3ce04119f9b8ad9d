"""The README's first two commands on a clean environment: install the package, run the demo.

The virtual environment is new and isolated (no system site-packages); the project comes from
the working tree (its sources, pyproject and README, copied so the build leaves no trace in
the repository). pip is the test interpreter's own, pointed at the new environment with
`--python`: the same installation as the environment's own pip would make, without the
seconds that bootstrapping pip into it costs. Dependencies come from the index or pip's cache.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

from flowexec import demo

REPO = Path(__file__).resolve().parents[2]


def copy_project(target: Path) -> Path:
    shutil.copytree(
        REPO / "src", target / "src",
        ignore=shutil.ignore_patterns("__pycache__", "*.egg-info", "*.pyc"),
    )
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        if (REPO / name).exists():
            shutil.copy2(REPO / name, target / name)
    return target


def test_pip_install_then_flowexec_demo(tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    subprocess.run(
        [sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=60
    )
    python = venv / "bin" / "python"
    project = copy_project(tmp_path / "project")
    install = subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(python), "install", "--quiet",
         str(project)],
        capture_output=True, text=True, timeout=300, check=False,
    )
    assert install.returncode == 0, install.stdout + install.stderr

    isolated = subprocess.run(
        [str(python), "-c", "import sys, flowexec; print(sys.prefix); print(flowexec.__file__)"],
        capture_output=True, text=True, timeout=60, check=True, cwd=tmp_path,
    )
    prefix, module_file = isolated.stdout.split()
    assert Path(prefix) == venv and Path(module_file).is_relative_to(venv)

    workdir = tmp_path / "work"
    workdir.mkdir()
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHONPATH", "FLOWEXEC_DATABASE_URL", "FLOWEXEC_TABLE_PREFIX")}
    env["PATH"] = f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    result = subprocess.run(
        ["flowexec", "demo"], cwd=workdir, env=env, capture_output=True, text=True,
        timeout=120, check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    total = demo.expected_executions()
    lines = result.stdout.splitlines()
    summary = [line for line in lines if line.startswith("demo: ")]
    assert len(summary) == 1, result.stdout
    assert re.fullmatch(
        rf"demo: {total}/{total} executions completed \(5 trees, up to 3 levels deep\); "
        r"1 retried after a failure; 2 recovered from killed worker demo-doomed by "
        r"demo-rescuer; \d+\.\ds",
        summary[0],
    ), summary[0]
    removed = re.search(r"removed the throwaway database in (\S+)", result.stdout)
    assert removed is not None, result.stdout
    assert not Path(removed.group(1)).exists()  # it leaves nothing behind ...
    assert list(workdir.iterdir()) == []  # ... not even in the directory it ran in
