"""Load and validate the watch rules file into a compiled ``RuleSet``.

The file is YAML (see README "Watch rules"). Validation is strict: an unknown
key, a missing field, a duplicate id, an empty phrase list, an unknown
synonym group, a bad ``require_within`` or a bad regular expression stops the
load with a ``RulesError`` naming the file, line, column and what to write
instead. Nothing is silently ignored. Compiled clauses are built here once per rules version.

Does not match items (``classifiers.match``) and does not fetch anything.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote_plus

from cssselect import HTMLTranslator, SelectorError
from pydantic import (
    ValidationError,
)
from ruamel.yaml import YAML
from ruamel.yaml.error import MarkedYAMLError

from classifiers.expressions import (
    Clause,
    ExpressionError,
    Pattern,
    PatternSet,
    Trigger,
    compile_clause,
    phrase_alternatives,
    screen_pattern,
    trigger_of,
)
from classifiers.rules_schema import (
    ClauseSet,
    FindingSpec,
    RulesDocument,
    SourceEntry,
    TopicSpec,
    WindowSpec,
)
from metwatch.errors import RulesError, RulesErrors
from metwatch.models import SourceSpec


@dataclass(frozen=True, slots=True)
class Term:
    """A synonym group used as required context (``require: [met]``)."""

    name: str
    phrases: tuple[Clause, ...]
    excluded: tuple[Clause, ...]
    #: Necessary condition over the folded text: no hit means the term is absent.
    screen: Any = None


@dataclass(frozen=True, slots=True)
class Window:
    """Where required context must be, relative to the match that proves a rule.

    Each side is a number of words between the two (as in ``NEAR/n``) or
    ``"sentence"``: anywhere on that side within the match's sentence.
    """

    before: int | str
    after: int | str

    def __str__(self) -> str:
        if self.before == self.after:
            return f"{self.before} words" if isinstance(self.before, int) else "sentence"
        sides = [
            f"{n} words {side}" if isinstance(n, int) else f"sentence {side}"
            for side, n in (("before", self.before), ("after", self.after))
        ]
        return ", ".join(sides)


@dataclass(frozen=True, slots=True)
class CompiledClauses:
    all: tuple[Clause, ...]
    any: tuple[Clause, ...]
    none: tuple[Clause, ...]


@dataclass(frozen=True, slots=True)
class Prefilter:
    """Word sets that let matching skip a finding with two set checks per item."""

    #: Per 'all' clause, what must occur for it to match.
    all: tuple[Trigger, ...]
    #: What must occur for any 'any' clause to match (None: there are none).
    any: Trigger | None


@dataclass(frozen=True, slots=True)
class Finding:
    id: str
    topic_id: str
    title: str
    description: str
    require: tuple[str, ...]
    fields: frozenset[str]
    min_score: float
    clauses: CompiledClauses
    prefilter: Prefilter
    #: None: the required context may be anywhere in the item.
    require_within: Window | None = None


@dataclass(frozen=True, slots=True)
class Topic:
    id: str
    title: str
    description: str
    require: tuple[str, ...]
    clauses: CompiledClauses
    require_within: Window | None = None


@dataclass(frozen=True, slots=True)
class RuleSet:
    """A validated, compiled rules file: what classifiers and watchers run on."""

    path: str
    #: Short digest of the file's bytes: the "rules version" shown to admins.
    version: str
    topics: tuple[Topic, ...]
    findings: tuple[Finding, ...]
    terms: dict[str, Term]
    sources: tuple[SourceSpec, ...]
    #: Every regular expression of the file, for one RE2 Set pass per item.
    patterns: PatternSet
    #: The file's bytes, from which a worker process compiles the same rules
    #: (compiled rules hold RE2 objects, which cannot be pickled).
    data: bytes = field(default=b"", repr=False, compare=False)
    #: Sources the file lists with ``enabled: false``: not polled, but checked
    #: like the others and previewable by id.
    disabled_sources: tuple[SourceSpec, ...] = ()

    def finding(self, finding_id: str) -> Finding | None:
        return next((f for f in self.findings if f.id == finding_id), None)

    def topic(self, topic_id: str) -> Topic | None:
        return next((t for t in self.topics if t.id == topic_id), None)

    @property
    def follow_targets(self) -> frozenset[str]:
        """Ids a subscriber may follow: every topic and every finding."""
        return frozenset([t.id for t in self.topics] + [f.id for f in self.findings])


def selector_problem(selector: str) -> str | None:
    """Why a page source's CSS selector is invalid, or None (checked at load time)."""
    try:
        HTMLTranslator().css_to_xpath(selector)
    except SelectorError as e:
        return f"invalid CSS selector {selector!r}: {e}"
    return None


def load_rules(path: str | Path) -> RuleSet:
    """Read, validate and compile the rules file at ``path``.

    Raises:
        RulesError: the file is missing, not YAML, or invalid; the message names
            the file, line and column.
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as e:
        raise RulesError(f"cannot read rules file: {e.strerror}", path=str(path)) from e
    return parse_rules(data, str(path))


def parse_rules(data: bytes, path: str) -> RuleSet:
    """Validate and compile rules given as YAML bytes (``path`` names them in errors)."""
    tree = _load_yaml(data, path)
    try:
        document = RulesDocument.model_validate(tree)
    except ValidationError as e:
        raise RulesErrors([_located(err, tree, path) for err in e.errors()]) from None
    return _Compiler(document, tree, path).compile(hashlib.sha256(data).hexdigest()[:12], data)


def _load_yaml(data: bytes, path: str) -> Any:
    try:
        tree = YAML(typ="rt").load(data)
    except MarkedYAMLError as e:
        mark = e.problem_mark
        raise RulesError(
            f"not valid YAML: {e.problem}",
            path=path,
            line=mark.line + 1 if mark else None,
            column=mark.column + 1 if mark else None,
        ) from None
    if not isinstance(tree, dict):
        raise RulesError(
            "the rules file must be a mapping with 'topics', 'findings' and 'sources'",
            path=path,
            line=1,
        )
    return tree


def _position(tree: Any, loc: Sequence[int | str]) -> tuple[int | None, int | None]:
    """Line and column (1-based) of the deepest node of ``loc`` found in the YAML tree."""
    line = column = None
    node = tree
    for key in loc:
        lc = getattr(node, "lc", None)
        try:
            if isinstance(key, int) and isinstance(node, list):
                pos = lc.item(key) if lc else None
                node = node[key]
            elif isinstance(node, dict) and key in node:
                pos = lc.key(key) if lc else None
                node = node[key]
            else:
                break
        except (KeyError, IndexError, TypeError):
            break
        if pos:
            line, column = pos[0] + 1, pos[1] + 1
    return line, column


_HINTS = {
    "extra_forbidden": "remove it or check its spelling against README 'Watch rules'",
    "missing": "add it",
    "string_pattern_mismatch": "use lower-case letters, digits and '-'",
    "literal_error": "use one of the listed values",
}
#: Hints for a key's own checks (pydantic reports them all as 'value_error').
_KEY_HINTS = {
    "require_within": "write a number of words such as 40, 'sentence', "
    "or {before: 200, after: sentence}",
}


def _located(err: Any, tree: Any, path: str) -> RulesError:
    loc = [p for p in err["loc"] if not (isinstance(p, str) and p.startswith("function-"))]
    # Union members show up in loc (e.g. 'str', 'dict[...]'): drop what is not in the file.
    loc = [p for p in loc if not (isinstance(p, str) and ("[" in p or p in {"str", "list"}))]
    line, column = _position(tree, loc)
    dotted = ".".join(str(p) for p in loc)
    if err["type"] == "extra_forbidden":
        reason = f"unknown key {dotted!r}"
    elif err["type"] == "missing":
        reason = f"missing field {dotted!r}"
    else:
        reason = f"{dotted}: {err['msg'].removeprefix('Value error, ')}"
    hint = next((_KEY_HINTS[p] for p in loc if p in _KEY_HINTS), _HINTS.get(err["type"]))
    return RulesError(reason, path=path, line=line, column=column, hint=hint)


class _Compiler:
    """Turns a validated document into compiled clauses, collecting every error."""

    def __init__(self, document: RulesDocument, tree: Any, path: str) -> None:
        self.doc = document
        self.tree = tree
        self.path = path
        self.errors: list[RulesError] = []
        self.groups: dict[str, tuple[tuple[str, ...], ...]] = {}
        self.pattern_texts: list[str] = []

    def error(self, reason: str, loc: Sequence[int | str], hint: str | None = None) -> None:
        line, column = _position(self.tree, loc)
        self.errors.append(RulesError(reason, path=self.path, line=line, column=column, hint=hint))

    def compile(self, version: str, data: bytes) -> RuleSet:
        terms = self._terms()
        topics = tuple(self._topic(i, t) for i, t in enumerate(self.doc.topics))
        findings = tuple(self._finding(i, f) for i, f in enumerate(self.doc.findings))
        self._check_ids()
        sources = tuple(self._source(s) for s in self.doc.sources if s.enabled)
        disabled = self._disabled_sources()
        if self.errors:
            raise RulesErrors(self.errors)
        patterns = PatternSet(self.pattern_texts)
        return RuleSet(self.path, version, topics, findings, terms, sources, patterns, data,
                       disabled)  # fmt: skip

    def _terms(self) -> dict[str, Term]:
        for name, group in self.doc.synonyms.items():
            phrases = group if isinstance(group, list) else group.any
            try:
                self.groups[name] = phrase_alternatives(phrases)
            except ExpressionError as e:
                self.error(str(e), ["synonyms", name])
        terms: dict[str, Term] = {}
        for name, group in self.doc.synonyms.items():
            excluded = [] if isinstance(group, list) else group.not_
            loc: list[int | str] = ["synonyms", name]
            terms[name] = Term(
                name,
                phrases=(self._clause("{" + name + "}", loc),) if name in self.groups else (),
                excluded=tuple(self._clause(x, loc) for x in excluded),
                screen=screen_pattern(self.groups.get(name, ())),
            )
        return terms

    def _clause(self, source: str | dict[str, str], loc: Sequence[int | str]) -> Clause:
        try:
            clause = compile_clause(source, self.groups.get)
            if isinstance(clause, Pattern):
                self.pattern_texts.append(clause.text)
            return clause
        except ExpressionError as e:
            self.error(str(e), loc)
            return compile_clause({"re": "$^"}, self.groups.get)

    def _clauses(self, clauses: ClauseSet, loc: list[int | str]) -> CompiledClauses:
        def build(kind: str, items: Iterable[str | dict[Any, str]]) -> tuple[Clause, ...]:
            return tuple(self._clause(c, [*loc, kind, n]) for n, c in enumerate(items))

        return CompiledClauses(
            build("all", clauses.all), build("any", clauses.any), build("none", clauses.none)
        )

    def _require(self, names: Sequence[str], loc: list[int | str]) -> tuple[str, ...]:
        for name in names:
            if name not in self.doc.synonyms:
                self.error(
                    f"require names unknown synonym group {name!r}",
                    loc,
                    hint=f"declare {name!r} under 'synonyms' or use one of "
                    f"{sorted(self.doc.synonyms)}",
                )
        return tuple(names)

    def _within(
        self,
        own: WindowSpec | None,
        inherited: WindowSpec | None,
        require: Sequence[str],
        loc: list[int | str],
    ) -> Window | None:
        """The rule's window (its own, else its topic's, as for ``require``)."""
        if own is not None and not require:
            self.error(
                "'require_within' has no effect without 'require' groups",
                [*loc, "require_within"],
                hint="add 'require: [group]' (here or on the topic) or remove it",
            )
        spec = own if own is not None else inherited
        return None if spec is None else Window(spec.before, spec.after)

    def _topic(self, n: int, spec: TopicSpec) -> Topic:
        loc: list[int | str] = ["topics", n]
        return Topic(
            spec.id,
            spec.title,
            spec.description,
            self._require(spec.require, [*loc, "require"]),
            self._clauses(spec.match, [*loc, "match"]),
            self._within(spec.require_within, None, spec.require, loc),
        )

    def _finding(self, n: int, spec: FindingSpec) -> Finding:
        loc: list[int | str] = ["findings", n]
        topic = next((t for t in self.doc.topics if t.id == spec.topic), None)
        if topic is None:
            self.error(
                f"finding {spec.id!r} names unknown topic {spec.topic!r}",
                [*loc, "topic"],
                hint=f"use one of {[t.id for t in self.doc.topics]}",
            )
        if not (spec.match.all or spec.match.any):
            self.error(
                f"finding {spec.id!r} has no 'all' or 'any' clauses, so it can never match",
                [*loc, "match"],
                hint="add at least one phrase under match.any",
            )
        require = spec.require if spec.require is not None else (topic.require if topic else [])
        inherited = topic.require_within if topic else None
        within = self._within(spec.require_within, inherited, require, loc)
        clauses = self._clauses(spec.match, [*loc, "match"])
        prefilter = Prefilter(
            tuple(trigger_of([c]) for c in clauses.all),
            trigger_of(clauses.any) if clauses.any else None,
        )
        return Finding(
            spec.id,
            spec.topic,
            spec.title,
            spec.description,
            self._require(require, [*loc, "require"]),
            frozenset(spec.fields),
            spec.min_score,
            clauses,
            prefilter,
            within,
        )

    def _check_ids(self) -> None:
        seen: dict[str, str] = {}
        for kind in ("topics", "findings", "sources"):
            for n, entry in enumerate(getattr(self.doc, kind)):
                ns = "source" if kind == "sources" else "follow"
                key = f"{ns}:{entry.id}"
                if key in seen:
                    self.error(
                        f"duplicate id {entry.id!r} (already used by a {seen[key]})",
                        [kind, n, "id"],
                        hint="ids must be unique; subscribers follow topics and findings by id",
                    )
                seen[key] = kind[:-1]

    def _disabled_sources(self) -> tuple[SourceSpec, ...]:
        """The ``enabled: false`` sources that are complete (for ``metwatch preview``).

        Not checked: a source kept disabled because it is unfinished must not stop
        the rules file from loading.
        """
        complete: list[SourceSpec] = []
        for entry in self.doc.sources:
            if not entry.enabled:
                errors = len(self.errors)
                spec = self._source(entry)
                if len(self.errors) == errors:
                    complete.append(spec)
                del self.errors[errors:]
        return tuple(complete)

    def _source(self, spec: SourceEntry) -> SourceSpec:
        url = spec.url
        if spec.kind == "search":
            if not spec.query or "{query}" not in url:
                self.error(
                    f"search source {spec.id!r} needs a 'query' and '{{query}}' in its url",
                    ["sources", self.doc.sources.index(spec)],
                )
            url = url.replace("{query}", quote_plus(spec.query or ""))
        where: list[int | str] = ["sources", self.doc.sources.index(spec)]
        if spec.kind == "page" and not spec.link_selector:
            self.error(
                f"page source {spec.id!r} needs a 'link_selector' (CSS) for article links", where
            )
        elif spec.kind != "page" and spec.link_selector:
            self.error(
                f"'link_selector' is only read for page sources, not {spec.kind!r} ones",
                [*where, "link_selector"], hint="remove it or set 'kind: page'",
            )  # fmt: skip
        elif spec.link_selector and (problem := selector_problem(spec.link_selector)):
            self.error(problem, [*where, "link_selector"])
        return SourceSpec(spec.id, spec.name, spec.kind, url, spec.interval, spec.link_selector)
