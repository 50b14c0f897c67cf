"""The names a generation's tables carry, shared with whoever reads them.

Why apart from the process: the Feast views, the model feature services, the monitor's
segments and the tests name these columns and categories without needing the generator.
"""

from __future__ import annotations

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
REGION_NAMES = ("north_america", "europe", "latin_america", "asia_pacific", "middle_east_africa")
FILES = ("customer_profile", "customer_activity", "customer_contact", "labels")
