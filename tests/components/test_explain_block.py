"""The explanation block: top-k by |contribution| for all rows at once, parts per version;
the typed results that cross into the dataplane (blocks, feedback) as the wire shapes."""

from __future__ import annotations

import numpy as np
import orjson

from serving.components.bandit_answers import Feedback
from serving.components.explain import Explanation, block, top_k
from serving.protocol.v1 import ExplanationBlock, FeedbackResponse

FEATURES = ("a", "b", "c", "d")


def _expl(version: str, contributions: np.ndarray, values: np.ndarray) -> Explanation:
    return Explanation(
        "churn",
        version,
        "tree_shap",
        FEATURES,
        values.astype(np.float32),
        contributions,
        np.full(len(contributions), -1.5),
        contributions.sum(axis=1) - 1.5,
    )


def test_top_k_is_by_absolute_size_largest_first_and_capped_at_the_feature_count() -> None:
    c = np.array([[0.1, -0.5, 0.3, 0.0], [2.0, 0.0, -3.0, 1.0]])
    np.testing.assert_array_equal(top_k(c, 2), [[1, 2], [2, 0]])
    assert top_k(c, 99).shape == (2, 4)
    np.testing.assert_array_equal(
        top_k(np.zeros((1, 4)), 4), [[0, 1, 2, 3]]
    )  # ties keep feature order


def test_block_scatters_parts_into_request_order_with_nulls_and_exact_values() -> None:
    rng = np.random.default_rng(0)
    values = np.array([[0.1, 2.0, 3.5, np.nan], [1.0, 0.0, 7.0, 4.0], [5.0, 5.0, 5.0, 5.0]])
    c = rng.normal(size=(3, 4))
    parts = [
        (_expl("1", c[:2], values[:2]), np.array([3, 0])),
        (_expl("2", c[2:], values[2:]), np.array([2])),
    ]
    out = block(parts, 5, 2).to_dict()
    assert out["version"] == "1,2" and out["output"] == "log_odds" and out["method"] == "tree_shap"
    assert out["contributions"][1] is None and out["contributions"][4] is None
    assert (
        np.isnan(out["base_value"][[1, 4]]).all() and (out["base_value"][[0, 2, 3]] == -1.5).all()
    )
    for row, src in ((3, 0), (0, 1), (2, 2)):
        items = out["contributions"][row]
        want = np.argsort(-np.abs(c[src]), kind="stable")[:2]
        assert [i["feature"] for i in items] == [FEATURES[j] for j in want]
        assert [i["contribution"] for i in items] == c[src, want].tolist()
        for i, j in zip(
            items, want
        ):  # float32 inputs written as their shortest decimal, NaN as NaN (null)
            assert (np.isnan(i["value"]) and np.isnan(values[src, j])) or i["value"] == float(
                str(values[src, j])
            )


def test_the_block_as_json_is_the_wire_block_for_every_row_kind() -> None:
    """``ExplanationBlock.to_dict`` is what the routes encode: it validates as the API's
    block (strict: no field more or less), found rows and null rows alike."""
    values = np.array([[0.1, 2.0, 3.5, 4.0], [1.0, 0.0, 7.0, 4.0]])
    c = np.array([[0.1, -0.5, 0.3, 0.0], [2.0, 0.0, -3.0, 1.0]])
    found_all = block([(_expl("3", c, values), np.array([0, 1]))], 2, 3)
    with_gaps = block([(_expl("3", c[:1], values[:1]), np.array([2]))], 3, 3)
    for blk in (found_all, with_gaps):
        raw = orjson.loads(orjson.dumps(blk.to_dict(), option=orjson.OPT_SERIALIZE_NUMPY))
        wire = ExplanationBlock.model_validate(raw)
        assert wire.version == "3" and wire.output == "log_odds"
    assert raw["contributions"][:2] == [None, None] and raw["base_value"][:2] == [None, None]
    assert [i["feature"] for i in raw["contributions"][2]] == ["b", "c", "a"]


def test_feedback_as_json_is_the_wire_answer() -> None:
    """The bandit's reward record crosses into the dataplane as ``Feedback`` and out of the
    route as exactly the API's ``FeedbackResponse``."""
    recorded = {
        "decision_id": "0123456789abcdef-0",
        "reward": 1,
        "action": None,
        "reason": "holdout",
        "policy_updated": False,
    }
    feedback = Feedback.of(recorded)
    assert feedback.reward == 1.0 and isinstance(feedback.reward, float)
    wire = FeedbackResponse.model_validate(feedback.to_dict())
    assert wire.model_dump() == {**recorded, "reward": 1.0}
    assert list(feedback.to_dict()) == list(FeedbackResponse.model_fields)
