"""The built wheel: the demo graph ships as `voiceagent.demo`, and no top-level `agents`.

`agents` is the import name of the OpenAI Agents SDK (`openai-agents`); a wheel that
installed the demo folder as `agents` would shadow it, or be shadowed by it. The wheel
is built from a copy of the sources (the checkout is left untouched) and imported with
`python -S`, so neither the editable install nor the checkout is on the path.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import tomllib
import venv
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

# What a user's process checks after `pip install voiceagent openai-agents`.
PROBE = """
import agents, voiceagent
from voiceagent.config import Settings
from voiceagent.graph import DEFAULT_AGENT_PATH, load_agent
print(agents.__file__)
print(voiceagent.__file__)
print(load_agent(Settings().agent).name, load_agent(DEFAULT_AGENT_PATH).name)
"""


def _tree_packages() -> set[str]:
    return {
        ".".join(init.parent.relative_to(ROOT).parts)
        for init in (ROOT / "voiceagent").rglob("__init__.py")
        if "__pycache__" not in init.parts
    }


def test_the_package_list_names_every_package_of_the_tree() -> None:
    setuptools = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    assert set(setuptools["packages"]) == _tree_packages() | {"voiceagent.demo"}
    assert setuptools["package-dir"] == {"voiceagent.demo": "agents"}
    assert (ROOT / "agents" / "__init__.py").is_file()


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    source = tmp_path_factory.mktemp("source")
    ignore = shutil.ignore_patterns("__pycache__", "*.egg-info")
    for folder in ("voiceagent", "agents"):
        shutil.copytree(ROOT / folder, source / folder, ignore=ignore)
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(out), str(source)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    (built,) = out.glob("voiceagent-*.whl")
    return built


def test_the_wheel_has_the_demo_inside_voiceagent_and_no_top_level_agents(wheel: Path) -> None:
    names = zipfile.ZipFile(wheel).namelist()
    assert "voiceagent/demo/airline.py" in names
    assert "voiceagent/demo/__init__.py" in names
    assert "voiceagent/brain/policy.py" in names
    assert not [name for name in names if name.startswith("agents/")]
    top_level = next(name for name in names if name.endswith(".dist-info/top_level.txt"))
    assert zipfile.ZipFile(wheel).read(top_level).decode().split() == ["voiceagent"]


def test_the_installed_default_agent_loads_beside_another_agents_package(
    wheel: Path, tmp_path: Path
) -> None:
    """The wheel unpacked next to a stand-in `agents` package (the SDK's import name)."""
    installed = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(installed)
    (tmp_path / "other" / "agents").mkdir(parents=True)
    (tmp_path / "other" / "agents" / "__init__.py").write_text("")
    # The dependencies (trio, ...) come from this environment's site-packages, read
    # as a plain path: -S skips its .pth files, so the editable install is not used.
    path = [installed, tmp_path / "other", Path(sysconfig.get_paths()["purelib"])]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(map(str, path))}
    env.pop("VOICEAGENT_AGENT", None)
    out = subprocess.run(
        [sys.executable, "-S", "-c", PROBE],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    agents_file, voiceagent_file, names = out.stdout.splitlines()
    assert agents_file == str(tmp_path / "other" / "agents" / "__init__.py")
    assert voiceagent_file == str(installed / "voiceagent" / "__init__.py")
    assert names == "Triage Agent Triage Agent"


def test_the_wheel_installs_beside_the_openai_agents_sdk(wheel: Path, tmp_path: Path) -> None:
    """A fresh venv with the wheel and `openai-agents` (from the package index; 28 s
    here with pip's cache warm for voiceagent's own dependencies)."""
    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=True)
    python = env_dir / "bin" / "python"
    subprocess.run(
        [python, "-m", "pip", "install", "-q", str(wheel), "openai-agents"],
        check=True,
        capture_output=True,
        timeout=900,
    )
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VOICEAGENT_AGENT")}
    out = subprocess.run(
        [python, "-c", PROBE + "from agents import Agent, Runner\nprint(Runner.__name__)\n"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    agents_file, voiceagent_file, names, runner = out.stdout.splitlines()
    site = Path(agents_file).parents[1]
    assert site.is_relative_to(env_dir), agents_file
    assert Path(voiceagent_file) == site / "voiceagent" / "__init__.py"
    assert names == "Triage Agent Triage Agent"
    assert runner == "Runner"
