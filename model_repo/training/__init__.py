"""Training and export of the reengage models into the Triton-layout model repository."""

from model_repo.training.train import TrainResult, train_churn, train_engagement, train_model

__all__ = ["TrainResult", "train_churn", "train_engagement", "train_model"]
