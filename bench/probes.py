"""Probes: does the default scorer read what software customers write as a person would?

Not a quality measure. The eval (`tactful eval text`) is: data labeled by people outside
this project. The probe sets in bench/probes/ are realistic support messages (SaaS
customers and prospects, chat and email) written for this purpose by writers who saw no
code, each with one to three readings a careful reader is sure of:

    frustration>=0.5 topic=billing | You charged us twice again. Third time I'm writing.
    churn_intent<0.3 topic=account_access | How do I remove a former employee?

``dim>=x``: the dimension reads at least x; ``dim<x``: below x; ``topic=NAME``: the
message is filed under NAME. The question is how the detector carries to phrasing it was
never shown, so bench/probes/README.md says which sets were fixed against and which are
held out (read for counts only: never fix a cue against a held-out message).

Run: ``python bench/probes.py`` (every set), ``python bench/probes.py --show
bench/probes/seen_a.txt`` (also each failing message with what was read). To see what a
change fixed and broke without reading a held-out message: ``--save before.json`` on
the code before it, then ``--against before.json`` on the code after (counts per set and
kind of check). The last line is one JSON object: {set: {"messages", "checks", "failed",
"by_check": {check kind: [failed, checks]}}} (with ``--against``, also "fixed" and
"broken").
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent / "probes"
_CHECK = re.compile(r"^(?P<dim>[a-z_]+)(?P<op>>=|<)(?P<value>0?\.\d+|[01](?:\.\d+)?)$")


class ProbeError(ValueError):
    """A probe line that cannot be read: names the file, the line and why."""


@dataclass(frozen=True, slots=True)
class Check:
    dimension: str  # a signals.DIMENSIONS name, or "topic"
    op: str  # ">=", "<" or "="
    value: float | str

    @property
    def kind(self) -> str:
        """What the counts are grouped by: "frustration>=", "churn_intent<", "topic"."""
        return "topic" if self.op == "=" else f"{self.dimension}{self.op}"

    def holds(self, scores: dict[str, float], topic: str) -> bool:
        if self.op == "=":
            return topic == self.value
        read = scores[self.dimension]
        assert isinstance(self.value, float)
        return read >= self.value if self.op == ">=" else read < self.value

    def __str__(self) -> str:
        return f"{self.dimension}{self.op}{self.value}"


@dataclass(frozen=True, slots=True)
class Probe:
    where: str  # file:line
    text: str
    checks: tuple[Check, ...]


def parse(lines: Iterable[str], name: str) -> list[Probe]:
    """Probe lines ("checks | text"); blank lines and lines starting with # are skipped."""
    from tactful.signals import DIMENSIONS, TOPICS

    probes: list[Probe] = []
    for n, raw in enumerate(lines, 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        where = f"{name}:{n}"
        head, sep, text = line.partition("|")
        if not sep or not text.strip():
            raise ProbeError(f"{where}: expected 'checks | message', got {line[:60]!r}")
        checks: list[Check] = []
        for word in head.split():
            if word.startswith("topic="):
                topic = word.removeprefix("topic=")
                if topic not in TOPICS:
                    raise ProbeError(f"{where}: topic {topic!r} is not one of {sorted(TOPICS)}")
                checks.append(Check("topic", "=", topic))
                continue
            m = _CHECK.match(word)
            if m is None:
                raise ProbeError(
                    f"{where}: check {word!r} is not 'dim>=x', 'dim<x' or 'topic=NAME'"
                )
            if m["dim"] not in DIMENSIONS:
                raise ProbeError(
                    f"{where}: dimension {m['dim']!r} is not one of {sorted(DIMENSIONS)}"
                )
            checks.append(Check(m["dim"], m["op"], float(m["value"])))
        if not checks:
            raise ProbeError(f"{where}: no check before the '|'")
        probes.append(Probe(where, text.strip(), tuple(checks)))
    return probes


# per set, per message, whether each of its checks held: what --save writes
Outcomes = dict[str, list[list[bool]]]


def run(
    files: Sequence[Path], show: bool, before: Outcomes | None = None, topics: bool = False
) -> tuple[dict[str, dict[str, object]], Outcomes]:
    """Score every set; the summary per set, and each check's outcome. ``before``: the
    outcomes of an earlier run (--save), counted against per kind of check. ``topics``:
    also count the missed topic checks by topic expected and topic read (no message
    shown, so a held-out set can say where its topics go wrong)."""
    from tactful.detect.learned import load_scorer

    scorer = load_scorer()
    print(f"scorer {scorer.version}")
    summary: dict[str, dict[str, object]] = {}
    outcomes: Outcomes = {}
    for path in files:
        probes = parse(path.read_text(encoding="utf-8").splitlines(), path.name)
        read = scorer.score_batch([p.text for p in probes])
        held = [
            [c.holds(s.scores, s.topic) for c in p.checks]
            for p, s in zip(probes, read, strict=True)
        ]
        outcomes[path.stem] = held
        earlier = (before or {}).get(path.stem)
        if earlier is not None and [len(h) for h in earlier] != [len(h) for h in held]:
            raise ProbeError(f"{path.name}: its checks changed since the saved run")
        checks: Counter[str] = Counter()
        failed: Counter[str] = Counter()
        fixed: Counter[str] = Counter()
        broken: Counter[str] = Counter()
        confused: Counter[tuple[str, str]] = Counter()
        for k, (probe, scores) in enumerate(zip(probes, read, strict=True)):
            if earlier is not None:
                for c, was, now in zip(probe.checks, earlier[k], held[k], strict=True):
                    fixed[c.kind] += not was and now
                    broken[c.kind] += was and not now
            wrong = [c for c, ok in zip(probe.checks, held[k], strict=True) if not ok]
            for c in probe.checks:
                checks[c.kind] += 1
            for c in wrong:
                failed[c.kind] += 1
                if c.op == "=":
                    confused[str(c.value), scores.topic] += 1
            if wrong and show:
                got = ", ".join(
                    f"topic={scores.topic}"
                    if c.op == "="
                    else f"{c.dimension} {scores.scores[c.dimension]:.2f}"
                    for c in wrong
                )
                print(f"  {probe.where}: {' '.join(map(str, wrong))} (read {got}) | {probe.text}")
        total, bad = sum(checks.values()), sum(failed.values())
        print(f"{path.name}: {len(probes)} messages, {bad} of {total} checks failed")
        for kind in sorted(checks):
            moved = f" ({fixed[kind]} fixed, {broken[kind]} broken)" if earlier is not None else ""
            print(f"    {kind:<16} {failed[kind]:>3} of {checks[kind]:>3} failed{moved}")
        if topics and confused:
            print("    missed topics (expected -> read):")
            for (expected, got), n in confused.most_common():
                print(f"      {expected:<18} -> {got:<18} {n:>3}")
        summary[path.stem] = {
            "messages": len(probes),
            "checks": total,
            "failed": bad,
            "by_check": {k: [failed[k], checks[k]] for k in sorted(checks)},
        }
        if earlier is not None:
            summary[path.stem] |= {"fixed": sum(fixed.values()), "broken": sum(broken.values())}
    return summary, outcomes


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Score the probe sets (realistic support messages with the readings a "
        "careful reader is sure of) with the default scorer and count what it misses."
    )
    parser.add_argument(
        "files",
        nargs="*",
        type=Path,
        help="probe files (default: every bench/probes/*.txt)",
    )
    parser.add_argument(
        "--show", action="store_true", help="print each failing message and what was read"
    )
    parser.add_argument(
        "--save", type=Path, metavar="FILE", help="write each check's outcome to FILE (JSON)"
    )
    parser.add_argument(
        "--against",
        type=Path,
        metavar="FILE",
        help="count what was fixed and broken since the outcomes --save wrote to FILE "
        "(counts only: no message is shown)",
    )
    parser.add_argument(
        "--topics",
        action="store_true",
        help="count the missed topic checks by topic expected and topic read "
        "(counts only: no message is shown)",
    )
    args = parser.parse_args(argv)
    files = args.files or sorted(HERE.glob("*.txt"))
    if not files:
        print(f"error: no probe files in {HERE}", file=sys.stderr)
        return 2
    try:
        before = json.loads(args.against.read_text(encoding="utf-8")) if args.against else None
        summary, outcomes = run(files, args.show, before, args.topics)
        if args.save:
            args.save.write_text(json.dumps(outcomes), encoding="utf-8")
    except (ProbeError, OSError, json.JSONDecodeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
