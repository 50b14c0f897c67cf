"""Shipping the model repository, Feast registry and LLM checkpoint to every node
(``server.artifacts=working_dir``), and a dead component answered as our error naming it."""

from __future__ import annotations

import asyncio
import shutil
import zipfile
from pathlib import Path

import pytest

from serving.deployments.artifacts import (
    FEATURES,
    LLM,
    MODELS,
    ArtifactsMissing,
    anchor,
    for_replicas,
    pack,
    stage,
)
from serving.errors import status_and_body
from serving.settings import load_settings, project_root


def tree(root: Path) -> dict:
    (root / "models" / "churn" / "1").mkdir(parents=True)
    (root / "models" / "churn" / "config.pbtxt").write_text('name: "churn"\n')
    (root / "models" / "churn" / "1" / "model.onnx").write_bytes(b"onnx")
    (root / "models" / "training").mkdir()  # code, not a model: stays home
    (root / "models" / "training" / "train.py").write_text("")
    repo = root / "features"
    (repo / "data").mkdir(parents=True)
    for name in ("feature_store.yaml", "feature_store.redis.yaml", "definitions.py"):
        shutil.copy(project_root() / "feature_store" / name, repo / name)
    (repo / "data" / "registry.db").write_bytes(b"registry")
    (repo / "data" / "customer_profile.parquet").write_bytes(b"offline data: stays home")
    (root / "llm").mkdir()
    (root / "llm" / "config.json").write_text("{}")
    return {
        "data_dir": str(root / "data"),
        "models": {"repo_path": str(root / "models")},
        "features": {"repo_path": str(repo)},
        "llm": {"model_path": str(root / "llm")},
        "state": "redis",
        "server": {"artifacts": "working_dir"},
    }


def test_stage_ships_only_what_replicas_read(tmp_path: Path) -> None:
    settings = load_settings(tree(tmp_path / "ws"))
    staged = stage(settings, tmp_path / "bundle")
    files = sorted(str(p.relative_to(staged)) for p in staged.rglob("*") if p.is_file())
    assert files == sorted(
        [
            f"{FEATURES}/data/registry.db",
            f"{FEATURES}/definitions.py",
            f"{FEATURES}/feature_store.redis.yaml",
            f"{FEATURES}/feature_store.yaml",
            f"{LLM}/config.json",
            f"{MODELS}/churn/1/model.onnx",
            f"{MODELS}/churn/config.pbtxt",
        ]
    )


def test_replicas_read_the_shipped_folder_never_the_operators_paths(tmp_path: Path) -> None:
    settings = load_settings(tree(tmp_path / "ws"))
    replica = for_replicas(settings)
    assert replica.models.repo_path == Path(MODELS) and replica.features.repo_path == Path(FEATURES)
    staged = stage(settings, tmp_path / "node2" / "working_dir")
    shutil.rmtree(
        tmp_path / "ws"
    )  # the operator's files are gone: the replica reads only its working dir
    on_node = anchor(replica, root=staged)
    assert on_node.models.repo_path == staged / MODELS
    assert on_node.features.yaml_file == staged / FEATURES / "feature_store.redis.yaml"
    assert on_node.llm.model_path == staged / LLM


def test_no_token_ships_with_the_replicas_settings(tmp_path: Path) -> None:
    """Tokens live in the shared state every replica watches (a revoked one must not live on
    in the replicas' settings); only the settings' own auth.tokens travel."""
    configured = {"name": "ci", "sha256": "a" * 64, "roles": ["admin"]}
    settings = load_settings({**tree(tmp_path / "ws"), "auth": {"tokens": [configured]}})
    assert [t.model_dump() for t in for_replicas(settings).auth.tokens] == [configured]
    with pytest.raises(ValueError, match="shared state"):
        for_replicas(
            load_settings(
                {**tree(tmp_path / "ws2"), "state": None, "features": {"backend": "redis"}}
            )
        )


def test_missing_registry_or_models_stop_the_replica_with_the_cause(tmp_path: Path) -> None:
    settings = load_settings(
        {**tree(tmp_path / "ws"), "server": {}}
    )  # local: these paths on every node
    anchor(settings)
    (settings.features.repo_path / "data" / "registry.db").unlink()
    with pytest.raises(ArtifactsMissing, match="registry.*missing on this node.*docs/cluster.md"):
        anchor(settings)
    shutil.rmtree(settings.models.repo_path)
    with pytest.raises(ArtifactsMissing, match="model repository.*missing"):
        anchor(settings)


def test_working_dir_needs_the_features_in_redis(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="must be in Redis"):
        for_replicas(load_settings({**tree(tmp_path / "ws"), "state": "embedded"}))


def test_pack_is_one_zip_with_a_single_top_level_folder(tmp_path: Path) -> None:
    out = pack(load_settings(tree(tmp_path / "ws")), tmp_path / "bundle.zip")
    names = zipfile.ZipFile(out).namelist()
    assert {n.split("/")[0] for n in names} == {
        "reengage"
    }  # Ray's layout for a remote working_dir URI
    assert f"reengage/{FEATURES}/data/registry.db" in names


def test_a_dead_component_replica_is_a_503_naming_it() -> None:
    from ray.exceptions import ActorDiedError, ActorUnavailableError
    from ray.serve.exceptions import BackPressureError

    from serving.deployments.failures import NamedHandle

    class Method:
        def __init__(self, exc: Exception) -> None:
            self.exc = exc

        def remote(self, *args: object) -> object:
            async def fail() -> None:
                raise self.exc

            return fail()

    class Handle:
        deployment_name = "EmailWriter"
        exc: Exception = ActorDiedError()

        def __getattr__(self, name: str) -> Method:
            return Method(self.exc)

    handle = Handle()
    for exc, status, kind in (
        (ActorDiedError(), 503, "dependency_unavailable"),
        (ActorUnavailableError("gone", None), 503, "dependency_unavailable"),
        (BackPressureError(num_queued_requests=9, max_queued_requests=8), 503, "overloaded"),
        (KeyError("x"), 500, "internal_error"),
    ):
        handle.exc = exc
        with pytest.raises(Exception) as caught:
            asyncio.run(NamedHandle(handle).write.remote({}))  # type: ignore[arg-type]
        got, body = status_and_body(caught.value)
        assert (got, body["error"]["type"]) == (status, kind)
        if status == 503:
            assert body["error"]["message"].startswith("the email writer is ")
            assert type(exc).__name__ in body["error"]["message"]
