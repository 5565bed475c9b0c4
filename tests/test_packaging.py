"""The built wheel carries the recipes, and a non-editable install resolves them by name."""

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_the_wheel_holds_the_recipes_and_an_install_of_it_resolves_tiny_and_paper(tmp_path):
    src = tmp_path / "src"  # a copy: the build writes build/ and egg-info beside the sources, never in the checkout
    shutil.copytree(ROOT / "zerosearch", src / "zerosearch", ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, src / name)
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", tmp_path, src],
        check=True,
    )
    (wheel,) = tmp_path.glob("zerosearch-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    assert {"zerosearch/recipes/tiny.yaml", "zerosearch/recipes/paper.yaml"} <= names
    # A venv that sees our dependencies but gets its own, non-editable zerosearch from the wheel.
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", venv], check=True)
    python = venv / "bin" / "python"
    subprocess.run([python, "-m", "pip", "install", "-q", "--no-deps", wheel], check=True)
    code = (
        "import zerosearch, zerosearch.config as c; assert 'site-packages' in zerosearch.__file__, zerosearch.__file__;"
        "print(c.load_config(c.TrainConfig, 'tiny').rl.algo, c.load_config(c.TrainConfig, 'paper').model.spec)"
    )
    out = subprocess.run([python, "-c", code], cwd=tmp_path, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["grpo", "Qwen/Qwen2.5-7B"]
    help_ = subprocess.run(
        [venv / "bin" / "zerosearch", "train", "--help"], cwd=tmp_path, capture_output=True, text=True
    )
    assert help_.returncode == 0 and "--config" in help_.stdout
