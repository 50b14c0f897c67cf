"""A generation on disk: one parquet file a table, and a manifest to skip a regeneration.

Why apart from the process: ``reengage build`` and the tests call :func:`ensure` on every
run, and only a changed generation (its parameters, or the code that draws it) is
written again.
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime
from pathlib import Path
from typing import Any

import pandas as pd

from feature_store.datagen.generate import CustomerData, build_day, generate
from feature_store.datagen.schema import FILES

PACKAGE = Path(__file__).parent


def code_hash() -> str:
    """A digest of every module of the generator: a change to any of them regenerates."""
    digest = hashlib.sha256()
    for path in sorted(PACKAGE.glob("*.py")):
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:16]


def manifest_for(customers: int, seed: int, snapshots: int, anchor: datetime) -> dict[str, Any]:
    """What identifies one generation on disk (the code hash too: a changed process regenerates)."""
    return {
        "customers": customers,
        "seed": seed,
        "snapshots": snapshots,
        "anchor": anchor.isoformat(),
        "code": code_hash(),
    }


def write(
    data: CustomerData, out_dir: Path, manifest: dict[str, Any] | None = None
) -> dict[str, Path]:
    """Write each table as ``<name>.parquet``; the manifest last, so a partial write is redone."""
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "manifest.json").unlink(missing_ok=True)
    paths = {}
    for name, frame in data.tables().items():
        path = out_dir / f"{name}.parquet"
        tmp = path.with_suffix(".parquet.tmp")
        frame.to_parquet(tmp, index=False)
        tmp.replace(path)
        paths[name] = path
    if manifest is not None:
        (out_dir / "manifest.json").write_text(json.dumps(manifest, indent=1))
    return paths


def ensure(
    out_dir: Path,
    customers: int = 100_000,
    seed: int = 7,
    snapshots: int = 2,
    anchor: datetime | None = None,
    force: bool = False,
) -> tuple[dict[str, Path], bool]:
    """Generate into ``out_dir`` unless the same generation is already there.

    Returns the table paths and whether they were (re)generated.
    """
    anchor = build_day() if anchor is None else anchor
    manifest = manifest_for(customers, seed, snapshots, anchor)
    paths = {name: out_dir / f"{name}.parquet" for name in FILES}
    current = out_dir / "manifest.json"
    if not force and current.is_file() and all(p.is_file() for p in paths.values()):
        if json.loads(current.read_text()) == manifest:
            return paths, False
    return write(generate(customers, seed, snapshots, anchor), out_dir, manifest), True


def read_labels(data_dir: Path) -> pd.DataFrame:
    return pd.read_parquet(data_dir / "labels.parquet")


def main(argv: list[str] | None = None) -> None:
    """``python -m feature_store.datagen --customers N --out DIR``: generate without Feast."""
    import argparse

    from feature_store import datagen

    parser = argparse.ArgumentParser(description=(datagen.__doc__ or "").splitlines()[0])
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--snapshots", type=int, default=2)
    parser.add_argument("--out", type=Path, default=PACKAGE.parent / "data")
    parser.add_argument("--force", action="store_true")
    args = parser.parse_args(argv)
    paths, made = ensure(args.out, args.customers, args.seed, args.snapshots, force=args.force)
    print(("wrote " if made else "up to date: ") + ", ".join(str(p) for p in paths.values()))
