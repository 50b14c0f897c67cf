"""What replicas read from disk, and how it reaches every node of a cluster.

A replica reads three trees: the model repository, the Feast repository (its yamls and
the file registry ``data/registry.db``) and the LLM checkpoint. ``server.artifacts``
says where they come from:

- ``local`` (default): the paths in the settings, as they are, on every node (one
  machine; shared storage mounted at the same path; or an image that holds them);
- ``working_dir``: they travel in the application's Ray ``runtime_env`` working_dir.
  ``stage`` copies them into one folder (fixed names: ``reengage_artifacts/model_repo/``,
  ``feature_repo/``, ``email_writer/``); Ray zips it, keeps it in the GCS and every node
  unpacks it once into the replicas' working directory (or the operator zips it with ``pack`` and
  names the zip as a remote URI in ``deploy/serve.yaml``). ``for_replicas`` turns the
  settings' paths into those relative names, and ``anchor`` (each replica's first
  step) resolves them against the replica's own working directory. The developer's or
  operator's paths are never read on a node.

Only read-only artifacts ship: state (online features, bandit) lives in Redis on a
cluster, and so do the tokens (the shared state: serving/security/shared_tokens.py), so a
token created or revoked after the deploy reaches every replica; only the settings' own
``auth.tokens`` travel with the settings.
Whatever the mode, ``anchor`` refuses to start a replica whose Feast registry or model
repository is missing (Feast would otherwise create an empty registry and the replica
would retry forever), naming the path and the fix.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import zipfile
from pathlib import Path
from typing import Any

from serving.settings import LLMSettings, ModelSettings, Settings

log = logging.getLogger("reengage")

# one folder, named like no importable package: Ray puts the working_dir first on sys.path,
# and a bare model_repo/ there would shadow the installed model_repo package
ROOT = "reengage_artifacts"
MODELS, FEATURES, LLM = f"{ROOT}/model_repo", f"{ROOT}/feature_repo", f"{ROOT}/email_writer"
# the Feast repository files a replica needs (parquet sources and the LMDB store stay home)
FEATURE_FILES = ("feature_store.yaml", "feature_store.redis.yaml", "definitions.py", ".feastignore")


class ArtifactsMissing(RuntimeError):
    """A replica's model repository or Feast registry is not where its settings say."""


# ------------------------------------------------------------------ the driver's side
def stage(settings: Settings, dest: Path) -> Path:
    """Copy (hard-link where possible) what replicas read into ``dest``; returns ``dest``."""
    dest.mkdir(parents=True, exist_ok=True)
    models = settings.models.repo_path
    found = (
        [d for d in sorted(models.iterdir()) if (d / "config.pbtxt").is_file()]
        if models.is_dir()
        else []
    )
    if not found:
        raise ArtifactsMissing(
            f"no model in {models} (a folder with config.pbtxt): run `reengage build` first"
        )
    for d in found:
        _copytree(d, dest / MODELS / d.name)
    repo = settings.features.repo_path
    registry = _registry_path(settings)
    if registry is not None and not registry.is_file():
        raise ArtifactsMissing(
            f"the Feast registry {registry} does not exist: "
            "run `reengage build` (feast apply) first"
        )
    (dest / FEATURES / "data").mkdir(parents=True, exist_ok=True)
    for name in FEATURE_FILES:
        if (repo / name).is_file():
            _link_or_copy(repo / name, dest / FEATURES / name)
    if registry is not None:  # a file registry travels; a SQL or object-store one is reached by URL
        rel = (
            registry.relative_to(repo)
            if registry.is_relative_to(repo)
            else Path("data") / registry.name
        )
        _link_or_copy(registry, dest / FEATURES / rel)
    llm = settings.llm
    if llm.enabled and llm.backend != "remote" and llm.model_path.is_dir():
        _copytree(llm.model_path, dest / LLM)
    return dest


def pack(settings: Settings, out: Path) -> Path:
    """``stage`` into one zip with a single top-level folder, the layout Ray expects of a
    remote ``working_dir`` URI (``https://``, ``s3://``, ``gs://``, ``file://`` on shared
    storage)."""
    with tempfile.TemporaryDirectory(prefix="reengage-bundle-") as tmp:
        root = stage(settings, Path(tmp) / "reengage")
        out.parent.mkdir(parents=True, exist_ok=True)
        with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zf:
            for path in sorted(root.rglob("*")):
                zf.write(path, path.relative_to(root.parent))
    return out


def runtime_env(staged: Path, env_vars: dict[str, str] | None = None) -> dict[str, Any]:
    """The job runtime_env that ships ``staged``: Serve makes it every deployment's default."""
    env: dict[str, Any] = {"working_dir": str(staged)}
    if env_vars:
        env["env_vars"] = dict(env_vars)
    return env


def for_replicas(settings: Settings) -> Settings:
    """The settings replicas get. ``working_dir``: paths relative to the shipped folder."""
    if settings.server.artifacts != "working_dir":
        return settings
    if settings.features.backend != "redis" or settings.bandit.backend != "redis":
        raise ValueError(
            "server.artifacts=working_dir ships read-only files; the online features and the "
            "shared state (bandit, tokens) must be in Redis (state: redis, redis_url: redis://HOST:6379/0)"
        )
    return settings.model_copy(
        update={
            "features": settings.features.model_copy(update={"repo_path": Path(FEATURES)}),
            "models": settings.models.model_copy(update={"repo_path": Path(MODELS)}),
            "llm": settings.llm.model_copy(update={"model_path": Path(LLM)}),
        }
    )


# ------------------------------------------------------------------ each replica's side
def anchor(settings: Settings, root: Path | None = None, check: bool = True) -> Settings:
    """Relative (shipped) paths resolved against this replica's working directory, then
    checked: a missing registry or model repository stops the replica with its cause."""
    root = root or Path.cwd()
    settings = settings.model_copy(
        update={
            "features": settings.features.model_copy(
                update={"repo_path": _under(root, settings.features.repo_path)}
            ),
            "models": anchor_models(settings.models, root, check=False),
            "llm": anchor_llm(settings.llm, root),
        }
    )
    if not check:
        return settings
    check_models(settings.models)
    registry = _registry_path(settings)
    if registry is not None and not registry.is_file():
        raise ArtifactsMissing(
            f"the Feast registry {registry} is missing on this node: "
            "ship it (server.artifacts=working_dir, docs/cluster.md), put it on shared storage, "
            "or run `reengage build` here"
        )
    return settings


def anchor_models(
    models: ModelSettings, root: Path | None = None, check: bool = True
) -> ModelSettings:
    out = models.model_copy(update={"repo_path": _under(root or Path.cwd(), models.repo_path)})
    if check:
        check_models(out)
    return out


def anchor_llm(llm: LLMSettings, root: Path | None = None) -> LLMSettings:
    return llm.model_copy(update={"model_path": _under(root or Path.cwd(), llm.model_path)})


def check_models(models: ModelSettings) -> None:
    repo = models.repo_path
    if not repo.is_dir() or not any((d / "config.pbtxt").is_file() for d in repo.iterdir()):
        raise ArtifactsMissing(
            f"the model repository {repo} is missing or empty on this node: "
            "ship it (server.artifacts=working_dir, docs/cluster.md), put it on shared storage, "
            "or run `reengage build` here"
        )


def _under(root: Path, path: Path) -> Path:
    return path if path.is_absolute() else (root / path).resolve()


def _registry_path(settings: Settings) -> Path | None:
    """The file registry the Feast yaml names (relative paths are the repository's);
    None for a registry reached by URL (SQL, s3://, gs://)."""
    import yaml

    repo = settings.features.repo_path
    try:
        config = yaml.safe_load((repo / settings.features.yaml_file.name).read_text()) or {}
    except OSError:
        return repo / "data" / "registry.db"
    registry = config.get("registry", "data/registry.db")
    text = str(registry.get("path", "data/registry.db") if isinstance(registry, dict) else registry)
    if "://" in text:
        return None
    path = Path(text)
    return path if path.is_absolute() else repo / path


def _link_or_copy(src: Path, dst: Path) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    if dst.exists():
        dst.unlink()
    try:
        os.link(src, dst)
    except OSError:  # another filesystem
        shutil.copy2(src, dst)


def _copytree(src: Path, dst: Path) -> None:
    shutil.copytree(
        src,
        dst,
        dirs_exist_ok=True,
        ignore=shutil.ignore_patterns("__pycache__", "*.pyc", ".*.tmp"),
        copy_function=lambda s, d: _link_or_copy(Path(s), Path(d)),
    )
