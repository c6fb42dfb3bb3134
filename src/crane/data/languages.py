"""Language codes: BCP-47-style normalisation, ISO 639 tables, human-readable names.

Every corpus, neuron set and report keys languages by the string :func:`normalize_language`
returns: an ISO 639-1 primary subtag (``en``, ``zh``, ``vi``), optionally followed by a script
(``zh-Hans``), a region (``zh-CN``) or other subtags. Three-letter ISO 639-2/639-3 codes with an
ISO 639-1 equivalent map to it (``eng`` → ``en``, ``cmn_Hans`` → ``zh-Hans``), and a script that
is the only one a language is normally written in is dropped (``eng_Latn`` → ``en``), so file
names such as FLORES's ``vie_Latn.txt`` land on the same key as ``vi``. A language without an
ISO 639-1 code keeps its registered ISO 639-2/639-3 code (``yue``, ``fil``, ``quz``): the IANA
registry that ``langcodes`` carries decides which codes exist, and maps deprecated ones onto
their successors (``iw`` → ``he``, ``mo`` → ``ro``). Private-use (``qaa``-``qtz``) and special
codes (``und``, ``mul``, ``mis``, ``zxx``) name no language and are refused.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from crane.errors import LanguageError

# ISO 639-1: all 184 two-letter codes (including the withdrawn ``bh``), English names.
ISO_639_1: dict[str, str] = {
    "aa": "Afar", "ab": "Abkhazian", "ae": "Avestan", "af": "Afrikaans", "ak": "Akan",
    "am": "Amharic", "an": "Aragonese", "ar": "Arabic", "as": "Assamese", "av": "Avaric",
    "ay": "Aymara", "az": "Azerbaijani", "ba": "Bashkir", "be": "Belarusian", "bg": "Bulgarian",
    "bh": "Bihari languages", "bi": "Bislama", "bm": "Bambara", "bn": "Bengali", "bo": "Tibetan",
    "br": "Breton", "bs": "Bosnian", "ca": "Catalan", "ce": "Chechen", "ch": "Chamorro",
    "co": "Corsican", "cr": "Cree", "cs": "Czech", "cu": "Church Slavic", "cv": "Chuvash",
    "cy": "Welsh", "da": "Danish", "de": "German", "dv": "Divehi", "dz": "Dzongkha", "ee": "Ewe",
    "el": "Greek", "en": "English", "eo": "Esperanto", "es": "Spanish", "et": "Estonian",
    "eu": "Basque", "fa": "Persian", "ff": "Fulah", "fi": "Finnish", "fj": "Fijian",
    "fo": "Faroese", "fr": "French", "fy": "Western Frisian", "ga": "Irish",
    "gd": "Scottish Gaelic", "gl": "Galician", "gn": "Guarani", "gu": "Gujarati", "gv": "Manx",
    "ha": "Hausa", "he": "Hebrew", "hi": "Hindi", "ho": "Hiri Motu", "hr": "Croatian",
    "ht": "Haitian Creole", "hu": "Hungarian", "hy": "Armenian", "hz": "Herero",
    "ia": "Interlingua", "id": "Indonesian", "ie": "Interlingue", "ig": "Igbo", "ii": "Sichuan Yi",
    "ik": "Inupiaq", "io": "Ido", "is": "Icelandic", "it": "Italian", "iu": "Inuktitut",
    "ja": "Japanese", "jv": "Javanese", "ka": "Georgian", "kg": "Kongo", "ki": "Kikuyu",
    "kj": "Kuanyama", "kk": "Kazakh", "kl": "Kalaallisut", "km": "Khmer", "kn": "Kannada",
    "ko": "Korean", "kr": "Kanuri", "ks": "Kashmiri", "ku": "Kurdish", "kv": "Komi",
    "kw": "Cornish", "ky": "Kyrgyz", "la": "Latin", "lb": "Luxembourgish", "lg": "Ganda",
    "li": "Limburgish", "ln": "Lingala", "lo": "Lao", "lt": "Lithuanian", "lu": "Luba-Katanga",
    "lv": "Latvian", "mg": "Malagasy", "mh": "Marshallese", "mi": "Maori", "mk": "Macedonian",
    "ml": "Malayalam", "mn": "Mongolian", "mr": "Marathi", "ms": "Malay", "mt": "Maltese",
    "my": "Burmese", "na": "Nauru", "nb": "Norwegian Bokmål", "nd": "North Ndebele",
    "ne": "Nepali", "ng": "Ndonga", "nl": "Dutch", "nn": "Norwegian Nynorsk", "no": "Norwegian",
    "nr": "South Ndebele", "nv": "Navajo", "ny": "Chichewa", "oc": "Occitan", "oj": "Ojibwa",
    "om": "Oromo", "or": "Oriya", "os": "Ossetian", "pa": "Punjabi", "pi": "Pali", "pl": "Polish",
    "ps": "Pashto", "pt": "Portuguese", "qu": "Quechua", "rm": "Romansh", "rn": "Rundi",
    "ro": "Romanian", "ru": "Russian", "rw": "Kinyarwanda", "sa": "Sanskrit", "sc": "Sardinian",
    "sd": "Sindhi", "se": "Northern Sami", "sg": "Sango", "si": "Sinhala", "sk": "Slovak",
    "sl": "Slovenian", "sm": "Samoan", "sn": "Shona", "so": "Somali", "sq": "Albanian",
    "sr": "Serbian", "ss": "Swati", "st": "Southern Sotho", "su": "Sundanese", "sv": "Swedish",
    "sw": "Swahili", "ta": "Tamil", "te": "Telugu", "tg": "Tajik", "th": "Thai", "ti": "Tigrinya",
    "tk": "Turkmen", "tl": "Tagalog", "tn": "Tswana", "to": "Tonga", "tr": "Turkish",
    "ts": "Tsonga", "tt": "Tatar", "tw": "Twi", "ty": "Tahitian", "ug": "Uyghur",
    "uk": "Ukrainian", "ur": "Urdu", "uz": "Uzbek", "ve": "Venda", "vi": "Vietnamese",
    "vo": "Volapük", "wa": "Walloon", "wo": "Wolof", "xh": "Xhosa", "yi": "Yiddish",
    "yo": "Yoruba", "za": "Zhuang", "zh": "Chinese", "zu": "Zulu",
}  # fmt: skip

# ISO 639-2 terminological and bibliographic codes of the languages above (eng, zho, chi, ...).
ISO_639_2_TO_1: dict[str, str] = {
    "aar": "aa", "abk": "ab", "afr": "af", "aka": "ak", "alb": "sq", "amh": "am", "ara": "ar",
    "arg": "an", "arm": "hy", "asm": "as", "ava": "av", "ave": "ae", "aym": "ay", "aze": "az",
    "bak": "ba", "bam": "bm", "baq": "eu", "bel": "be", "ben": "bn", "bih": "bh", "bis": "bi",
    "bod": "bo", "bos": "bs", "bre": "br", "bul": "bg", "bur": "my", "cat": "ca", "ces": "cs",
    "cha": "ch", "che": "ce", "chi": "zh", "chu": "cu", "chv": "cv", "cor": "kw", "cos": "co",
    "cre": "cr", "cym": "cy", "cze": "cs", "dan": "da", "deu": "de", "div": "dv", "dut": "nl",
    "dzo": "dz", "ell": "el", "eng": "en", "epo": "eo", "est": "et", "eus": "eu", "ewe": "ee",
    "fao": "fo", "fas": "fa", "fij": "fj", "fin": "fi", "fra": "fr", "fre": "fr", "fry": "fy",
    "ful": "ff", "geo": "ka", "ger": "de", "gla": "gd", "gle": "ga", "glg": "gl", "glv": "gv",
    "gre": "el", "grn": "gn", "guj": "gu", "hat": "ht", "hau": "ha", "heb": "he", "her": "hz",
    "hin": "hi", "hmo": "ho", "hrv": "hr", "hun": "hu", "hye": "hy", "ibo": "ig", "ice": "is",
    "ido": "io", "iii": "ii", "iku": "iu", "ile": "ie", "ina": "ia", "ind": "id", "ipk": "ik",
    "isl": "is", "ita": "it", "jav": "jv", "jpn": "ja", "kal": "kl", "kan": "kn", "kas": "ks",
    "kat": "ka", "kau": "kr", "kaz": "kk", "khm": "km", "kik": "ki", "kin": "rw", "kir": "ky",
    "kom": "kv", "kon": "kg", "kor": "ko", "kua": "kj", "kur": "ku", "lao": "lo", "lat": "la",
    "lav": "lv", "lim": "li", "lin": "ln", "lit": "lt", "ltz": "lb", "lub": "lu", "lug": "lg",
    "mac": "mk", "mah": "mh", "mal": "ml", "mao": "mi", "mar": "mr", "may": "ms", "mkd": "mk",
    "mlg": "mg", "mlt": "mt", "mon": "mn", "mri": "mi", "msa": "ms", "mya": "my", "nau": "na",
    "nav": "nv", "nbl": "nr", "nde": "nd", "ndo": "ng", "nep": "ne", "nld": "nl", "nno": "nn",
    "nob": "nb", "nor": "no", "nya": "ny", "oci": "oc", "oji": "oj", "ori": "or", "orm": "om",
    "oss": "os", "pan": "pa", "per": "fa", "pli": "pi", "pol": "pl", "por": "pt", "pus": "ps",
    "que": "qu", "roh": "rm", "ron": "ro", "rum": "ro", "run": "rn", "rus": "ru", "sag": "sg",
    "san": "sa", "sin": "si", "slk": "sk", "slo": "sk", "slv": "sl", "sme": "se", "smo": "sm",
    "sna": "sn", "snd": "sd", "som": "so", "sot": "st", "spa": "es", "sqi": "sq", "srd": "sc",
    "srp": "sr", "ssw": "ss", "sun": "su", "swa": "sw", "swe": "sv", "tah": "ty", "tam": "ta",
    "tat": "tt", "tel": "te", "tgk": "tg", "tgl": "tl", "tha": "th", "tib": "bo", "tir": "ti",
    "ton": "to", "tsn": "tn", "tso": "ts", "tuk": "tk", "tur": "tr", "twi": "tw", "uig": "ug",
    "ukr": "uk", "urd": "ur", "uzb": "uz", "ven": "ve", "vie": "vi", "vol": "vo", "wel": "cy",
    "wln": "wa", "wol": "wo", "xho": "xh", "yid": "yi", "yor": "yo", "zha": "za", "zho": "zh",
    "zul": "zu",
}  # fmt: skip

# ISO 639-3 individual languages commonly used for their ISO 639-1 macrolanguage (as in FLORES).
ISO_639_3_TO_1: dict[str, str] = {
    "cmn": "zh", "arb": "ar", "pes": "fa", "zsm": "ms", "swh": "sw", "ekk": "et", "lvs": "lv",
    "uzn": "uz", "azj": "az", "khk": "mn", "npi": "ne", "ory": "or", "pbu": "ps", "plt": "mg",
    "gaz": "om", "ydd": "yi", "als": "sq", "quy": "qu", "zlm": "ms",
}  # fmt: skip

# Scripts that add nothing for a language (IANA "Suppress-Script"); dropped on normalisation.
SUPPRESS_SCRIPT: dict[str, str] = {
    "af": "Latn", "am": "Ethi", "ar": "Arab", "as": "Beng", "be": "Cyrl", "bg": "Cyrl",
    "bn": "Beng", "ca": "Latn", "cs": "Latn", "cy": "Latn", "da": "Latn", "de": "Latn",
    "el": "Grek", "en": "Latn", "eo": "Latn", "es": "Latn", "et": "Latn", "eu": "Latn",
    "fa": "Arab", "fi": "Latn", "fr": "Latn", "ga": "Latn", "gl": "Latn", "gu": "Gujr",
    "he": "Hebr", "hi": "Deva", "hr": "Latn", "hu": "Latn", "hy": "Armn", "id": "Latn",
    "is": "Latn", "it": "Latn", "ja": "Jpan", "ka": "Geor", "km": "Khmr", "kn": "Knda",
    "ko": "Kore", "lo": "Laoo", "lt": "Latn", "lv": "Latn", "mk": "Cyrl", "ml": "Mlym",
    "mr": "Deva", "ms": "Latn", "mt": "Latn", "my": "Mymr", "nb": "Latn", "ne": "Deva",
    "nl": "Latn", "nn": "Latn", "no": "Latn", "or": "Orya", "pl": "Latn", "ps": "Arab",
    "pt": "Latn", "ro": "Latn", "ru": "Cyrl", "si": "Sinh", "sk": "Latn", "sl": "Latn",
    "sq": "Latn", "sv": "Latn", "sw": "Latn", "ta": "Taml", "te": "Telu", "th": "Thai",
    "tl": "Latn", "tr": "Latn", "uk": "Cyrl", "ur": "Arab", "vi": "Latn",
}  # fmt: skip

SCRIPT_NAMES: dict[str, str] = {
    "Hans": "Simplified", "Hant": "Traditional", "Latn": "Latin", "Cyrl": "Cyrillic",
    "Arab": "Arabic", "Deva": "Devanagari", "Grek": "Greek", "Hebr": "Hebrew", "Jpan": "Japanese",
    "Kore": "Korean", "Thai": "Thai", "Beng": "Bengali", "Ethi": "Ethiopic", "Geor": "Georgian",
    "Armn": "Armenian", "Taml": "Tamil", "Telu": "Telugu", "Mong": "Mongolian",
}  # fmt: skip

_UNKNOWN = (
    "Unknown language code {code!r}; use an ISO 639-1 code such as en, zh or vi, or an ISO "
    "639-3 code such as yue or fil (optionally with a script or region, e.g. zh-Hans, sr-Latn, "
    "pt-BR); `crane data show` lists the languages the built-in corpora have."
)
_SUBTAG = re.compile(r"^[A-Za-z0-9]{1,8}$")
_SPECIAL = frozenset({"und", "mul", "mis", "zxx"})
_PRIVATE_USE = re.compile(r"^q[a-t][a-z]$")


@functools.lru_cache(maxsize=4096)
def _registered(low: str) -> tuple[str, ...] | None:
    """A two- or three-letter code the IANA language subtag registry knows (via langcodes),
    as the subtags of its current tag: its ISO 639-1 code when it has one (``iw`` → ``he``,
    ``swh`` → ``sw``), else the registered code (``yue``, ``fil``), followed by any script or
    region the code implies (``prs`` → ``fa``, ``AF``; ``sh`` → ``sr``, ``Latn``); None for
    unknown, private-use and special codes. Individual languages are not folded into their
    macrolanguage (``prs`` stays Dari), except where the tables above do it (``cmn`` → ``zh``)."""
    if not (2 <= len(low) <= 3 and low.isalpha()) or low in _SPECIAL or _PRIVATE_USE.match(low):
        return None
    import langcodes

    try:
        if not langcodes.Language.get(low).is_valid():
            return None
        tag = langcodes.standardize_tag(low)
    except (langcodes.LanguageTagError, ValueError):
        return None
    language, *implied = tag.split("-")
    if not language or language in _SPECIAL or _PRIVATE_USE.match(language):
        return None
    mapped = ISO_639_2_TO_1.get(language) or ISO_639_3_TO_1.get(language) or language
    return (mapped, *implied)


def _primary(subtag: str, code: str) -> tuple[str, list[str]]:
    """Map a primary subtag to its ISO 639-1 code (or its registered ISO 639-2/3 code when it
    has no ISO 639-1 one), with the subtags it implies; or raise LanguageError."""
    low = subtag.lower()
    if low in ISO_639_1:
        return low, []
    mapped = ISO_639_2_TO_1.get(low) or ISO_639_3_TO_1.get(low)
    if mapped is not None:
        return mapped, []
    registered = _registered(low)
    if registered is None:
        raise LanguageError(_UNKNOWN.format(code=code))
    return registered[0], list(registered[1:])


def normalize_language(code: str) -> str:
    """Return the canonical form of a language code (``"zh_hans"`` → ``"zh-Hans"``).

    Raises LanguageError when the primary subtag is not a known ISO 639 code.
    """
    if not isinstance(code, str):
        raise LanguageError(_UNKNOWN.format(code=code))
    parts = [p for p in re.split(r"[-_]", code.strip())]
    if not parts or any(not _SUBTAG.match(p) for p in parts):
        raise LanguageError(_UNKNOWN.format(code=code))
    primary, implied = _primary(parts[0], code)
    out = [primary]
    rest = parts[1:] or implied
    # Extended-language form (zh-cmn-Hans): drop an extlang that maps back to the primary.
    if rest and len(rest[0]) == 3 and rest[0].isalpha():
        low = rest[0].lower()
        if (ISO_639_2_TO_1.get(low) or ISO_639_3_TO_1.get(low)) == primary:
            rest = rest[1:]
    singleton_seen = False
    for i, sub in enumerate(rest):
        if singleton_seen:
            out.append(sub.lower())
        elif len(sub) == 1:
            singleton_seen = True
            out.append(sub.lower())
        elif i == 0 and len(sub) == 4 and sub.isalpha():
            script = sub.title()
            if SUPPRESS_SCRIPT.get(primary) != script:
                out.append(script)
        elif (len(sub) == 2 and sub.isalpha()) or (len(sub) == 3 and sub.isdigit()):
            out.append(sub.upper())
        else:
            out.append(sub.lower())
    return "-".join(out)


@dataclass(frozen=True)
class TagParts:
    """A tag's subtags after ``langcodes`` normalisation, and its likely script and region
    (CLDR likely subtags: ``zh`` → Hans, CN; ``sr`` → Cyrl, RS; ``pt`` → Latn, BR)."""

    language: str
    script: str | None
    region: str | None
    variants: tuple[str, ...]
    likely_script: str | None
    likely_region: str | None


@functools.lru_cache(maxsize=4096)
def tag_parts(code: str, macro: bool = False) -> TagParts | None:
    """The parts of a BCP-47-style tag (``tl`` → ``fil``; with ``macro``, an individual
    language becomes its macrolanguage, ``cmn`` → ``zh``); None for ``und`` and for what
    langcodes cannot parse. Used to match codes with UDHR declarations and gettext locales."""
    import langcodes

    try:
        lang = langcodes.Language.get(langcodes.standardize_tag(code, macro=macro))
    except (langcodes.LanguageTagError, ValueError):
        return None
    if not lang.language or lang.language == "und":
        return None
    full = lang.maximize()
    return TagParts(
        language=lang.language,
        script=lang.script,
        region=lang.territory,
        variants=tuple(v.lower() for v in (lang.variants or ())),
        likely_script=full.script,
        likely_region=full.territory,
    )


def is_language_code(code: str) -> bool:
    """Return True when ``code`` normalises without error."""
    try:
        normalize_language(code)
    except LanguageError:
        return False
    return True


def language_name(code: str) -> str:
    """English name of a code: ``"zh-Hans"`` → ``"Chinese (Simplified)"``, ``"en"`` → ``"English"``.

    A language without an ISO 639-1 code is named after its bundled UDHR declaration
    (``"yue"`` → ``"Chinese, Yue"``), else by its code. Unknown codes raise LanguageError.
    """
    norm = normalize_language(code)
    primary, *rest = norm.split("-")
    details = []
    for sub in rest:
        if len(sub) == 4 and sub[0].isupper():
            details.append(SCRIPT_NAMES.get(sub, sub))
        else:
            details.append(sub)
    name = ISO_639_1.get(primary) or _other_name(primary)
    return f"{name} ({', '.join(details)})" if details else name


def _other_name(primary: str) -> str:
    """Name of a language without an ISO 639-1 code: its UDHR declaration's, else the code."""
    from crane.data.udhr import declaration_name

    return declaration_name(primary) or primary


def parse_language_list(spec: str | Iterable[str]) -> list[str]:
    """Parse ``"en,zh,vi"`` (or a list of codes) into normalised codes, deduplicated, in order."""
    items = re.split(r"[,\s]+", spec) if isinstance(spec, str) else list(spec)
    out: list[str] = []
    for item in items:
        if not item or not str(item).strip():
            continue
        code = normalize_language(str(item))
        if code not in out:
            out.append(code)
    if not out:
        raise LanguageError(
            "No languages were given; pass a comma-separated list of codes such as en,zh,vi."
        )
    return out


class ByLanguage:
    """Lookup by language code (any spelling :func:`normalize_language` accepts) for a
    container of ``language → list``; subclasses say which mapping and how to word a miss."""

    def _by_language(self) -> dict[str, list[Any]]:
        raise NotImplementedError

    _holder = "The collection"
    _unit = "entries"
    _fix = "add entries in that language"

    def _missing_message(self, code: str) -> str:
        available = ", ".join(self.languages) or "none"
        return (
            f"{self._holder} has no {self._unit} in '{code}' (available: {available}); "
            f"choose among the available languages or {self._fix}."
        )

    def _require(self, codes: list[str]) -> None:
        """LanguageError naming the first of ``codes`` that is missing."""
        for code in codes:
            if code not in self._by_language():
                raise LanguageError(self._missing_message(code))

    @property
    def languages(self) -> list[str]:
        """Languages present, in insertion order."""
        return list(self._by_language())

    def __getitem__(self, lang: str) -> list[Any]:
        code = normalize_language(lang)
        if code not in self._by_language():
            raise LanguageError(self._missing_message(code))
        return self._by_language()[code]

    def __contains__(self, lang: object) -> bool:
        if not isinstance(lang, str):
            return False
        try:
            return normalize_language(lang) in self._by_language()
        except LanguageError:
            return False
