"""A non-editable install works: `pip install .` into a fresh virtualenv, then `cnilab run --stages 1,2`
from another directory proves both stages -- the stages and the plugin ship inside the package."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_pip_install_dot_then_run_from_elsewhere(tmp_path):
    venv = tmp_path / "venv"
    base = "/usr/bin/python3" if Path("/usr/bin/python3").exists() else sys.executable
    subprocess.run([base, "-m", "venv", str(venv)], check=True, timeout=120)
    done = subprocess.run([str(venv / "bin" / "pip"), "install", "-q", str(ROOT)], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    installed = subprocess.run([str(venv / "bin" / "python"), "-c", "import cnilab, pathlib; print(pathlib.Path(cnilab.__file__).parent)"],
                               capture_output=True, text=True, check=True, cwd=tmp_path).stdout.strip()
    assert str(ROOT) not in installed, f"cnilab was imported from the checkout ({installed}), not from the install"
    run = subprocess.run([str(venv / "bin" / "cnilab"), "run", "--stages", "1,2"], cwd=tmp_path, capture_output=True,
                         text=True, timeout=300)
    assert run.returncode == 0 and run.stdout.count("PROVEN") == 2, run.stdout[-3000:] + run.stderr[-2000:]
