"""A generated corpus of re-engagement emails in the prompt format of ``prompts``.

No real corpus can ship with the project, so one is written from templates: varied
subjects and bodies conditioned on the customer's name, plan, region, segment, facts
and the chosen action. Held-out customers use first names never seen in training, so
the held-out metrics measure conditioning, not memorisation. Answers use the slots of
``prompts.fill_slots`` for the customer's name and facts.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from serving.llm.prompts import ACTIONS, build_prompt, format_completion, segment

CORPUS_VERSION = "3"

NAMES = (
    "Ana Ben Carla Dev Elif Farah Gus Hana Ivan Jade Kofi Lena Mateo Nia Omar Priya Quinn Rosa "
    "Sami Tara Umar Vera Wes Xena Yara Zane Abel Bea Cole Dina Emil Fern Gita Hugo Iris Joel Kira "
    "Liam Maya Noah Olga Paul Rhea Seth Tess Uma Vik Wren Yusuf Zoe Aria Boris Cleo Dario Esme "
    "Felix Greta Hamid Ines Jonas Kai Luca Mira Nadia Oscar Pia Raul Sara Theo Una Vince Willa "
    "Xavi Yosef Zara Alba Bruno Chloe Diego Eva"
).split()
HELDOUT_NAMES = (
    "Amir Bianca Cyrus Delia Enzo Freya Gideon Helga Idris Juno Kian Lotte Milo Nora Otto Pearl"
).split()
# the project's own plan and region names (feature_store/datagen/schema.py) plus other spellings
PLANS = ("basic", "plus", "premium", "Basic", "Plus", "Premium", "Family", "Pro")
REGIONS = (
    "north_america",
    "europe",
    "latin_america",
    "asia_pacific",
    "middle_east_africa",
    "North",
    "South",
    "East",
    "West",
    "Central",
    "Coastal",
    "Metro",
)
HELDOUT_PLANS = ("gold", "enterprise", "Starter")
HELDOUT_REGIONS = ("nordics", "oceania", "Highlands")
SYLLABLES = "ka lo mi ra ne to su vi da el an or is ba re ju fa go hi ly".split()
RANDOM_SHARE = (
    0.3  # rows with made-up names / plans / regions: teaches the model to ignore unseen values
)

SUBJECTS = {
    "at-risk": (
        "{name}, {kw} before you go",
        "{name}, here is {kw} just for you",
        "Still there, {name}? Enjoy {kw}",
    ),
    "lapsed": (
        "We miss you, {name}: {kw} inside",
        "{name}, it has been a while. {kw} awaits",
        "Come back, {name}, with {kw}",
    ),
    "cooling": (
        "{name}, {kw} on us this week",
        "A little something, {name}: {kw}",
        "{name}, try {kw} today",
    ),
    "loyal": (
        "Thank you, {name}: {kw} for you",
        "{name}, a thank-you with {kw}",
        "For our favourite {plan} member, {name}: {kw}",
    ),
}
OPENERS = {
    "at-risk": (
        "We noticed you have not ordered in {recency} days and we would love to see you again."
    ),
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
    facts: dict


def generate(n: int, seed: int, *, heldout: bool = False) -> list[Example]:
    """``n`` examples, deterministic by seed.

    Training rows mix known and made-up names, plans and regions; ``heldout`` rows use
    names never seen in training and, for half of them, unseen plans and regions.
    """
    rng = np.random.default_rng(seed)
    actions = list(ACTIONS)
    if heldout:
        names = rng.choice(HELDOUT_NAMES, n)
        plans = np.where(rng.random(n) < 0.5, rng.choice(HELDOUT_PLANS, n), rng.choice(PLANS, n))
        regions = np.where(
            rng.random(n) < 0.5, rng.choice(HELDOUT_REGIONS, n), rng.choice(REGIONS, n)
        )
    else:
        names = np.where(rng.random(n) < RANDOM_SHARE, _made_up(rng, n, True), rng.choice(NAMES, n))
        names = np.where(
            np.isin(names, HELDOUT_NAMES), rng.choice(NAMES, n), names
        )  # keep held-out names unseen
        plans = np.where(
            rng.random(n) < RANDOM_SHARE, _made_up(rng, n, False), rng.choice(PLANS, n)
        )
        regions = np.where(
            rng.random(n) < RANDOM_SHARE, _made_up(rng, n, False), rng.choice(REGIONS, n)
        )
    cols = {
        "first_name": names,
        "plan_name": plans,
        "region_name": regions,
        "action": rng.choice(actions, n),
        "churn_probability": rng.beta(2, 2, n).round(2),
        "spend_365d": rng.gamma(2.0, 200.0, n).round(0),
        "recency_days": rng.integers(1, 300, n),
        "orders_365d": rng.integers(0, 40, n),
        "template": rng.integers(0, 9, n),
    }
    return [_example({k: v[i] for k, v in cols.items()}) for i in range(n)]


def _made_up(rng: np.random.Generator, n: int, capitalize: bool) -> np.ndarray:
    """``n`` pronounceable made-up words of 2 to 3 syllables."""
    parts = rng.choice(SYLLABLES, (n, 3))
    words = np.char.add(
        np.char.add(parts[:, 0], parts[:, 1]), np.where(rng.random(n) < 0.5, parts[:, 2], "")
    )
    return np.char.capitalize(words) if capitalize else words


def _example(row: dict) -> Example:
    facts = {k: (v.item() if hasattr(v, "item") else v) for k, v in row.items()}
    action = str(facts.pop("action"))
    template = int(facts.pop("template"))
    spec = ACTIONS[action]
    risk = segment(facts).split()[0]
    # the answer is delexicalised: slots the service fills from the facts (prompts.fill_slots)
    fill = {
        "name": "{first_name}",
        "plan": "{plan_name}",
        "region": "{region_name}",
        "recency": "{recency_days}",
        "orders": "{orders_365d}",
        "kw": spec.keyword,
        "offer": spec.offer,
    }
    subject = SUBJECTS[risk][template % 3].format(**fill)
    body = " ".join(
        [
            f"Hi {fill['name']},",
            OPENERS[risk].format(**fill),
            OFFER_LINES[template // 3].format(**fill),
            CLOSERS[template % 3],
        ]
    )
    return Example(
        build_prompt(facts, action),
        format_completion(subject, body),
        action,
        str(facts["first_name"]),
        facts,
    )
