"""Privacy by design: keyed pseudonyms for every log, consent every decision honours,
suppression entries that outlive an erasure (docs/operations.md, "Personal data")."""

from serving.privacy.consent import ConsentBook, ConsentView, consent_view
from serving.privacy.pseudonym import pseudonym_hex, pseudonym_key, pseudonyms

__all__ = [
    "ConsentBook",
    "ConsentView",
    "consent_view",
    "pseudonym_hex",
    "pseudonym_key",
    "pseudonyms",
]
