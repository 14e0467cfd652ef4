"""Finding and masking PII and secrets in text: the detectors the ``pii`` check runs on every message.

Each detector sits behind a cheap test (a substring, a digit count) and the regular expressions are
compiled once, here, because this runs on every message of every example.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Any


PERSONAL = ("email", "phone", "credit_card", "iban", "ssn", "uk_nino", "ipv4", "ipv6")
SECRETS = ("private_key", "jwt", "github_token", "openai_key", "slack_token", "aws_access_key")
KINDS = PERSONAL + SECRETS
GROUPS = {"personal": PERSONAL, "secrets": SECRETS, "national_id": ("ssn", "uk_nino"), "ip": ("ipv4", "ipv6")}

LABELS = {
    "email": ("an email address", "email addresses"),
    "phone": ("a phone number", "phone numbers"),
    "credit_card": ("a credit card number", "credit card numbers"),
    "iban": ("an IBAN", "IBANs"),
    "ssn": ("a US social security number", "US social security numbers"),
    "uk_nino": ("a UK National Insurance number", "UK National Insurance numbers"),
    "ipv4": ("an IPv4 address", "IPv4 addresses"),
    "ipv6": ("an IPv6 address", "IPv6 addresses"),
    "private_key": ("a private key", "private keys"),
    "jwt": ("a JSON Web Token", "JSON Web Tokens"),
    "github_token": ("a GitHub token", "GitHub tokens"),
    "openai_key": ("an API key (sk-...)", "API keys (sk-...)"),
    "slack_token": ("a Slack token", "Slack tokens"),
    "aws_access_key": ("an AWS access key id", "AWS access key ids"),
}
_NEED_DIGITS = frozenset(("phone", "credit_card", "iban", "ssn", "uk_nino", "ipv4"))
_GATED = ("ipv6", "private_key", "jwt", "github_token", "openai_key", "slack_token", "aws_access_key")

# --- patterns (compiled once) ---------------------------------------------------------------------

_EMAIL = re.compile(r"(?<![\w.%+-])[A-Za-z0-9][A-Za-z0-9._%+-]{0,63}@[A-Za-z0-9](?:[A-Za-z0-9-]{0,62}[A-Za-z0-9])?"
                    r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,62}[A-Za-z0-9])?)*\.[A-Za-z]{2,24}(?![\w-])")
_PHONE = re.compile(r"""
    (?<![\w.+/-])
    (?:
        \+\d{1,3}(?:[ .-]?\(?\d{1,4}\)?)?(?:[ .-]?\d{1,5}){1,6}      # +44 20 7946 0958, +14155552671
      | (?:1[ .-])?\(\d{3}\)[ ]?\d{3}[ .-]\d{4}                       # (415) 555-2671
      | (?:1[ .-])?\d{3}([ .-])\d{3}\1\d{4}                           # 415-555-2671, 1-800-555-0199
      | \(?0\d{1,4}\)?([ .-])(?:\d{6,8}|\d{2,4}(?:\2\d{2,4}){1,3})    # 020 7946 0958, 06 12 34 56 78
    )
    (?!\w|[.-]\d)
""", re.VERBOSE)
_DATE_LIKE = re.compile(r"\d{1,4}([./-])\d{1,2}\1\d{1,4}(?!\d)")
_CARD = re.compile(r"(?<![\w-])(?:\d[ -]?){12,18}\d(?!\w|-\d)")
_IBAN = re.compile(r"(?<![A-Za-z0-9])[A-Z]{2}\d{2}(?: ?[A-Z0-9]){11,32}")
_SSN = re.compile(r"(?<![\w-])(?!000|666|9\d\d)\d{3}-(?!00)\d{2}-(?!0000)\d{4}(?![\w-])")
_NINO = re.compile(r"(?<![A-Za-z0-9])(?!BG|GB|KN|NK|NT|TN|ZZ)[A-CEGHJ-PR-TW-Z][A-CEGHJ-NPR-TW-Z]"
                   r" ?\d{2} ?\d{2} ?\d{2} ?[A-D](?![A-Za-z0-9])")
_OCTET = r"(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)"
_IPV4 = re.compile(rf"(?<![\w.]){_OCTET}(?:\.{_OCTET}){{3}}(?!\w|\.\d)")
_VERSION_BEFORE = re.compile(r"(?:version|release|ver\.?|v)\s*$", re.IGNORECASE)
_IPV6_HINT = re.compile(r":[0-9A-Fa-f]{0,4}:")
_HEX_COLON = frozenset("0123456789abcdefABCDEF:")
_PRIVATE_KEY = re.compile(r"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----")
_JWT = re.compile(r"(?<![\w-])eyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{10,}(?![\w-])")
_GITHUB = re.compile(r"(?<!\w)(?:gh[pousr]_[A-Za-z0-9]{36,255}|github_pat_[A-Za-z0-9_]{22,255})(?!\w)")
_SK = re.compile(r"(?<![\w-])sk-[A-Za-z0-9_-]{20,}")
_SLACK = re.compile(r"(?<![\w-])xox[baprs]-[A-Za-z0-9-]{10,}")
_AWS = re.compile(r"(?<![A-Za-z0-9])(?:AKIA|ASIA)[A-Z0-9]{16}(?![A-Za-z0-9])")

# Lengths of IBANs per country (the SWIFT registry); other country codes are not IBANs.
IBAN_LENGTHS = {
    "AD": 24, "AE": 23, "AL": 28, "AT": 20, "AZ": 28, "BA": 20, "BE": 16, "BG": 22, "BH": 22, "BR": 29, "BY": 28,
    "CH": 21, "CR": 22, "CY": 28, "CZ": 24, "DE": 22, "DK": 18, "DO": 28, "EE": 20, "EG": 29, "ES": 24, "FI": 18,
    "FO": 18, "FR": 27, "GB": 22, "GE": 22, "GI": 23, "GL": 18, "GR": 27, "GT": 28, "HR": 21, "HU": 28, "IE": 22,
    "IL": 23, "IQ": 23, "IS": 26, "IT": 27, "JO": 30, "KW": 30, "KZ": 20, "LB": 28, "LC": 32, "LI": 21, "LT": 20,
    "LU": 20, "LV": 21, "MC": 27, "MD": 24, "ME": 22, "MK": 19, "MR": 27, "MT": 31, "MU": 30, "NL": 18, "NO": 15,
    "PK": 24, "PL": 28, "PS": 29, "PT": 25, "QA": 29, "RO": 24, "RS": 22, "SA": 24, "SC": 31, "SE": 24, "SI": 19,
    "SK": 24, "SM": 27, "ST": 25, "SV": 28, "TL": 23, "TN": 24, "TR": 26, "UA": 29, "VA": 22, "VG": 24, "XK": 20,
}
_DIGITS = "0123456789"
# where digit-bearing values can start: two capitals and two digits (IBAN, NI number), or a run of
# digits and separators (cards, phones, SSNs, IPv4); no lookbehind, so the scan skips ahead fast
_ALPHA = re.compile(r"[A-Z]{2} ?\d\d")
_NUM_RUN = re.compile(r"[\d+(][\d ().+-]{5,}\d")
# the line gates (PiiCheck._line_kinds) work on bytes with ASCII digits mapped to \x01 and capitals to \x02,
# first with the prose dropped: lower-case letters but "u" (kept for the \\u escape) and spaces
_CLASSES = bytes.maketrans(b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ", b"\x01" * 10 + b"\x02" * 26)
_PROSE = b"abcdefghijklmnopqrstvwxyz "
_RUN9 = re.compile(rb"\x01(?:[ ().+-]*\x01){8}")  # nine digits in one run: a phone, SSN or card needs it
_QUAD = re.compile(rb"\x01\.\x01{1,3}\.\x01{1,3}\.\x01")  # an IPv4 address
_IPV6_HINT_R = re.compile(rb":[\x01\x02]{0,4}:")  # _IPV6_HINT without its lower-case hex digits
_JWT_R = re.compile(rb"\x02[\x01\x02_u-]*\.[\x01\x02_u-]*\.")  # eyJ..x.y. without its lower case
_AWS_R = re.compile(rb"\x02\x02\x02\x02[\x01\x02]{16}")
_NOTHING: frozenset[str] = frozenset()
# what the shaped gates let through: "@", nine digits in a run, a dotted quad, capitals before digits
_SHAPED = (("email",), ("phone", "ssn", "credit_card"), ("ipv4",), ("iban", "uk_nino"))


# --- validators -----------------------------------------------------------------------------------

def luhn(digits: str) -> bool:
    """The Luhn checksum card numbers carry (digits only)."""
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if i % 2:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


def _card_prefix(d: str) -> bool:
    """Issuer ranges of the card networks (Visa, Mastercard, Amex, Discover, JCB, Diners, UnionPay, Maestro)."""
    if d[0] in "3456":
        return True
    return d[0] == "2" and 2221 <= int(d[:4]) <= 2720  # Mastercard's 2-series


def iban_valid(iban: str) -> bool:
    """Country length and the ISO 13616 mod-97 check (``iban`` without spaces, upper case)."""
    if IBAN_LENGTHS.get(iban[:2]) != len(iban) or not iban[2:4].isdigit():
        return False
    moved = iban[4:] + iban[:4]
    return int("".join(str(int(ch, 36)) for ch in moved)) % 97 == 1


# --- masking --------------------------------------------------------------------------------------

def _star_digits(value: str, keep_last: int) -> str:
    """Digits become ``*`` except the last ``keep_last``; separators stay, so the shape shows."""
    total = sum(ch.isdigit() for ch in value)
    out, seen = [], 0
    for ch in value:
        if ch.isdigit():
            seen += 1
            out.append(ch if seen > total - keep_last else "*")
        else:
            out.append(ch)
    return "".join(out)


def mask(kind: str, value: str) -> str:
    """What a report may show of a detected value: enough to find it, never the value itself."""
    if kind == "email":
        local, _, domain = value.partition("@")
        tld = domain.rsplit(".", 1)[-1]
        return f"{local[:1]}***@{domain[:1]}*****.{tld}"
    if kind == "credit_card":
        digits = re.sub(r"\D", "", value)
        return "*" * (len(digits) - 4) + digits[-4:]
    if kind in ("phone", "ssn"):
        return _star_digits(value, 2)
    if kind == "iban":
        compact = value.replace(" ", "")
        return compact[:2] + "*" * (len(compact) - 4) + compact[-2:]
    if kind == "uk_nino":
        return value[:1] + "********"
    if kind == "ipv4":
        return value.split(".", 1)[0] + ".***.***.***"
    if kind == "ipv6":
        return value.split(":", 1)[0] + ":****:****"
    if kind == "private_key":  # only the BEGIN line is matched; the key body is never captured
        return value.strip("-").removeprefix("BEGIN ") + " block"
    if kind == "jwt":
        return "eyJ****.****.****"
    if kind in ("github_token", "openai_key", "slack_token", "aws_access_key"):
        prefix = re.match(r"github_pat_|gh[pousr]_|sk-(?:proj-|ant-|svcacct-|admin-)?|xox[baprs]-|AKIA|ASIA", value)
        return (prefix.group(0) if prefix else value[:1]) + "*" * 8
    return value[:1] + "*" * 8


# --- detection ------------------------------------------------------------------------------------

def _overlaps(spans: list[tuple[int, int]], start: int, end: int) -> bool:
    return any(s < end and start < e for s, e in spans)


def _api_key_like(value: str) -> bool:
    body = value[3:]
    return (len(body) >= 32 and any(c.isdigit() for c in body) and any(c.isupper() for c in body)
            and any(c.islower() for c in body))


def detect(text: str, kinds: frozenset[str] = frozenset(KINDS)) -> list[tuple[str, str]]:
    """``(kind, raw value)`` for everything found in ``text``, in detector order."""
    hits: list[tuple[str, str]] = []
    spans: list[tuple[int, int]] = []

    def add(kind: str, m: re.Match[str], value: str | None = None) -> None:
        hits.append((kind, m.group(0) if value is None else value))
        spans.append(m.span())

    # secrets: only when a likely prefix is present
    if "-----BEGIN" in text and "private_key" in kinds:
        for m in _PRIVATE_KEY.finditer(text):
            add("private_key", m)
    if "eyJ" in text and "jwt" in kinds:
        for m in _JWT.finditer(text):
            add("jwt", m)
    if ("gh" in text) and "github_token" in kinds and ("_" in text):
        for m in _GITHUB.finditer(text):
            add("github_token", m)
    if "sk-" in text and "openai_key" in kinds:
        for m in _SK.finditer(text):
            if _api_key_like(m.group(0)):
                add("openai_key", m)
    if "xox" in text and "slack_token" in kinds:
        for m in _SLACK.finditer(text):
            add("slack_token", m)
    if ("AKIA" in text or "ASIA" in text) and "aws_access_key" in kinds:
        for m in _AWS.finditer(text):
            add("aws_access_key", m)
    if "@" in text and "email" in kinds:
        for m in _EMAIL.finditer(text):
            if not _overlaps(spans, *m.span()):
                add("email", m)
    if "ipv6" in kinds and ("::" in text or text.count(":") >= 7):
        _ipv6(text, spans, hits)

    # the rest need digits: skip texts with few, then look only at candidate spans (one scan finds them)
    if kinds.isdisjoint(_NEED_DIGITS):
        return hits
    digits = sum(map(text.count, _DIGITS))
    if digits < 4:
        return hits
    if digits >= 6 and ("iban" in kinds or "uk_nino" in kinds):
        for c in _ALPHA.finditer(text):
            if "iban" in kinds and (iban := _IBAN.match(text, c.start())):
                _iban(iban, text, spans, hits)
            if "uk_nino" in kinds and (nino := _NINO.match(text, c.start())) and not _overlaps(spans, *nino.span()):
                add("uk_nino", nino)
    if digits < 9 and text.count(".") < 3:
        return hits
    for c in _NUM_RUN.finditer(text):
        start, end = c.start(), min(len(text), c.end() + 2)
        digits = sum(ch.isdigit() for ch in c.group(0))
        if digits >= 13 and "credit_card" in kinds:
            for m in _CARD.finditer(text, start, end):
                d = m.group(0).replace(" ", "").replace("-", "")
                if 13 <= len(d) <= 19 and _card_prefix(d) and luhn(d) and not _overlaps(spans, *m.span()):
                    add("credit_card", m)
        if digits >= 9 and "ssn" in kinds:
            for m in _SSN.finditer(text, start, end):
                if not _overlaps(spans, *m.span()):
                    add("ssn", m)
        if "ipv4" in kinds:
            for m in _IPV4.finditer(text, start, end):
                if m.group(0).startswith(("0.", "127.")) or _overlaps(spans, *m.span()):
                    continue  # unspecified and loopback addresses identify no one
                if _VERSION_BEFORE.search(text, max(0, m.start() - 10), m.start()):
                    continue  # "version 1.2.3.4"
                add("ipv4", m)
        if digits >= 9 and "phone" in kinds:
            for m in _PHONE.finditer(text, start, end):
                value = m.group(0)
                n = sum(ch.isdigit() for ch in value)
                if not 9 <= n <= 15 or _overlaps(spans, *m.span()):
                    continue
                if value[0] != "+" and _DATE_LIKE.match(value):
                    continue
                add("phone", m)
    return hits


def _ipv6(text: str, spans: list[tuple[int, int]], hits: list[tuple[str, str]]) -> None:
    """Find ``:x:`` or ``::`` (a fast literal scan), widen it to the hex-and-colon token, validate that."""
    pos, n = 0, len(text)
    while (m := _IPV6_HINT.search(text, pos)) is not None:
        start, end = m.start(), m.end()
        while start > 0 and text[start - 1] in _HEX_COLON and m.start() - start < 40:
            start -= 1
        while end < n and text[end] in _HEX_COLON and end - m.end() < 40:
            end += 1
        pos = end
        value = text[start:end]
        if (start and (text[start - 1].isalnum() or text[start - 1] in "_.")) or \
                (end < n and (text[end].isalnum() or text[end] == "_" or
                              (text[end] == "." and end + 1 < n and text[end + 1].isalnum()))):
            continue  # part of a longer token (std::vector, a.b::c, an IPv4-mapped address)
        groups = [g for g in value.split(":") if g]
        # "a[1::2]" and "12:30:45" are not addresses: want a four-digit group, or three or more groups
        if len(groups) < 3 and not any(len(g) == 4 for g in groups):
            continue
        try:
            addr = ipaddress.IPv6Address(value)
        except ValueError:
            continue
        if addr.is_loopback or addr.is_unspecified or _overlaps(spans, start, end):
            continue
        hits.append(("ipv6", value))
        spans.append((start, end))


def _iban(m: re.Match[str], text: str, spans: list[tuple[int, int]], hits: list[tuple[str, str]]) -> None:
    """The match may run into a following word: cut it at the country's length, on a word boundary."""
    value = m.group(0)
    length = IBAN_LENGTHS.get(value[:2])
    if length is None:
        return
    count = 0
    for i, ch in enumerate(value):
        if ch != " ":
            count += 1
            if count == length:
                end = m.start() + i + 1
                break
    else:
        return
    if end < len(text) and text[end].isalnum():
        return
    raw = text[m.start():end]
    spans.append((m.start(), end))  # IBAN-shaped: its digits are no card or phone number, valid or not
    if iban_valid(raw.replace(" ", "")):
        hits.append(("iban", raw))


def message_texts(messages: list[Any]) -> list[tuple[int, str]]:
    """``(message index, text)`` of every string content, and every text part of list content."""
    out: list[tuple[int, str]] = []
    for i, msg in enumerate(messages):
        if not isinstance(msg, dict):
            continue
        content = msg.get("content")
        if isinstance(content, str):
            if content:
                out.append((i, content))
        elif isinstance(content, list):
            for part in content:
                if isinstance(part, str):
                    out.append((i, part))
                elif isinstance(part, dict) and isinstance(part.get("text"), str):
                    out.append((i, part["text"]))
    return out


class Gate:
    """Which detectors can find anything in a line at all, for the kinds a check looks for; cached by shape."""

    def __init__(self, kinds: frozenset[str]) -> None:
        self.kinds = kinds
        self._gates: dict[tuple[bool, ...], frozenset[str]] = {}

    def line_kinds(self, raw: bytes, messages: list[Any]) -> frozenset[str]:
        """The detectors that can find anything in this line at all, judged with fast C scans.

        A line that is pure ASCII with no ``\\u`` escape holds every value a detector can match literally
        (JSON escapes only quotes, backslashes, control characters and ``/``, which no match contains), so
        its bytes are judged, on shapes: nine digits in one run of digits and separators (phones, SSNs,
        cards), a dotted quad (IPv4), two capitals before two digits (IBANs, NI numbers), a prefix (secrets).
        One translate drops the prose (lower-case letters but ``u``, spaces) and maps digits and capitals
        to classes; what a value would leave of itself there is looked for first, on those few bytes, and
        only then the value's exact shape on the whole line. Other lines are judged on their texts.
        """
        if not raw.isascii():
            return self.text_kinds(messages)
        r = raw.translate(_CLASSES, _PROSE)
        if b"\\u" in r:
            return self.text_kinds(messages)
        email = b"@" in r
        run9 = r.count(b"\x01") >= 9 and _RUN9.search(r) is not None
        quad = b"\x01." in r and _QUAD.search(r) is not None
        alpha = b"\x02\x02\x01\x01" in r
        ipv6 = _IPV6_HINT_R.search(r) is not None
        key_block = b"-----\x02" in r
        jwt = _JWT_R.search(r) is not None
        underscore = b"_" in r
        dash = b"-" in r
        aws = b"\x02\x02\x02\x02" in r and _AWS_R.search(r) is not None
        if not (email or run9 or quad or alpha or ipv6 or key_block or jwt or underscore or dash or aws):
            return _NOTHING  # the common case: nothing any detector could match
        if run9 or quad or alpha:  # now the exact shapes, on the whole line
            classes = raw.translate(_CLASSES)
            run9 = run9 and _RUN9.search(classes) is not None
            quad = quad and _QUAD.search(classes) is not None
            alpha = alpha and (b"\x02\x02\x01\x01" in classes or b"\x02\x02 \x01\x01" in classes)
        key = (ipv6 and (b"::" in raw or raw.count(b":") - raw.count(b'":') >= 7),  # not counting JSON keys
               key_block and b"-----BEGIN" in raw,
               jwt and b"eyJ" in raw,
               underscore and b"gh" in raw,
               dash and b"sk-" in raw,
               dash and b"xox" in raw,
               aws, email, run9, quad, alpha)
        kinds = self._gates.get(key)
        if kinds is None:
            possible = {k for k, ok in zip(_GATED, key) if ok}
            for ok, group in zip(key[len(_GATED):], _SHAPED):
                if ok:
                    possible.update(group)
            kinds = self._gates[key] = self.kinds & possible
        return kinds

    def text_kinds(self, messages: list[Any]) -> frozenset[str]:
        """The gate for lines with non-ASCII text or ``\\u`` escapes, judged on their message texts."""
        text = "\n".join([t for _, t in message_texts(messages)])
        possible = {k for k, ok in zip(_GATED, (
            "::" in text or text.count(":") >= 7, "-----BEGIN" in text, "eyJ" in text,
            "gh" in text and "_" in text, "sk-" in text, "xox" in text, "AKIA" in text or "ASIA" in text)) if ok}
        if "@" in text:
            possible.add("email")
        if sum(map(text.count, _DIGITS)) >= 4:
            possible.update(_NEED_DIGITS)
        return self.kinds & possible
