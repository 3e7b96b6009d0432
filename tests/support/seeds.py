"""The seed articles as a feed would bring them: one outlet, headline and link each."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML

from metwatch.models import PollOutcome, SourceSpec
from metwatch.pipeline import Pipeline
from watchers.article import article_from_text

SEEDS = Path(__file__).resolve().parents[2] / "seeds"
#: seeds/seeds.yaml: per seed its file, outlet, headline, date and findings.
META: list[dict[str, Any]] = YAML(typ="safe").load((SEEDS / "seeds.yaml").read_text())


def ingest_seed(pipeline: Pipeline, n: int, copy: str = "") -> PollOutcome:
    """Seed ``n`` through ``pipeline.ingest`` from its own source, linked at
    https://outlet<n><copy>.example/report and published at 06:00 + n hours on 15 August
    2024 (``copy`` tells copies of one seed apart: another source, another link)."""
    seed = META[n]
    spec = SourceSpec(f"seed-{n}{copy}", seed["outlet"], "feed", "file:", 3600)
    text = (SEEDS / seed["file"]).read_text(encoding="utf-8")
    entry = article_from_text(
        text, headline=seed["headline"], link=f"https://outlet{n}{copy}.example/report",
        published=datetime(2024, 8, 15, 6 + n, tzinfo=UTC),
    )  # fmt: skip
    return pipeline.ingest(spec, [entry])
