"""The module map in docs/architecture.md holds against the tree.

Every path the map names exists, and every module under ``serving/`` is named: by its
path, by its file name in the row of the folder that holds it, or through a sub-folder
the map names as one unit (``state/``). A module added, moved or removed without the map
following fails here.
"""

from __future__ import annotations

import re
from pathlib import Path

from serving.settings import project_root

ROOT = project_root()
PACKAGES = ("serving/", "feature_store/", "model_repo/", "loadtests/")
TOKEN = re.compile(r"`([^`\s]+)`")


def map_rows(text: str) -> list[tuple[list[str], list[str]]]:
    """(first-cell tokens, other-cell tokens) per row of the module map table."""
    section = text.split("## Module map", 1)[1].split("\n## ", 1)[0]
    rows = []
    for line in section.splitlines():
        if not line.startswith("| `"):
            continue
        first, rest = line.strip("|").split("|", 1)
        rows.append((TOKEN.findall(first), TOKEN.findall(rest)))
    return rows


def is_path(token: str) -> bool:
    return not token.startswith("/") and (
        token.endswith((".py", "/")) or token.startswith(PACKAGES)
    )


def resolve(token: str, base: Path) -> list[Path]:
    """What a token names: a project path, or a file or folder under the row's folder."""
    if token.startswith(PACKAGES):
        return [ROOT / token] if (ROOT / token).exists() else []
    name = token.rstrip("/")
    return [
        p
        for p in base.rglob(name)
        if "__pycache__" not in p.parts and p.is_dir() == token.endswith("/")
    ]


def named_paths(text: str) -> tuple[set[Path], set[Path], list[str]]:
    """Paths the map names, the folders its rows are about, and the tokens naming nothing."""
    named: set[Path] = set()
    row_folders: set[Path] = set()
    missing: list[str] = []
    for first, rest in map_rows(text):
        heads = [t for t in first if is_path(t)]
        assert heads, f"a module map row names no path: {first}"
        base = ROOT / heads[0]
        base = base if heads[0].endswith("/") else base.parent
        if heads[0].endswith("/"):
            row_folders.add(base)
        for token in heads + [t for t in rest if is_path(t)]:
            found = resolve(token, base)
            named.update(found)
            if not found:
                missing.append(f"{token} (row {heads[0]})")
    return named, row_folders, missing


def unnamed_modules(text: str) -> list[str]:
    """Modules under serving/ that the map does not name."""
    named, row_folders, _ = named_paths(text)
    units = named - row_folders  # sub-folders named as one unit cover what they hold
    return [
        str(path.relative_to(ROOT))
        for path in sorted((ROOT / "serving").rglob("*.py"))
        if path.name != "__init__.py"
        and "__pycache__" not in path.parts
        and path not in named
        and not any(parent in units for parent in path.parents)
    ]


MAP = (ROOT / "docs" / "architecture.md").read_text()


def test_every_path_the_map_names_exists() -> None:
    missing = named_paths(MAP)[2]
    assert not missing, f"docs/architecture.md names paths that do not exist: {missing}"


def test_every_serving_module_is_in_the_map() -> None:
    unnamed = unnamed_modules(MAP)
    assert not unnamed, (
        "modules under serving/ that the module map in docs/architecture.md does not name: "
        f"{unnamed}"
    )


def test_a_map_naming_a_gone_module_fails() -> None:
    assert "`lleaves.py`" in MAP
    assert named_paths(MAP.replace("`lleaves.py`", "`lleaves_gone.py`"))[2] == [
        "lleaves_gone.py (row serving/runtime/)"
    ]


def test_a_map_missing_a_module_fails() -> None:
    without = re.sub(r"`[\w/]*fast_path\.py`", "the fast path", MAP)
    assert without != MAP
    assert unnamed_modules(without) == ["serving/middleware/fast_path.py"]
