"""The Feast repository: entity, feature views and one feature service per model.

`feast apply` imports only this file (see .feastignore), as a top-level module, so it is
self-contained: the feature lists are spelled out here and a test checks they match
``feature_store.datagen``. Source paths are relative to this directory; Feast resolves
them against the repo path (``FileSource.get_uri_for_file_path``).
"""

from datetime import timedelta

from feast import Entity, FeatureService, FeatureView, Field, FileSource, PushSource, ValueType
from feast.types import Float32, String

PROFILE_FEATURES = (
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
ACTIVITY_FEATURES = (
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
CONTACT_FEATURES = ("first_name", "email", "plan_name", "region_name")
ENGAGEMENT_PROFILE_FEATURES = ["tenure_days", "plan_tier", "is_annual_plan", "region_code"]

customer = Entity(
    name="customer",
    join_keys=["customer_id"],
    value_type=ValueType.INT64,
    description="A customer of the subscription business",
)

customer_profile_source = FileSource(
    name="customer_profile_source",
    path="data/customer_profile.parquet",
    timestamp_field="event_timestamp",
)
customer_activity_source = FileSource(
    name="customer_activity_source",
    path="data/customer_activity.parquet",
    timestamp_field="event_timestamp",
)
customer_contact_source = FileSource(
    name="customer_contact_source",
    path="data/customer_contact.parquet",
    timestamp_field="event_timestamp",
)
# Streaming updates: store.push("customer_activity_push", df) writes online (and offline).
customer_activity_push = PushSource(
    name="customer_activity_push",
    batch_source=customer_activity_source,
)

customer_profile = FeatureView(
    name="customer_profile",
    entities=[customer],
    ttl=timedelta(days=90),
    schema=[Field(name=n, dtype=Float32) for n in PROFILE_FEATURES],
    source=customer_profile_source,
    online=True,
    tags={"team": "reengage"},
)
customer_activity = FeatureView(
    name="customer_activity",
    entities=[customer],
    ttl=timedelta(days=30),
    schema=[Field(name=n, dtype=Float32) for n in ACTIVITY_FEATURES],
    source=customer_activity_push,
    online=True,
    tags={"team": "reengage"},
)
customer_contact = FeatureView(
    name="customer_contact",
    entities=[customer],
    ttl=timedelta(0),  # never expires
    schema=[Field(name=n, dtype=String) for n in CONTACT_FEATURES],
    source=customer_contact_source,
    online=True,
    tags={"team": "reengage", "pii": "true"},
)

churn_model = FeatureService(
    name="churn_model",
    features=[customer_profile, customer_activity],
    description="Inputs of the churn model (LightGBM), in this order",
)
engagement_model = FeatureService(
    name="engagement_model",
    features=[customer_activity, customer_profile[ENGAGEMENT_PROFILE_FEATURES]],
    description="Inputs of the engagement model (MLP), in this order",
)
email_writer = FeatureService(
    name="email_writer",
    features=[customer_contact],
    description="Contact fields for the LLM email writer only",
)
