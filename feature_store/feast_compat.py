"""Every private Feast API the feature store relies on, in one place, each checkable.

Feast documents ``FeatureStore``, the ``OnlineStore`` / ``ComputeEngine`` interfaces and
their config base; the bulk paths here need a few names beyond that (underscore
functions, internal modules). Each is a :class:`PrivateApi`: the wrappers below resolve
it by name and fail with :class:`FeastApiChanged` naming it, and
``tests/feature_store/test_feast_compat.py`` checks every entry of :data:`PRIVATE_APIS`
so a Feast upgrade that moves one fails there first, by name.
"""

from __future__ import annotations

import importlib
import inspect
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Iterable

import pyarrow as pa
from feast import FeatureStore, FeatureView, RepoConfig
from feast.protos.feast.types.Value_pb2 import Value as ValueProto


class FeastApiChanged(RuntimeError):
    """A private Feast API this project wraps is gone or has another signature."""


@dataclass(frozen=True)
class PrivateApi:
    """One private Feast name (``module:attr.attr``) and the parameters we pass it."""

    path: str
    params: tuple[str, ...] = ()

    @property
    def name(self) -> str:
        return self.path.replace(":", ".")

    def resolve(self) -> Any:
        """The object itself; :class:`FeastApiChanged` naming it when it cannot be found."""
        module, _, attrs = self.path.partition(":")
        try:
            obj: Any = importlib.import_module(module)
            for attr in attrs.split("."):
                obj = getattr(obj, attr)
        except (ImportError, AttributeError) as exc:
            raise FeastApiChanged(
                f"{self.name} is gone in feast {_feast_version()}: {exc}"
            ) from exc
        return obj

    def problem(self) -> str | None:
        """Why this API no longer fits (missing, or a parameter we pass is gone), or None."""
        try:
            obj = self.resolve()
        except FeastApiChanged as exc:
            return str(exc)
        if not self.params:
            return None
        have = set(inspect.signature(obj).parameters)
        lost = [p for p in self.params if p not in have]
        if lost:
            return (
                f"{self.name} in feast {_feast_version()} lost parameter(s) {lost}; "
                f"it takes {sorted(have)}"
            )
        return None


def _feast_version() -> str:
    import feast

    return str(getattr(feast, "__version__", "?"))


COLUMNS_TO_PROTOS = PrivateApi("feast.utils:_columns_to_proto_values", ("table", "columns"))
FIELD_MAPPING = PrivateApi("feast.utils:_run_pyarrow_field_mapping", ("table", "field_mapping"))
PROVIDER_OFFLINE_STORE = PrivateApi(
    "feast.infra.passthrough_provider:PassthroughProvider.offline_store"
)
APPLY_TOTAL = PrivateApi(
    "feast.repo_operations:apply_total", ("repo_config", "repo_path", "skip_source_validation")
)
VALUE_TO_PYTHON = PrivateApi(
    "feast.type_map:feast_value_type_to_python_type", ("field_value_proto",)
)
LOCAL_ENGINE = PrivateApi("feast.infra.compute_engines.local.compute:LocalComputeEngine")
MATERIALIZE_ONE = PrivateApi(
    "feast.infra.compute_engines.local.compute:LocalComputeEngine._materialize_one",
    ("registry", "task"),
)
TASK = PrivateApi(
    "feast.infra.common.materialization_job:MaterializationTask",
    ("feature_view", "start_time", "end_time", "only_latest"),
)
JOB = PrivateApi(
    "feast.infra.compute_engines.local.job:LocalMaterializationJob", ("job_id", "status", "error")
)
JOB_SUCCEEDED = PrivateApi(
    "feast.infra.common.materialization_job:MaterializationJobStatus.SUCCEEDED"
)
JOB_ERROR = PrivateApi("feast.infra.common.materialization_job:MaterializationJobStatus.ERROR")

PRIVATE_APIS: tuple[PrivateApi, ...] = (
    COLUMNS_TO_PROTOS,
    FIELD_MAPPING,
    PROVIDER_OFFLINE_STORE,
    APPLY_TOTAL,
    VALUE_TO_PYTHON,
    LOCAL_ENGINE,
    MATERIALIZE_ONE,
    TASK,
    JOB,
    JOB_SUCCEEDED,
    JOB_ERROR,
)


def columns_to_value_protos(table: pa.Table, view: FeatureView) -> dict[str, list[ValueProto]]:
    """``ValueProto``s per feature of ``view`` from an Arrow table, as Feast's writers make them."""
    columns = [(f.name, f.dtype.to_value_type()) for f in view.features]
    return COLUMNS_TO_PROTOS.resolve()(table.combine_chunks().to_batches()[0], columns)


def apply_field_mapping(table: pa.Table, field_mapping: dict[str, str]) -> pa.Table:
    """Rename source columns to feature names, as Feast does after an offline pull."""
    return FIELD_MAPPING.resolve()(table, field_mapping)


def offline_store_of(store: FeatureStore) -> Any:
    """The offline store instance behind ``store`` (Feast's local provider holds it)."""
    provider = store.provider
    PROVIDER_OFFLINE_STORE.resolve()  # fail by name if the provider no longer exposes it
    return provider.offline_store


def apply_repo(config: RepoConfig, repo_path: Path) -> None:
    """Exactly `feast apply`: Feast's CLI function (it ``chdir``s into ``repo_path``)."""
    APPLY_TOTAL.resolve()(config, repo_path, skip_source_validation=False)


def python_values(protos: Iterable[ValueProto]) -> list[Any]:
    """Python values of ``ValueProto``s (None where unset), as ``to_dict`` shows them."""
    convert = VALUE_TO_PYTHON.resolve()
    return [convert(p) for p in protos]


class LatestRowsEngine(LOCAL_ENGINE.resolve()):  # type: ignore[misc]
    """Feast's local compute engine with a public hook for "latest row per entity" tasks.

    Feast materializes through the engine's private ``_materialize_one`` (one call per
    view and window). Views for which :meth:`takes_latest` is true go to
    :meth:`materialize_latest` instead, reported back as Feast's job object; the rest
    (and tasks that want history) take Feast's own path.
    """

    def takes_latest(self, view: Any) -> bool:
        """Whether :meth:`materialize_latest` writes this view (default: none)."""
        return False

    def materialize_latest(self, view: FeatureView, start: datetime, end: datetime) -> None:
        """Write the latest offline row per entity of ``view`` in [start, end] online."""
        raise NotImplementedError

    def _materialize_one(self, registry: Any, task: Any, **kwargs: Any) -> Any:
        view = task.feature_view
        if not (task.only_latest and self.takes_latest(view)):
            return super()._materialize_one(registry, task, **kwargs)
        job, job_id = JOB.resolve(), f"{view.name}-{task.start_time}-{task.end_time}"
        try:
            self.materialize_latest(view, task.start_time, task.end_time)
        except Exception as exc:  # reported through the job, as Feast's engines do
            return job(job_id=job_id, status=JOB_ERROR.resolve(), error=exc)
        return job(job_id=job_id, status=JOB_SUCCEEDED.resolve())
