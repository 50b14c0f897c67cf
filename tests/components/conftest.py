"""The tiny real model repository of tests/serving, shared with the component tests."""

from tests.serving.conftest import model_repo  # noqa: F401  (re-exported fixture)
