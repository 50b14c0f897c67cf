"""A generated corpus of re-engagement emails in the prompt format of ``prompts``.

No real corpus can ship with the project, so one is written from templates: varied
subjects and bodies conditioned on the customer's name, plan, region, segment, facts
and the chosen action. Held-out customers use first names never seen in training, so
the held-out metrics measure conditioning, not memorisation.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from serving.llm.prompts import ACTIONS, build_prompt, format_completion, segment

CORPUS_VERSION = "1"

NAMES = (
    "Ana Ben Carla Dev Elif Farah Gus Hana Ivan Jade Kofi Lena Mateo Nia Omar Priya Quinn Rosa Sami Tara "
    "Umar Vera Wes Xena Yara Zane Abel Bea Cole Dina Emil Fern Gita Hugo Iris Joel Kira Liam Maya Noah "
    "Olga Paul Rhea Seth Tess Uma Vik Wren Yusuf Zoe Aria Boris Cleo Dario Esme Felix Greta Hamid Ines Jonas "
    "Kai Luca Mira Nadia Oscar Pia Raul Sara Theo Una Vince Willa Xavi Yosef Zara Alba Bruno Chloe Diego Eva"
).split()
HELDOUT_NAMES = "Amir Bianca Cyrus Delia Enzo Freya Gideon Helga Idris Juno Kian Lotte Milo Nora Otto Pearl".split()
PLANS = ("Basic", "Plus", "Premium", "Family", "Pro")
REGIONS = ("North", "South", "East", "West", "Central", "Coastal", "Metro", "Highlands")

SUBJECTS = {
    "at-risk": ("{name}, {kw} before you go", "{name}, here is {kw} just for you", "Still there, {name}? Enjoy {kw}"),
    "lapsed": ("We miss you, {name}: {kw} inside", "{name}, it has been a while. {kw} awaits", "Come back, {name}, with {kw}"),
    "cooling": ("{name}, {kw} on us this week", "A little something, {name}: {kw}", "{name}, try {kw} today"),
    "loyal": ("Thank you, {name}: {kw} for you", "{name}, a thank-you with {kw}", "For our favourite {plan} member, {name}: {kw}"),
}
OPENERS = {
    "at-risk": "We noticed you have not ordered in {recency} days and we would love to see you again.",
    "lapsed": "It has been {recency} days since your last order, and the {region} team misses you.",
    "cooling": "Your {plan} plan has a few perks you may not have tried yet.",
    "loyal": "Thank you for {orders} orders this year as a {plan} member in {region}.",
}
OFFER_LINES = (
    "As a thank you, enjoy {offer}.",
    "To make it easy, we have added {offer} to your account.",
    "Today only, you can claim {offer}.",
)
CLOSERS = ("See you soon.", "We hope to hear from you.", "Happy shopping.")


@dataclass(frozen=True)
class Example:
    prompt: str
    completion: str
    action: str
    first_name: str


def generate(n: int, seed: int, *, heldout: bool = False) -> list[Example]:
    """``n`` examples, deterministic by seed; ``heldout`` draws from the unseen names."""
    rng = np.random.default_rng(seed)
    names = HELDOUT_NAMES if heldout else NAMES
    actions = list(ACTIONS)
    cols = {
        "first_name": rng.choice(names, n),
        "plan_name": rng.choice(PLANS, n),
        "region_name": rng.choice(REGIONS, n),
        "action": rng.choice(actions, n),
        "churn_probability": rng.beta(2, 2, n).round(2),
        "spend_365d": rng.gamma(2.0, 200.0, n).round(0),
        "recency_days": rng.integers(1, 300, n),
        "orders_365d": rng.integers(0, 40, n),
        "template": rng.integers(0, 9, n),
    }
    return [_example({k: v[i] for k, v in cols.items()}) for i in range(n)]


def _example(row: dict) -> Example:
    facts = {k: (v.item() if hasattr(v, "item") else v) for k, v in row.items()}
    action = str(facts.pop("action"))
    template = int(facts.pop("template"))
    spec = ACTIONS[action]
    risk = segment(facts).split()[0]
    fill = {
        "name": facts["first_name"], "plan": facts["plan_name"], "region": facts["region_name"],
        "recency": int(facts["recency_days"]), "orders": int(facts["orders_365d"]),
        "kw": spec.keyword, "offer": spec.offer,
    }
    subject = SUBJECTS[risk][template % 3].format(**fill)
    body = " ".join([
        f"Hi {fill['name']},",
        OPENERS[risk].format(**fill),
        OFFER_LINES[template // 3].format(**fill),
        CLOSERS[template % 3],
    ])
    return Example(build_prompt(facts, action), format_completion(subject, body), action, str(fill["name"]))
