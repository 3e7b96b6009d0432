"""The shape of the watch rules file: what each key may hold. Pure (pydantic).

Strict: unknown keys are errors. ``classifiers.rules`` loads a file against
``RulesDocument``, turns validation errors into positioned ``RulesError``s and
compiles the result.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator

Id = str
FieldName = Literal["title", "summary", "body"]
_ALL_FIELDS: tuple[FieldName, ...] = ("title", "summary", "body")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SynonymGroup(_Strict):
    any: list[str] = Field(min_length=1)
    #: Phrases that look like a member but are not (e.g. "Met Office" for the Met).
    not_: list[str] = Field(default_factory=list, alias="except")


class ClauseSet(_Strict):
    all: list[str | dict[Literal["re"], str]] = Field(default_factory=list)
    any: list[str | dict[Literal["re"], str]] = Field(default_factory=list)
    none: list[str | dict[Literal["re"], str]] = Field(default_factory=list)


def _reach(value: Any) -> Any:
    # bool is an int to Python; `require_within: true` is a mistake, not 1 word.
    if value == "sentence" or (type(value) is not bool and isinstance(value, int) and value >= 0):
        return value
    raise ValueError(f"{value!r} is neither a number of words (0 or more) nor 'sentence'")


#: How far from a match required context may be: a number of words, or "sentence".
Reach = Annotated[int | str, BeforeValidator(_reach)]


class WindowSpec(_Strict):
    before: Reach
    after: Reach


def _window(value: Any) -> Any:
    """``require_within: 40`` is short for ``{before: 40, after: 40}``."""
    if value is None or isinstance(value, dict):
        return value
    reach = _reach(value)  # one error for one bad scalar, not one per side
    return {"before": reach, "after": reach}


WithinSpec = Annotated[WindowSpec | None, BeforeValidator(_window)]


class TopicSpec(_Strict):
    id: Id = Field(pattern=r"^[a-z0-9][a-z0-9-]{0,39}$")
    title: str = Field(min_length=1)
    description: str = ""
    require: list[Id] = Field(default_factory=list)
    require_within: WithinSpec = None
    match: ClauseSet = Field(default_factory=ClauseSet)


class FindingSpec(_Strict):
    id: Id = Field(pattern=r"^[a-z0-9][a-z0-9-]{0,39}$")
    topic: Id
    title: str = Field(min_length=1)
    description: str = Field(min_length=1)
    require: list[Id] | None = None
    require_within: WithinSpec = None
    fields: list[FieldName] = Field(default_factory=lambda: list(_ALL_FIELDS))
    min_score: float = 1.0
    match: ClauseSet


class SourceEntry(_Strict):
    id: Id = Field(pattern=r"^[a-z0-9][a-z0-9-]{0,59}$")
    name: str = Field(min_length=1)
    kind: Literal["feed", "search", "page", "sitemap"] = "feed"
    url: str = Field(pattern=r"^https?://")
    query: str | None = None
    link_selector: str | None = None
    interval: int = Field(default=900, ge=5, le=7 * 86400)
    enabled: bool = True


class RulesDocument(_Strict):
    version: Literal[1] = 1
    synonyms: dict[Id, list[str] | SynonymGroup] = Field(default_factory=dict)
    topics: list[TopicSpec] = Field(min_length=1)
    findings: list[FindingSpec] = Field(default_factory=list)
    sources: list[SourceEntry] = Field(default_factory=list)

    @field_validator("synonyms")
    @classmethod
    def _non_empty_groups(cls, value: dict[Id, Any]) -> dict[Id, Any]:
        for name, group in value.items():
            if isinstance(group, list) and not group:
                raise ValueError(f"synonym group {name!r} is empty: list at least one phrase")
        return value
