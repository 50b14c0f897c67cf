"""`reengage build`: data -> feast apply -> materialize -> train churn -> train engagement.

Every step is idempotent: data is regenerated only when its manifest (size, seed,
snapshots, anchor day, generator code) changes, the embedded online store is
re-materialized only when the data or its config changed, and a model version is added
only when its fingerprint differs from the newest one's.
"""

from __future__ import annotations

import json
import time
from collections.abc import Collection
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

from serving.settings import Settings

STEPS: tuple[str, ...] = (
    "generate",
    "apply",
    "materialize",
    "train_churn",
    "train_engagement",
    "llm",
)


def run_build(
    settings: Settings,
    console: Console | None = None,
    *,
    steps: Collection[str] = STEPS,
    force: bool = False,
) -> dict[str, Any]:
    """Run the build steps in order (those in ``steps``); returns what was done and how long.

    ``force`` regenerates the data and re-materializes even when nothing changed (model
    versions still follow their fingerprints: identical inputs never add a version).
    """
    unknown = set(steps) - set(STEPS)
    if unknown:
        raise ValueError(f"unknown build steps {sorted(unknown)}; choose from {STEPS}")
    console = console or Console(stderr=True)
    summary: dict[str, Any] = {
        "customers": settings.data.customers,
        "seed": settings.data.seed,
        "snapshots": settings.data.snapshots,
        "backend": settings.features.backend,
        "steps": {},
        "models": {},
    }
    t_all = time.perf_counter()
    with _progress(console) as progress:
        state = _State(settings, progress, force)
        for name in STEPS:
            if name not in steps or (name == "llm" and not settings.llm.enabled):
                summary["steps"][name] = {"skipped": True, "seconds": 0.0}
                continue
            t0 = time.perf_counter()
            info = getattr(state, name)()
            if name.startswith("train_"):
                summary["models"][info["model"]] = _model_summary(info)
                info = {k: v for k, v in info.items() if k != "metrics"}
            summary["steps"][name] = {**info, "seconds": round(time.perf_counter() - t0, 3)}
    summary["total_seconds"] = round(time.perf_counter() - t_all, 3)
    _print_summary(console, summary)
    return summary


class _State:
    """What one build run shares between its steps (the store, the labels, the manifest)."""

    def __init__(self, settings: Settings, progress: Progress, force: bool) -> None:
        self.settings, self.progress, self.force = settings, progress, force
        self.data_dir = settings.features.repo_path / "data"
        self.regenerated = False
        self._store: Any = None
        self._labels: Any = None

    @property
    def store(self) -> Any:
        if self._store is None:
            from feature_store.repo import load_store

            self._store = load_store(self.settings.features)
        return self._store

    @property
    def labels(self) -> Any:
        if self._labels is None:
            from feature_store.datagen.files import read_labels

            self._labels = read_labels(self.data_dir)
        return self._labels

    def generate(self) -> dict[str, Any]:
        from feature_store.datagen.files import ensure

        d = self.settings.data
        task = self.progress.add_task(f"generate {d.customers:,} customers", total=1)
        _, self.regenerated = ensure(
            self.data_dir, d.customers, d.seed, d.snapshots, force=self.force
        )
        self.progress.update(
            task,
            advance=1,
            description="generate: " + ("written" if self.regenerated else "up to date"),
        )
        return {"regenerated": self.regenerated, "path": str(self.data_dir)}

    def apply(self) -> dict[str, Any]:
        from feature_store.repo import apply

        task = self.progress.add_task("feast apply", total=1)
        out = apply(self.store)
        self.progress.update(task, advance=1)
        return {
            "changes": [
                line
                for line in out.splitlines()
                if line.startswith(("Created", "Updated", "Deleted"))
            ]
        }

    def materialize(self) -> dict[str, Any]:
        from feature_store.repo import materialize

        marker = self.data_dir / f"materialized.{self.settings.features.backend}.json"
        stamp = self._online_stamp()
        embedded = self.settings.features.backend == "embedded"
        if embedded and not self.force and marker.is_file() and marker.read_text() == stamp:
            self.progress.update(
                self.progress.add_task("materialize: up to date", total=1), advance=1
            )
            return {"materialized": False}
        marker.unlink(missing_ok=True)
        self._export_suppression()
        views = materialize(self.store, progress=self.progress)
        marker.write_text(stamp)
        return {"materialized": True, "view_seconds": {k: round(v, 3) for k, v in views.items()}}

    def _export_suppression(self) -> None:
        """Erased customers' suppression entries, from the shared state to where the online
        store's writes read them: materializing never brings an erased customer back."""
        from feature_store.repo import export_suppression
        from serving.privacy.consent import SUPPRESSION
        from serving.privacy.pseudonym import key_source
        from serving.shared_state import open_shared_state

        state = open_shared_state(self.settings)
        try:
            export_suppression(
                self.store, key_source(self.settings.privacy), sorted(state.items(SUPPRESSION))
            )
        finally:
            state.close()

    def _online_stamp(self) -> str:
        """Data manifest + online store config: a change in either re-materializes."""
        manifest = (self.data_dir / "manifest.json").read_text()
        online = self.store.config.online_store
        cfg = online.model_dump(mode="json") if hasattr(online, "model_dump") else str(online)
        return json.dumps(
            {"manifest": json.loads(manifest), "online_store": cfg}, sort_keys=True, default=str
        )

    def train_churn(self) -> dict[str, Any]:
        from model_repo.training import train_churn

        return self._train(train_churn, self.settings.models.churn)

    def train_engagement(self) -> dict[str, Any]:
        from model_repo.training import train_engagement

        return self._train(train_engagement, self.settings.models.engagement)

    def llm(self) -> dict[str, Any]:
        """The email writer's checkpoint (HF format), skipped when its fingerprint matches."""
        from model_repo.training.llm import build_checkpoint

        llm = self.settings.llm
        task = self.progress.add_task("email writer checkpoint (fine-tune on CPU)", total=1)
        out = build_checkpoint(
            llm.model_path,
            base_model=llm.base_model,
            lora=llm.lora,
            steps=llm.train_steps,
            seed=llm.train_seed,
        )
        self.progress.update(
            task,
            advance=1,
            description="email writer: " + ("up to date" if out.get("skipped") else "trained"),
        )
        keys = (
            "skipped",
            "heldout_action_mention_rate",
            "heldout_guardrail_pass_rate",
            "build_seconds",
        )
        return {
            "path": str(llm.model_path),
            **{k: out.get(k) for k in keys},
            "adapters": self._adapters(),
        }

    def _adapters(self) -> dict[str, Any]:
        """One LoRA adapter per brand voice over the checkpoint (vLLM serves them per request)."""
        from model_repo.training.adapters import build_adapter

        llm = self.settings.llm
        built: dict[str, Any] = {}
        for voice in llm.voices:
            task = self.progress.add_task(f"LoRA adapter {voice!r}", total=1)
            out = build_adapter(
                llm.model_path,
                llm.adapters_dir / voice,
                voice,
                steps=llm.adapter_steps,
                seed=llm.train_seed,
                rank=min(8, llm.max_lora_rank),
            )
            self.progress.update(
                task,
                advance=1,
                description=f"LoRA adapter {voice!r}: "
                + ("up to date" if out.get("skipped") else "trained"),
            )
            built[voice] = {k: out.get(k) for k in ("skipped", "final_loss", "build_seconds")}
        return built

    def _train(self, fn: Any, name: str) -> dict[str, Any]:
        # One thread: OpenMP/torch threads on cores shared with other processes wait on each
        # other, so training runs slower with more of them than with one.
        r = fn(
            self.store,
            self.labels,
            self.settings.models.repo_path,
            name=name,
            threads=1,
            progress=self.progress,
        )
        return {"model": r.model, "version": r.version, "reused": r.reused, "metrics": r.metrics}


def _model_summary(info: dict[str, Any]) -> dict[str, Any]:
    m = info["metrics"]
    keys = ("holdout_auc", "bayes_auc", "holdout_logloss", "bayes_logloss", "n_train", "n_holdout")
    return {"version": info["version"], "reused": info["reused"], **{k: m.get(k) for k in keys}}


def _progress(console: Console) -> Progress:
    return Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        TimeElapsedColumn(),
        console=console,
    )


def _print_summary(console: Console, summary: dict[str, Any]) -> None:
    for step, info in summary["steps"].items():
        console.print(
            f"  {step:<17} {info['seconds']:>8.1f} s"
            + ("  (skipped)" if info.get("skipped") else "")
        )
    for name, m in summary["models"].items():
        state = "reused" if m["reused"] else "new"
        console.print(
            f"  {name}: version {m['version']} ({state}), holdout AUC {m['holdout_auc']:.4f} "
            f"vs Bayes {m['bayes_auc']:.4f}"
        )
