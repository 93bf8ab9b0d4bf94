"""What Adobe's XDM schemas (adobe/xdm, extensions/adobe/experience/offer-management: fallback-offer →
offer → offer-representation) require of a fallback offer's values, checked before anything is sent.
Pure functions, no I/O.

- Tags, channels and xcore placements are URIs ("format": "uri": RFC 3986, a scheme and no spaces).
- Languages are BCP 47 tags (the schema's dc:language pattern is RFC 5646's grammar).
- Channel types are those XDM's channel schema names.

Not a library: langcodes accepts tags the grammar does not ("123"), and rfc3986 accepts spaces in
paths, so each would let through values the service refuses.
"""

from __future__ import annotations

import re
from functools import lru_cache

# RFC 5646, section 2.1, production by production.
_ALPHA, _DIGIT, _ALNUM = "[A-Za-z]", "[0-9]", "[A-Za-z0-9]"
_EXTLANG = rf"{_ALPHA}{{3}}(?:-{_ALPHA}{{3}}){{0,2}}"
_LANGUAGE = rf"(?:{_ALPHA}{{2,3}}(?:-{_EXTLANG})?|{_ALPHA}{{4}}|{_ALPHA}{{5,8}})"
_SCRIPT = rf"{_ALPHA}{{4}}"
_REGION = rf"(?:{_ALPHA}{{2}}|{_DIGIT}{{3}})"
_VARIANT = rf"(?:{_ALNUM}{{5,8}}|{_DIGIT}{_ALNUM}{{3}})"
_EXTENSION = rf"[0-9A-WY-Za-wy-z](?:-{_ALNUM}{{2,8}})+"
_PRIVATE = rf"[xX](?:-{_ALNUM}{{1,8}})+"
_LANGTAG = rf"{_LANGUAGE}(?:-{_SCRIPT})?(?:-{_REGION})?(?:-{_VARIANT})*(?:-{_EXTENSION})*(?:-{_PRIVATE})?"
GRANDFATHERED = frozenset({
    "en-GB-oed", "i-ami", "i-bnn", "i-default", "i-enochian", "i-hak", "i-klingon", "i-lux", "i-mingo", "i-navajo",
    "i-pwn", "i-tao", "i-tay", "i-tsu", "sgn-BE-FR", "sgn-BE-NL", "sgn-CH-DE", "art-lojban", "cel-gaulish", "no-bok",
    "no-nyn", "zh-guoyu", "zh-hakka", "zh-min", "zh-min-nan", "zh-xiang"})
_LANGUAGE_TAG = re.compile(rf"{_LANGTAG}|{_PRIVATE}")

# RFC 3986, section 3: scheme ":" hier-part, from unreserved, sub-delims, ":@/?#[]" and %-escapes.
_URI = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*:(?:[\w\-.~!$&'()*+,;=:@/?#\[\]]|%[0-9A-Fa-f]{2})*", re.ASCII)

CHANNEL_PREFIX = "https://ns.adobe.com/xdm/channel-types/"
# The channel types XDM's channel schema (components/datatypes/channels/channel) names.
CHANNEL_TYPES = ("web", "email", "mobile", "social", "messaging", "offline", "display", "search", "video",
                 "apps", "direct", "external", "mail", "instore", "affiliate", "affinity", "preload", "social_display")
# Short names people use for channels XDM calls otherwise: what they mean there.
CHANNEL_ALIASES = {"push": "mobile", "inapp": "mobile", "in-app": "mobile", "app": "mobile", "sms": "messaging",
                   "whatsapp": "messaging"}
# Names with no single XDM channel: refused, with why.
CHANNEL_REFUSED = {"code": "code-based experiences go to web pages or apps: use web or mobile",
                   "other": "XDM has no such channel type"}


@lru_cache(maxsize=1024)  # a sheet's languages repeat row after row; the RFC 5646 pattern is long
def is_language_tag(tag: str) -> bool:
    """A well-formed BCP 47 language tag (RFC 5646), as the schema's dc:language pattern requires."""
    return tag in GRANDFATHERED or _LANGUAGE_TAG.fullmatch(tag) is not None


@lru_cache(maxsize=4096)
def is_uri(value: str) -> bool:
    """An absolute URI as JSON Schema's "uri" format means it: a scheme, then no spaces."""
    return _URI.fullmatch(value) is not None


@lru_cache(maxsize=256)
def channel_uri(value: str) -> str:
    """The channel URI for a short name (web, email, push, ...) or a channel URI; ValueError says why not."""
    low = value.strip().lower()
    if low in CHANNEL_TYPES:
        return CHANNEL_PREFIX + low
    if low in CHANNEL_ALIASES:
        return CHANNEL_PREFIX + CHANNEL_ALIASES[low]
    names = ", ".join((*CHANNEL_TYPES[:7], "push", "sms", "inapp"))
    if low in CHANNEL_REFUSED:
        raise ValueError(f"{value!r} is not an XDM channel ({CHANNEL_REFUSED[low]}; channels: {names}, ... or a "
                         "channel URI)")
    if value.startswith(CHANNEL_PREFIX):
        if not is_uri(value):
            raise ValueError(f"{value!r} is not a URI (no spaces or other characters URIs cannot hold)")
        return value
    raise ValueError(f"{value!r} is not a channel (use one of {names}, ... or a channel URI)")


def short_channel(uri: str) -> str:
    """web for https://ns.adobe.com/xdm/channel-types/web; the URI itself for others."""
    return uri.removeprefix(CHANNEL_PREFIX)
