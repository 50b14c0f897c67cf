"""Every private Feast API the feature store wraps is still there, with the parameters we pass.

When one of these fails after a Feast upgrade, the message names the Feast API: adapt
feature_store/feast_compat.py (the only module that touches it), not its callers.
"""

from __future__ import annotations

import pyarrow as pa
import pytest
from feast import FeatureView, Field, FileSource
from feast.protos.feast.types.Value_pb2 import Value as ValueProto
from feast.types import Float32, String

from feature_store import feast_compat
from feature_store.feast_compat import PRIVATE_APIS, FeastApiChanged, PrivateApi


@pytest.mark.parametrize("api", PRIVATE_APIS, ids=lambda api: api.name)
def test_private_feast_api_is_still_there(api: PrivateApi) -> None:
    problem = api.problem()
    assert problem is None, (
        f"Feast changed a private API that feature_store/feast_compat.py wraps: {problem}"
    )


def test_a_missing_api_fails_by_name() -> None:
    gone = PrivateApi("feast.utils:_no_such_function", ("table",))
    with pytest.raises(FeastApiChanged, match=r"feast\.utils\._no_such_function is gone in feast"):
        gone.resolve()
    assert (
        "lost parameter(s) ['nope']"
        in PrivateApi("feast.utils:_run_pyarrow_field_mapping", ("nope",)).problem()
    )


def test_columns_to_value_protos_builds_typed_protos() -> None:
    view = FeatureView(
        name="v",
        entities=[],
        source=FileSource(path="x.parquet", timestamp_field="ts"),
        schema=[Field(name="name", dtype=String), Field(name="score", dtype=Float32)],
    )
    table = pa.table({"name": ["a", None], "score": pa.array([1.5, 2.5], pa.float32())})
    protos = feast_compat.columns_to_value_protos(table, view)
    assert [p.string_val for p in protos["name"]][:1] == ["a"] and not protos["name"][1].HasField(
        "string_val"
    )
    assert [p.float_val for p in protos["score"]] == [1.5, 2.5]


def test_apply_field_mapping_renames_source_columns() -> None:
    table = pa.table({"src": [1], "keep": [2]})
    assert feast_compat.apply_field_mapping(table, {"src": "feature"}).column_names == [
        "feature",
        "keep",
    ]


def test_python_values_of_protos() -> None:
    assert feast_compat.python_values(
        [ValueProto(float_val=1.5), ValueProto(string_val="x"), ValueProto()]
    ) == [1.5, "x", None]


def test_latest_rows_engine_hooks_the_engine_feast_calls() -> None:
    import inspect

    from feast.infra.compute_engines.base import ComputeEngine

    assert issubclass(feast_compat.LatestRowsEngine, ComputeEngine)
    source = inspect.getsource(ComputeEngine.materialize)
    assert "_materialize_one" in source, (
        "feast ComputeEngine.materialize no longer calls _materialize_one"
    )
