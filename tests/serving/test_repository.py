from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from serving.errors import InvalidRequest, ModelNotFound
from serving.repository import check_version, read_model, scan

from tests.serving.conftest import write_config, write_version


def test_scan_finds_models_with_config_only(model_repo: Path) -> None:
    specs = scan(model_repo)
    assert sorted(specs) == ["churn", "engagement"]


def test_config_pbtxt_is_read_as_triton_does(model_repo: Path) -> None:
    spec = read_model(model_repo, "churn")
    assert spec.platform == "onnxruntime_onnx"
    assert spec.max_batch_size == 10_000
    assert [t.to_dict() for t in spec.inputs] == [
        {"name": "features", "datatype": "FP32", "shape": [-1, 3]}
    ]
    assert spec.outputs[0].shape == (-1, 1)
    assert spec.max_queue_delay_s == pytest.approx(0.002)
    assert spec.feature_service == "churn_service"
    assert list(spec.versions) == ["1", "2"] and spec.newest == "2"
    assert spec.versions["2"].features == ("a", "b", "c")


def test_version_policy_latest_serves_only_newest(tmp_path: Path) -> None:
    write_config(tmp_path / "m", "m", 3, policy="latest { num_versions: 1 }")
    for v in (1, 2, 10):
        write_version(tmp_path / "m", v, np.ones(3), 0.0, ("a", "b", "c"))
    spec = read_model(tmp_path, "m")
    assert spec.policy_versions == ("10",)  # numeric, not lexicographic, order


def test_incomplete_version_folder_is_ignored(model_repo: Path) -> None:
    (model_repo / "churn" / "3").mkdir()  # being written: no model.onnx yet
    assert read_model(model_repo, "churn").newest == "2"


def test_check_version_errors(model_repo: Path) -> None:
    spec = read_model(model_repo, "churn")
    assert check_version(spec, None) == "2"
    with pytest.raises(ModelNotFound) as missing:
        check_version(spec, "7")
    assert missing.value.field == "model_version"
    with pytest.raises(InvalidRequest):
        check_version(spec, "latest")
    with pytest.raises(ModelNotFound):
        read_model(model_repo, "nope")
