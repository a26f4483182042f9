"""Act: take personal data and secrets out of free text before it leaves tactful. Pure.

Each item found is replaced by a typed placeholder, so a reader still knows what the
customer shared without seeing it:

- ``[email]``: an address ``local@domain.tld``.
- ``[card]``: 13 to 19 digits (single spaces or dashes between them) that pass the Luhn
  check; a card between other numbers is found too ("on 2026-10-14 4111 1111 ...").
- ``[iban]``: country code, check digits and 11 to 30 upper-case letters or digits
  (compact, or in groups of four) that pass the ISO 13616 mod-97 check.
- ``[phone]``: international ``+CC ...`` numbers (7 to 15 digits), North American
  ``(555) 123-4567`` forms, national numbers with a trunk ``0`` and separators
  (``020 7946 0958``, ``06 12 34 56 78``), and 7 or more digits right after "phone",
  "call me at", "my number is" ...
- ``[secret]``: API keys and tokens by shape (``sk-``, ``sk_live_``, ``ghp_``, ``xoxb-``,
  ``AKIA``, ``AIza``, ``glpat-``, JWTs), the token after ``Bearer``, a high-entropy value
  (16+ characters with letters and digits) after a word like key, token or secret, and
  the value after "password:" (after "password is" only when it holds a digit).

It is deliberately conservative about numbers: order numbers (``#12345``), prices
(``$1,299.00``), dates, times and years are left alone, and a card or IBAN is redacted only
when its check digits are right. Passes run in a fixed order (secrets, emails, IBANs,
cards, phones) with precompiled patterns, each skipped when the text cannot hold a match.
A placeholder's brackets count as part of a word at every pattern's edges, so nothing
next to one matches anew: ``redact`` is idempotent (tests/test_handoff.py checks it).
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Collection, Mapping
from typing import Final, TypeVar, cast

__all__ = ["KINDS", "luhn_valid", "mod97_valid", "redact", "redact_counts", "redact_value"]

KINDS: Final = ("secret", "email", "iban", "card", "phone")

T = TypeVar("T")

# --- secrets -------------------------------------------------------------------------------

_TOKEN_SHAPES = re.compile(
    r"""(?<![A-Za-z0-9_\]-])(?:
        sk-(?:proj-|ant-)?[A-Za-z0-9_-]{20,}          # OpenAI / Anthropic style
      | (?:sk|pk|rk)_(?:live|test)_[A-Za-z0-9]{10,}   # Stripe
      | gh[pousr]_[A-Za-z0-9]{30,}                    # GitHub tokens
      | github_pat_[A-Za-z0-9_]{22,}                  # GitHub fine-grained tokens
      | glpat-[A-Za-z0-9_-]{20,}                      # GitLab
      | xox[abposr]-[A-Za-z0-9-]{10,}                 # Slack
      | (?:AKIA|ASIA)[0-9A-Z]{16}                     # AWS access key ids
      | AIza[0-9A-Za-z_-]{35}                         # Google API keys
      | eyJ[A-Za-z0-9_-]{5,}\.eyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]*   # JWTs
    )(?![A-Za-z0-9_\[-])""",
    re.VERBOSE,
)
# What each shape starts with (a substring test before the pattern runs).
_SHAPE_PREFIXES = (
    *("sk-", "sk_", "pk_", "rk_", "gh", "github_pat_", "glpat-", "xox"),
    *("AKIA", "ASIA", "AIza", "eyJ"),
)
_BEARER = re.compile(r"(?i)\b(bearer\s+)([A-Za-z0-9._~+/-]{8,}=*)")
# A word naming a secret, how the value is introduced, and the value itself.
_KEYWORD = re.compile(
    r"""(?ix)\b(
        (?:api|access|secret|private|client|auth)?[_ -]?key
      | (?:access|auth|refresh|api|bearer)?[_ -]?token
      | secret | client[_ -]?secret
      | password | passwd | pwd | passphrase | passcode
    )\b
    (\s*(?:[:=]|\bis\b|\bwas\b)?\s*["']?)
    ([^\s"'\[\]<>,;(){}]+)""",
)
_SECRET_WORDS = ("key", "token", "secret", "pass", "pwd")
_PASSWORD_WORDS = frozenset({"password", "passwd", "pwd", "passphrase", "passcode"})
_TRAILING = ".!?:"


def _high_entropy(value: str) -> bool:
    """Looks generated: 16+ characters with both letters and digits (words never are)."""
    return len(value) >= 16 and any(c.isdigit() for c in value) and any(c.isalpha() for c in value)


def _keyword(m: re.Match[str], counts: Counter[str]) -> str:
    word, sep, value = m.group(1), m.group(2), m.group(3)
    core = value.rstrip(_TRAILING)
    tail = value[len(core) :]
    is_password = word.lower() in _PASSWORD_WORDS
    explicit = ":" in sep or "=" in sep
    if is_password and explicit and len(core) >= 4:
        secret = True
    elif is_password:  # "my password is hunter22", not "my password is wrong"
        secret = len(core) >= 6 and any(c.isdigit() for c in core) and not core.isdigit()
    else:
        secret = _high_entropy(core)
    if not secret:
        return m.group(0)
    counts["secret"] += 1
    return f"{word}{sep}[secret]{tail}"


# --- emails --------------------------------------------------------------------------------

_EMAIL = re.compile(
    r"(?<![A-Za-z0-9._%+\]-])[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}"
    r"(?![A-Za-z0-9\[-])"
)

# --- IBANs and cards: candidates by shape, then their check digits --------------------------

_IBAN = re.compile(
    r"(?<![A-Za-z0-9\]])[A-Z]{2}[0-9]{2}"
    r"(?:[A-Z0-9]{11,30}|(?: [A-Z0-9]{4}){2,7}(?: [A-Z0-9]{1,4})?)"
    r"(?![A-Za-z0-9\[])"
)
_IBAN_SHAPE = re.compile(r"[A-Z]{2}[0-9]{2}[A-Z0-9]{11,30}")
# A whole run of digit groups with single spaces or dashes between them: the cards in it
# are found among its windows (a card may sit between other numbers).
_DIGIT_RUN = re.compile(r"(?<![\w#\]])[0-9]+(?:[ -][0-9]+)*(?![\w\[])", re.ASCII)
_GROUPS = re.compile(r"[^ -]+")
_SEPARATORS = re.compile(r"[ -]")
# How card numbers are grouped when they are: 4-4-4-4(-3), Amex 4-6-5, Diners 4-6-4.
_CARD_GROUPINGS = frozenset({(4, 4, 4, 4), (4, 4, 4, 4, 3), (4, 6, 5), (4, 6, 4), (4, 4, 4, 1)})
# Card lengths, most common first (a tie between windows goes to the likelier card).
_CARD_LENGTHS = (16, 15, 19, 13, 14, 17, 18)


def luhn_valid(digits: str) -> bool:
    """The Luhn checksum of a string of ASCII digits (payment card numbers carry one)."""
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if i % 2:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def mod97_valid(iban: str) -> bool:
    """ISO 13616: the IBAN (compact, upper case) moved 4 characters left, letters read as
    10..35, is 1 modulo 97."""
    if _IBAN_SHAPE.fullmatch(iban) is None:
        return False
    moved = iban[4:] + iban[:4]
    return int("".join(str(int(c, 36)) for c in moved)) % 97 == 1


def _card_rank(window: str) -> tuple[int, int] | None:
    """How likely ``window`` is a card number (higher first); None when it is not one."""
    groups = _SEPARATORS.split(window)
    digits = "".join(groups)
    if not 13 <= len(digits) <= 19 or not luhn_valid(digits):
        return None
    shaped = len(groups) == 1 or tuple(map(len, groups)) in _CARD_GROUPINGS
    return (int(shaped), -_CARD_LENGTHS.index(len(digits)))


def _iban_rank(window: str) -> tuple[int, int] | None:
    compact = window.replace(" ", "")
    return (0, len(compact)) if mod97_valid(compact) else None


def _replace_windows(
    text: str,
    kind: str,
    rank: Callable[[str], tuple[int, int] | None],
    counts: Counter[str],
    span: int,
) -> str:
    """``text`` (groups with separators between them) with the best-ranked run of whole
    groups replaced by ``[kind]``, then the same again on each side. Runs longer than
    ``span`` characters are not tried."""
    groups = [(m.start(), m.end()) for m in _GROUPS.finditer(text)]
    best: tuple[tuple[int, int], int, int] | None = None
    for i, (a, _) in enumerate(groups):
        for _, b in groups[i:]:
            if b - a > span:
                break
            score = rank(text[a:b])
            if score is not None and (best is None or score > best[0]):
                best = (score, a, b)
    if best is None:
        return text
    _, a, b = best
    counts[kind] += 1
    left = _replace_windows(text[:a], kind, rank, counts, span)
    right = _replace_windows(text[b:], kind, rank, counts, span)
    return f"{left}[{kind}]{right}"


# --- phones --------------------------------------------------------------------------------

# Digits (up to two separators between each) after words that announce a phone number.
_PHONE_CONTEXT = re.compile(
    r"""(?aix)\b(
        (?:phone|mobile|cell|telephone|tel|fax|whatsapp)(?:\s*(?:number|no\.?|\#))?
      | (?:call|text|reach|ring)\s+me\s+(?:at|on)
      | my\s+(?:number|cell|mobile)\s+is
    )(\s*[:.]?\s*)
    (\+?\(?\d(?:[ .()-]{0,2}\d){6,14})(?![\w\[])""",
)
_PHONE_WORDS = ("phone", "mobile", "cell", "tel", "fax", "whatsapp", "me", "number")
# +CC then 6 to 14 more digits, each after at most two separators.
_PHONE_INTL = re.compile(r"(?<![\w+\]])\+\d(?:[ .()-]{0,2}\d){6,14}(?![\w\[])", re.ASCII)
# (555) 123-4567, 555-123-4567, 555.123.4567, 555 123 4567
_PHONE_NANP = re.compile(
    r"(?<![\w$#.,/:+\]-])(?<![0-9][ .-])"  # not inside a word, amount or run of numbers
    r"(?:\(\d{3}\)\s?|\d{3}[ .-])\d{3}[ .-]\d{4}"
    r"(?![\w\[]|[.,/:-]\d)",
    re.ASCII,
)
# A trunk 0, then groups with one consistent separator: 020 7946 0958, 06 12 34 56 78,
# 030 12345678, (020) 7946 0958. Needs 9 to 12 digits, so dates (01.02.2026) are not one.
_PHONE_NATIONAL = re.compile(
    r"(?<![\w$#.,/:+\]-])(?<![0-9][ .-])"
    r"(?:\(0\d{1,4}\)|0\d{1,4})(?P<s>[ .-])\d{2,8}(?:(?P=s)\d{2,4}){0,3}"
    r"(?![\w\[]|[.,/:-]\d)",
    re.ASCII,
)
_NON_DIGIT = re.compile(r"\D")


def _phone_digits_ok(number: str, low: int = 7) -> bool:
    return low <= len(_NON_DIGIT.sub("", number)) <= 15


# --- the passes ----------------------------------------------------------------------------

_DIGIT = re.compile(r"[0-9]")
_DIGITS = "0123456789"
# Every digit-based kind (phone, card, IBAN) needs at least this many digits.
_MIN_DIGITS = 7


def _clean(text: str) -> bool:
    """Whether no pass could match (most messages: no "@", few digits, no key words),
    decided with substring counts only; redaction then costs about a microsecond."""
    if "@" in text or sum(map(text.count, _DIGITS)) >= _MIN_DIGITS:
        return False
    if any(p in text for p in _SHAPE_PREFIXES):
        return False
    lower = text.lower()
    return "bearer" not in lower and not any(w in lower for w in _SECRET_WORDS)


def redact_counts(text: str, kinds: Collection[str] = KINDS) -> tuple[str, Counter[str]]:
    """``text`` with each email, phone, card, IBAN and secret replaced by ``[kind]``, and
    how many of each kind were replaced; ``kinds``: only these."""
    counts: Counter[str] = Counter()
    if _clean(text):
        return text, counts

    def shape(m: re.Match[str]) -> str:
        counts["secret"] += 1
        return "[secret]"

    def bearer(m: re.Match[str]) -> str:
        token = m.group(2)
        if len(token) < 24 and not any(c.isdigit() for c in token):
            return m.group(0)  # "Bearer authentication": a word, not a token
        counts["secret"] += 1
        return f"{m.group(1)}[secret]"

    def email(m: re.Match[str]) -> str:
        counts["email"] += 1
        return "[email]"

    def phone(m: re.Match[str]) -> str:
        if not _phone_digits_ok(m.group(0), 9 if m.re is _PHONE_NATIONAL else 7):
            return m.group(0)
        counts["phone"] += 1
        return "[phone]"

    def phone_after_word(m: re.Match[str]) -> str:
        if not _phone_digits_ok(m.group(3)):
            return m.group(0)
        counts["phone"] += 1
        return f"{m.group(1)}{m.group(2)}[phone]"

    # Each pass runs only when a plain substring test says it could match (most text has
    # no "@", no key words and few digits): scanning is then a few microseconds.
    out = text
    lower = out.lower()
    if "secret" in kinds:
        if any(p in out for p in _SHAPE_PREFIXES):
            out = _TOKEN_SHAPES.sub(shape, out)
            lower = out.lower()
        if "bearer" in lower:
            out = _BEARER.sub(bearer, out)
        if any(w in lower for w in _SECRET_WORDS):
            out = _KEYWORD.sub(lambda m: _keyword(m, counts), out)
    if "@" in out and "email" in kinds:
        out = _EMAIL.sub(email, out)
    if _DIGIT.search(out) is None:
        return out, counts
    if "iban" in kinds:
        out = _IBAN.sub(lambda m: _replace_windows(m.group(0), "iban", _iban_rank, counts, 42), out)
    if "card" in kinds:
        out = _DIGIT_RUN.sub(
            lambda m: (
                _replace_windows(m.group(0), "card", _card_rank, counts, 37)
                if len(m.group(0)) >= 13  # shorter runs ("0.7", "2026") cannot hold a card
                else m.group(0)
            ),
            out,
        )
    if "phone" not in kinds:
        return out, counts
    if any(w in lower for w in _PHONE_WORDS):
        out = _PHONE_CONTEXT.sub(phone_after_word, out)
    if "+" in out:
        out = _PHONE_INTL.sub(phone, out)
    out = _PHONE_NANP.sub(phone, out)
    out = _PHONE_NATIONAL.sub(phone, out)
    return out, counts


def redact(text: str, kinds: Collection[str] = KINDS) -> str:
    """``text`` with emails, phones, cards, IBANs and secrets replaced by ``[kind]``
    (``kinds``: only these)."""
    return redact_counts(text, kinds)[0]


def redact_value(value: T) -> T:
    """``value`` with every string in it redacted, through dicts (values, not keys), lists
    and tuples; other values are returned as they are."""
    if isinstance(value, str):
        return cast(T, redact(value))
    if isinstance(value, Mapping):
        return cast(T, {k: redact_value(v) for k, v in value.items()})
    if isinstance(value, list):
        return cast(T, [redact_value(v) for v in value])
    if isinstance(value, tuple):
        return cast(T, tuple(redact_value(v) for v in value))
    return value
