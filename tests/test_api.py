"""The documented Python API: what README.md shows runs as shown, and the package exports what it says."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import bulkoffers

from .conftest import FIXTURES, ROOT, cli_env


def readme_python_example() -> str:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text.split("## Python API", 1)[1]
    match = re.search(r"```python\n(.*?)```", section, re.S)
    assert match, "README.md has no python example under 'Python API'"
    return match.group(1)


def test_the_readme_example_runs_against_the_emulator(tmp_path: Path) -> None:
    """The README's library example, run as a user would (its own process, the fixtures beside it),
    imports every row of the demo file and prints what the README says it prints."""
    (tmp_path / "fixtures").mkdir()
    shutil.copy(FIXTURES / "offers.csv", tmp_path / "fixtures" / "offers.csv")
    (tmp_path / "example.py").write_text(readme_python_example(), encoding="utf-8")
    out = subprocess.run([sys.executable, "example.py"], cwd=tmp_path, capture_output=True, text=True,
                         timeout=120, env={**cli_env(), "PYTHONPATH": str(ROOT)})
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "{'created': 13} True"
    assert (tmp_path / "offers.results.csv").read_text(encoding="utf-8").count("\n") == 14


def test_every_exported_name_resolves_and_nothing_heavy_loads_with_the_package() -> None:
    """`__all__` is the public API: each name is importable from the package, and importing the package
    itself loads neither pandas nor aiohttp (start-up of `bulkoffers --help`)."""
    code = ("import sys, bulkoffers; heavy = {'pandas', 'aiohttp'} & set(sys.modules); "
            "[getattr(bulkoffers, n) for n in bulkoffers.__all__]; print(sorted(heavy))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=ROOT,
                         env=cli_env())
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"
    assert set(bulkoffers.__all__) >= {"import_file", "validate", "ImportConfig", "Summary", "RowResult",
                                       "BulkOffersError", "ConfigError", "InputError", "FatalApiError"}
    assert (Path(bulkoffers.__file__).parent / "py.typed").exists()
