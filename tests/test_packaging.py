"""The wheel ships web/ (templates, static files, vendored htmx), the default config and migrations,
and the package finds them from one place (paths.web_dir) when imported from the wheel."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def test_wheel_contents_and_web_dir(tmp_path: Path) -> None:
    out = tmp_path / "dist"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w", str(out), str(REPO)],
        check=True,
        timeout=300,
    )
    [wheel] = out.glob("openpanel_lite-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for required in (
        "openpanel_lite/web/static/vendor/htmx-2.0.11/htmx.min.js",
        "openpanel_lite/web/static/vendor/htmx-2.0.11/LICENSE",
        "openpanel_lite/web/templates/base.html",
        "openpanel_lite/web/static/tracker/op1.js",
        "openpanel_lite/openpanel.toml",
        "openpanel_lite/meta/migrations/001_init.sql",
        "openpanel_lite/storage/schema/duckdb/001_tables.sql",
    ):
        assert required in names, required
    entry_points = next(n for n in names if n.endswith("entry_points.txt"))
    assert "openpanel = openpanel_lite.cli:main" in zipfile.ZipFile(wheel).read(entry_points).decode()

    unpacked = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(unpacked)
    probe = (
        "import sys; sys.path.insert(0, sys.argv[1]);"
        "from openpanel_lite import paths; print(paths.web_dir()); print(paths.default_config_file())"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe, str(unpacked)], capture_output=True, text=True, check=True, cwd=tmp_path
    )
    web, config = result.stdout.split()
    assert Path(web) == unpacked / "openpanel_lite" / "web"
    assert Path(config) == unpacked / "openpanel_lite" / "openpanel.toml"
    assert (Path(web) / "templates" / "auth" / "login.html").is_file()


def test_every_imported_third_party_module_is_a_declared_dependency() -> None:
    """A module imported anywhere in the package (even inside a function) must come from a
    dependency in pyproject.toml, or a fresh `pip install .` breaks at run time."""
    import ast
    import importlib.metadata
    import re
    import tomllib

    deps = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
    declared = {re.split(r"[<>=!;\[ ]", d, maxsplit=1)[0].lower().replace("_", "-") for d in deps}
    dist_of = importlib.metadata.packages_distributions()
    imported: set[str] = set()
    for path in (REPO / "openpanel_lite").rglob("*.py"):
        text = path.read_text()
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.Import):
                imported.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                imported.add(node.module.split(".")[0])
        # Data read from another package: resources.files("pkg").
        for match in re.finditer(r"resources\.files\(\s*[\"']([A-Za-z_][\w]*)", text):
            imported.add(match.group(1))
    missing = []
    for module in sorted(imported - set(sys.stdlib_module_names) - {"openpanel_lite", "__future__"}):
        dists = {d.lower().replace("_", "-") for d in dist_of.get(module, [module])}
        if not dists & declared:
            missing.append(f"{module} (from {sorted(dists)})")
    assert missing == []
