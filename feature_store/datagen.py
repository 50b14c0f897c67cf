"""Seeded synthetic customers with a known label process.

Why synthetic with a *documented* process: the churn and engagement labels are Bernoulli
draws from probabilities that are explicit functions of the observed features (below),
so the best AUC any model can reach on a holdout (the Bayes limit) is computable and
recorded beside each model's own AUC.

Generative process (all draws from one ``numpy.random.Generator(seed)``):

1. Static traits per customer: plan tier (0 basic, 1 plus, 2 premium; 50/35/15 %),
   annual plan (Bernoulli 0.25 + 0.1 tier), region (5 regions), age, monthly fee,
   tenure at the first snapshot, average order value, a first name and email.
2. Three latent traits (activity, email affinity, friction) follow an AR(1) process
   across ``snapshots`` weekly snapshots (``x_s = 0.8 x_{s-1} + 0.6 eps``), so values
   drift between snapshots. Each snapshot draws its observed counts from the latents:
   orders (Poisson, nested 30 ⊆ 90 ⊆ 365 day windows), spend (orders x order value x
   lognormal noise), recency (consistent with the windows), emails sent (Poisson),
   opens (Binomial of sent), clicks (Binomial of opens), sessions, payment failures,
   support tickets, open ticket, discount redemptions.
3. Labels are observed at snapshot ``snapshots - 2`` (one week before the latest) at
   that snapshot's timestamp + 1 hour, and drawn as Bernoulli(p) with
   ``p = sigmoid(logit)`` where the logits are :func:`churn_logit` and
   :func:`engagement_logit` of that snapshot's *stored* (float32) features. The
   Bernoulli draw is the noise; the latents never enter the label directly.
4. The latest snapshot is anchored at ``anchor`` (default: today, UTC midnight), earlier
   ones a week apart; each row's timestamp is jittered back by up to 6 hours. Feature
   *values* depend only on the seed, never on the anchor.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

PROFILE_FEATURES: tuple[str, ...] = (
    "tenure_days",
    "plan_tier",
    "is_annual_plan",
    "region_code",
    "monthly_fee",
    "payment_failures_30d",
    "payment_failures_90d",
    "support_tickets_30d",
    "support_tickets_90d",
    "open_ticket",
    "discount_redemptions_365d",
    "age_years",
)
ACTIVITY_FEATURES: tuple[str, ...] = (
    "recency_days",
    "orders_30d",
    "orders_90d",
    "orders_365d",
    "spend_30d",
    "spend_90d",
    "spend_365d",
    "avg_order_value",
    "email_opens_7d",
    "email_opens_30d",
    "email_opens_90d",
    "email_clicks_7d",
    "email_clicks_30d",
    "email_clicks_90d",
    "emails_sent_90d",
    "open_rate_90d",
    "click_rate_90d",
    "sessions_7d",
    "sessions_30d",
    "days_since_last_open",
)
CONTACT_FEATURES: tuple[str, ...] = ("first_name", "email", "plan_name", "region_name")
CHURN_FEATURES: tuple[str, ...] = PROFILE_FEATURES + ACTIVITY_FEATURES
ENGAGEMENT_FEATURES: tuple[str, ...] = ACTIVITY_FEATURES + (
    "tenure_days",
    "plan_tier",
    "is_annual_plan",
    "region_code",
)

PLAN_NAMES = ("basic", "plus", "premium")
PLAN_FEES = np.array([9.99, 19.99, 39.99])
REGION_NAMES = ("north_america", "europe", "latin_america", "asia_pacific", "middle_east_africa")
REGION_SHARES = np.array([0.35, 0.30, 0.12, 0.15, 0.08])
REGION_CHURN = np.array([0.0, 0.15, 0.30, -0.10, 0.20])
REGION_ENGAGEMENT = np.array([0.0, 0.10, -0.10, 0.20, -0.05])
FIRST_NAMES = (
    "Olivia Liam Emma Noah Amelia Oliver Ava Elijah Sophia Lucas Mia Mateo Isabella Levi Evelyn "
    "Asher Harper James Luna Leo Camila Grayson Gianna Ezra Elizabeth Luca Eleanor Ethan Ella "
    "Aiden Abigail Wyatt Sofia Sebastian Avery Benjamin Scarlett Mason Emily Henry Aria Hudson "
    "Penelope Jack Chloe Jackson Layla Owen Mila Daniel Nora Alexander Hazel Maverick Madison "
    "Kai Ellie Gabriel Lily Carter Nova William Isla Logan Grace Michael Violet Samuel Aurora "
    "Muhammad Riley Waylon Zoey Ezekiel Willow Jayden Emilia Luke Stella Lincoln Zoe Theo "
    "Victoria Jacob Hannah Josiah Addison David Leah Jaxon Lucy Elias Eliana Julian Ivy Aisha "
    "Hiroshi Priya Wei Fatima Mohammed Yuki Chen Santiago Valentina Kwame Amara Sven Ingrid"
).split()
EMAIL_DOMAINS = ("example.com", "example.org", "example.net", "mail.example.com")
SNAPSHOT_EVERY = timedelta(days=7)
LABEL_DELAY = timedelta(hours=1)
FILES = ("customer_profile", "customer_activity", "customer_contact", "labels")


@dataclass(frozen=True)
class CustomerData:
    """One generation: three feature tables and the label table (entity dataframe)."""

    profile: (
        pd.DataFrame
    )  # customer_id, event_timestamp, PROFILE_FEATURES (float32); N x snapshots rows
    activity: (
        pd.DataFrame
    )  # customer_id, event_timestamp, ACTIVITY_FEATURES (float32); N x snapshots rows
    contact: pd.DataFrame  # customer_id, event_timestamp, CONTACT_FEATURES (str); N rows
    labels: pd.DataFrame  # customer_id, event_timestamp, churned, engaged, p_churn, p_engaged

    def tables(self) -> dict[str, pd.DataFrame]:
        return {
            "customer_profile": self.profile,
            "customer_activity": self.activity,
            "customer_contact": self.contact,
            "labels": self.labels,
        }


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-z))


def _col(f: pd.DataFrame | dict[str, np.ndarray], name: str) -> np.ndarray:
    return np.asarray(f[name], dtype=np.float64)


def churn_logit(f: pd.DataFrame | dict[str, np.ndarray]) -> np.ndarray:
    """The true churn log-odds: a function of the 32 churn-model features only."""
    tickets = np.minimum(_col(f, "support_tickets_90d"), 5.0)
    return (
        +0.10
        + 0.75 * (np.log1p(_col(f, "recency_days")) - 3.5)
        - 0.35 * np.log1p(_col(f, "orders_90d"))
        - 0.25 * (np.log1p(_col(f, "spend_365d")) - 5.0)
        + 0.55 * np.minimum(_col(f, "payment_failures_30d"), 3.0)
        + 0.20 * np.minimum(_col(f, "payment_failures_90d"), 6.0)
        + 0.30 * tickets * (1.0 + _col(f, "open_ticket"))
        - 0.70 * _col(f, "is_annual_plan")
        - 0.35 * np.log1p(_col(f, "tenure_days") / 365.0)
        - 1.20 * _col(f, "open_rate_90d")
        + 0.50 * (_col(f, "days_since_last_open") > 60.0)
        - 0.20 * np.log1p(_col(f, "sessions_30d"))
        + 0.015 * (_col(f, "monthly_fee") - 20.0) * (1.0 - _col(f, "is_annual_plan"))
        + REGION_CHURN[_col(f, "region_code").astype(np.int64)]
        - 0.15 * np.log1p(_col(f, "discount_redemptions_365d"))
    )


def engagement_logit(f: pd.DataFrame | dict[str, np.ndarray]) -> np.ndarray:
    """The true engagement log-odds: a function of the 24 engagement-model features only."""
    return (
        -1.95
        + 2.20 * _col(f, "open_rate_90d")
        + 2.50 * _col(f, "click_rate_90d")
        + 0.35 * np.log1p(_col(f, "email_opens_7d"))
        + 0.30 * np.log1p(_col(f, "sessions_7d"))
        - 0.25 * np.log1p(_col(f, "days_since_last_open"))
        + 0.25 * _col(f, "plan_tier")
        + 0.20 * np.log1p(_col(f, "orders_30d"))
        - 0.60 * (_col(f, "recency_days") > 120.0)
        + 0.15 * _col(f, "is_annual_plan")
        + REGION_ENGAGEMENT[_col(f, "region_code").astype(np.int64)]
        - 0.10 * np.log1p(_col(f, "tenure_days") / 365.0)
    )


def churn_probability(f: pd.DataFrame | dict[str, np.ndarray]) -> np.ndarray:
    return _sigmoid(churn_logit(f))


def engagement_probability(f: pd.DataFrame | dict[str, np.ndarray]) -> np.ndarray:
    return _sigmoid(engagement_logit(f))


def build_day(now: datetime | None = None) -> datetime:
    """UTC midnight of today: the latest snapshot's anchor, so online rows stay fresh."""
    now = now or datetime.now(timezone.utc)
    return now.astimezone(timezone.utc).replace(hour=0, minute=0, second=0, microsecond=0)


def generate(
    customers: int = 100_000, seed: int = 7, snapshots: int = 2, anchor: datetime | None = None
) -> CustomerData:
    """Generate ``customers`` x ``snapshots`` feature rows and one label row per customer."""
    if customers < 1 or snapshots < 2:
        raise ValueError("need at least 1 customer and 2 snapshots")
    rng = np.random.default_rng(seed)
    n = customers
    ids = np.arange(1, n + 1, dtype=np.int64)
    static = _static_traits(rng, n)
    latents = _latent_paths(rng, n, snapshots)
    anchor = build_day() if anchor is None else anchor.astimezone(timezone.utc)
    jitter = rng.integers(0, 6 * 3600, size=(snapshots, n))
    profiles, activities, stamps = [], [], []
    for s in range(snapshots):
        features = _snapshot_features(rng, static, latents[:, s, :], s)
        ts = anchor - (snapshots - 1 - s) * SNAPSHOT_EVERY
        stamp = pd.to_datetime(ts) - pd.to_timedelta(jitter[s], unit="s")
        stamps.append(stamp)
        profiles.append(_frame(ids, stamp, features, PROFILE_FEATURES))
        activities.append(_frame(ids, stamp, features, ACTIVITY_FEATURES))
    label_s = snapshots - 2
    labels = _labels(
        rng,
        ids,
        profiles[label_s],
        activities[label_s],
        anchor - (snapshots - 1 - label_s) * SNAPSHOT_EVERY + LABEL_DELAY,
    )
    contact = _contact(rng, ids, static, stamps[0])
    return CustomerData(
        profile=pd.concat(profiles, ignore_index=True),
        activity=pd.concat(activities, ignore_index=True),
        contact=contact,
        labels=labels,
    )


def _static_traits(rng: np.random.Generator, n: int) -> dict[str, np.ndarray]:
    tier = rng.choice(3, size=n, p=[0.50, 0.35, 0.15])
    annual = (rng.random(n) < 0.25 + 0.10 * tier).astype(np.float64)
    return {
        "plan_tier": tier.astype(np.float64),
        "is_annual_plan": annual,
        "region_code": rng.choice(len(REGION_NAMES), size=n, p=REGION_SHARES).astype(np.float64),
        "monthly_fee": np.round(PLAN_FEES[tier] * np.where(annual > 0, 0.85, 1.0), 2),
        "age_years": np.clip(np.round(18 + rng.gamma(4.0, 5.5, size=n)), 18, 90),
        "tenure0": np.floor(30 + rng.exponential(600.0, size=n)),
        "aov": np.exp(3.5 + 0.25 * tier + 0.30 * rng.standard_normal(n)),
    }


def _latent_paths(rng: np.random.Generator, n: int, snapshots: int) -> np.ndarray:
    """(n, snapshots, 3) AR(1) latents: activity, email affinity, friction (unit variance)."""
    out = np.empty((n, snapshots, 3))
    out[:, 0, :] = rng.standard_normal((n, 3))
    for s in range(1, snapshots):
        out[:, s, :] = 0.8 * out[:, s - 1, :] + 0.6 * rng.standard_normal((n, 3))
    return out


def _window_recency(
    rng: np.random.Generator,
    counts: list[np.ndarray],
    edges: list[float],
    tail_mean: float,
    cap: np.ndarray,
) -> np.ndarray:
    """Days since the last event, consistent with nested window counts (newest window first)."""
    n = counts[0].shape[0]
    u = rng.random(n)
    out = np.minimum(edges[-1] + rng.exponential(tail_mean, size=n), np.maximum(cap, edges[-1]))
    lo_edges = [0.0] + edges[:-1]
    for count, lo, hi in reversed(list(zip(counts, lo_edges, edges))):
        k = np.maximum(count, 1)  # reached only when newer windows are empty: all in [lo, hi)
        first = lo + (hi - lo) * (1.0 - u ** (1.0 / k))  # minimum of k uniform event times
        out = np.where(count > 0, first, out)
    return np.floor(out)


def _snapshot_features(
    rng: np.random.Generator, st: dict[str, np.ndarray], lat: np.ndarray, s: int
) -> dict[str, np.ndarray]:
    n = lat.shape[0]
    act, aff, fri = lat[:, 0], lat[:, 1], lat[:, 2]
    tier, annual = st["plan_tier"], st["is_annual_plan"]
    tenure = st["tenure0"] + 7.0 * s
    rate = np.exp(-3.6 + 0.8 * act + 0.15 * tier)  # orders per day
    o30 = rng.poisson(rate * 30)
    o90 = o30 + rng.poisson(rate * 60)
    o365 = o90 + rng.poisson(rate * 275)
    noise = lambda: np.exp(0.2 * rng.standard_normal(n))  # noqa: E731
    s30, s90 = o30 * st["aov"] * noise(), (o90 - o30) * st["aov"] * noise()
    s365 = (o365 - o90) * st["aov"] * noise()
    spend30, spend90 = s30, s30 + s90
    spend365 = spend90 + s365
    recency = _window_recency(rng, [o30, o90, o365], [30.0, 90.0, 365.0], 200.0, tenure)
    sent = rng.poisson(24 + 6 * tier)
    opens90 = rng.binomial(sent, _sigmoid(-0.8 + 0.9 * aff + 0.3 * act))
    clicks90 = rng.binomial(opens90, _sigmoid(-1.8 + 0.7 * aff))
    opens30 = rng.binomial(opens90, 0.34)
    opens7 = rng.binomial(opens30, 0.24)
    clicks30 = np.minimum(rng.binomial(clicks90, 0.34), opens30)
    clicks7 = np.minimum(rng.binomial(clicks30, 0.24), opens7)
    last_open = _window_recency(rng, [opens7, opens30, opens90], [7.0, 30.0, 90.0], 90.0, tenure)
    srate = np.exp(-1.5 + 0.7 * act + 0.3 * aff)
    sess7 = rng.poisson(srate * 7)
    sess30 = sess7 + rng.poisson(srate * 23)
    pf90 = rng.poisson(np.exp(-2.2 + 0.9 * fri) * np.where(annual > 0, 0.6, 1.3))
    pf30 = rng.binomial(pf90, 0.34)
    t90 = rng.poisson(np.exp(-1.6 + 0.8 * fri))
    t30 = rng.binomial(t90, 0.34)
    open_ticket = (rng.random(n) < np.where(t30 > 0, 0.6, 0.03)).astype(np.float64)
    return {
        "tenure_days": tenure,
        "plan_tier": tier,
        "is_annual_plan": annual,
        "region_code": st["region_code"],
        "monthly_fee": st["monthly_fee"],
        "payment_failures_30d": pf30,
        "payment_failures_90d": pf90,
        "support_tickets_30d": t30,
        "support_tickets_90d": t90,
        "open_ticket": open_ticket,
        "discount_redemptions_365d": rng.poisson(0.5 + 0.08 * o365),
        "age_years": st["age_years"],
        "recency_days": recency,
        "orders_30d": o30,
        "orders_90d": o90,
        "orders_365d": o365,
        "spend_30d": np.round(spend30, 2),
        "spend_90d": np.round(spend90, 2),
        "spend_365d": np.round(spend365, 2),
        "avg_order_value": np.round(np.where(o365 > 0, spend365 / np.maximum(o365, 1), 0.0), 2),
        "email_opens_7d": opens7,
        "email_opens_30d": opens30,
        "email_opens_90d": opens90,
        "email_clicks_7d": clicks7,
        "email_clicks_30d": clicks30,
        "email_clicks_90d": clicks90,
        "emails_sent_90d": sent,
        "open_rate_90d": opens90 / np.maximum(sent, 1),
        "click_rate_90d": clicks90 / np.maximum(opens90, 1),
        "sessions_7d": sess7,
        "sessions_30d": sess30,
        "days_since_last_open": last_open,
    }


def _frame(
    ids: np.ndarray,
    stamp: pd.DatetimeIndex,
    features: dict[str, np.ndarray],
    names: tuple[str, ...],
) -> pd.DataFrame:
    cols: dict[str, Any] = {"customer_id": ids, "event_timestamp": stamp}
    cols.update({k: np.asarray(features[k], dtype=np.float32) for k in names})
    return pd.DataFrame(cols)


def _labels(
    rng: np.random.Generator,
    ids: np.ndarray,
    profile: pd.DataFrame,
    activity: pd.DataFrame,
    at: datetime,
) -> pd.DataFrame:
    feats = {
        **{k: profile[k].to_numpy() for k in PROFILE_FEATURES},
        **{k: activity[k].to_numpy() for k in ACTIVITY_FEATURES},
    }
    p_churn, p_engaged = churn_probability(feats), engagement_probability(feats)
    u = rng.random((2, ids.shape[0]))
    return pd.DataFrame(
        {
            "customer_id": ids,
            "event_timestamp": pd.Series(pd.Timestamp(at), index=range(ids.shape[0])),
            "churned": (u[0] < p_churn).astype(np.int8),
            "engaged": (u[1] < p_engaged).astype(np.int8),
            "p_churn": p_churn,
            "p_engaged": p_engaged,
        }
    )


def _contact(
    rng: np.random.Generator, ids: np.ndarray, st: dict[str, np.ndarray], stamp: pd.DatetimeIndex
) -> pd.DataFrame:
    names = np.asarray(FIRST_NAMES, dtype=object)[rng.integers(0, len(FIRST_NAMES), ids.shape[0])]
    domains = np.asarray(EMAIL_DOMAINS, dtype=object)[
        rng.integers(0, len(EMAIL_DOMAINS), ids.shape[0])
    ]
    first = pd.Series(names)
    email = first.str.lower() + "." + pd.Series(ids).astype(str) + "@" + pd.Series(domains)
    return pd.DataFrame(
        {
            "customer_id": ids,
            "event_timestamp": stamp,
            "first_name": first,
            "email": email,
            "plan_name": np.asarray(PLAN_NAMES, dtype=object)[st["plan_tier"].astype(np.int64)],
            "region_name": np.asarray(REGION_NAMES, dtype=object)[
                st["region_code"].astype(np.int64)
            ],
        }
    )


def manifest_for(customers: int, seed: int, snapshots: int, anchor: datetime) -> dict[str, Any]:
    """What identifies one generation on disk (the code hash too: a changed process regenerates)."""
    code = hashlib.sha256(Path(__file__).read_bytes()).hexdigest()[:16]
    return {
        "customers": customers,
        "seed": seed,
        "snapshots": snapshots,
        "anchor": anchor.isoformat(),
        "code": code,
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

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--snapshots", type=int, default=2)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "data")
    parser.add_argument("--force", action="store_true")
    args = parser.parse_args(argv)
    paths, made = ensure(args.out, args.customers, args.seed, args.snapshots, force=args.force)
    print(("wrote " if made else "up to date: ") + ", ".join(str(p) for p in paths.values()))


if __name__ == "__main__":
    main()
