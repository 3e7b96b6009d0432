"""Canonical links: how the same article is recognised across feeds and tracking."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import update

from bot.render import render_story
from classifiers.rules import RuleSet
from metwatch.models import RawEntry, SourceSpec, Story, StoryLink
from metwatch.pipeline import Pipeline
from metwatch.store import open_store
from metwatch.store.tables import ItemRow
from tests.support.bot_api import parse_html
from tests.support.feeds import FeedItem, rss
from tests.support.seeds import SEEDS
from watchers.fastparse import read_feed
from watchers.normalise import canonical_url, normalise, shown_link

NOW = datetime(2024, 8, 15, 12, 0, tzinfo=UTC)
SPEC = SourceSpec("feed", "Feed", "feed", "file:", 300)
HEADLINE = "Met police inadequate at managing sex offenders"
BODY = (SEEDS / "001_eb7dfda9019dc2e2.txt").read_text(encoding="utf-8")


@pytest.mark.parametrize(
    ("link", "canonical"),
    [
        ("HTTPS://News.Example.COM/a?utm_source=x&id=3&fbclid=y#top",
         "https://news.example.com/a?id=3"),
        ("https://news.example.com/a?gclid=1&utm_medium=rss", "https://news.example.com/a"),
        ("https://amp.example.com/news/a/amp", "https://example.com/news/a"),
        ("https://news.example.com/news/a.amp.html", "https://news.example.com/news/a.html"),
        ("http://news.example.com:80/a", "http://news.example.com/a"),
        ("https://news.example.com:8443/a", "https://news.example.com:8443/a"),
        ("http://[2001:DB8::1]/a", "http://[2001:db8::1]/a"),
        ("http://[2001:db8::1]:8080/a", "http://[2001:db8::1]:8080/a"),
        ("https://news.example.com", "https://news.example.com/"),
    ],
)  # fmt: skip
def test_canonical_url(link: str, canonical: str) -> None:
    assert canonical_url(link) == canonical
    assert canonical_url(canonical) == canonical  # canonical already: unchanged


@pytest.mark.parametrize(
    ("link", "shown"),
    [
        # A valueless parameter and the encoding stay as published (the canonical
        # link would read "?12345=" and "q=a+b"); tracking and the fragment go.
        ("https://news.example.com/article.php?12345&utm_source=rss#comments",
         "https://news.example.com/article.php?12345"),
        ("https://news.example.com/search?q=a%20b&fbclid=x&UTM_Medium=y",
         "https://news.example.com/search?q=a%20b"),
        ("https://amp.example.com/news/a/amp", "https://amp.example.com/news/a/amp"),
        ("https://news.example.com/a?utm_source=x", "https://news.example.com/a"),
        ("https://news.example.com/a?utm%5Fsource=x&id=3", "https://news.example.com/a?id=3"),
        # What a URL cannot hold is percent-encoded; a host behind user info is shown bare.
        ("https://news.example.com/search?q=storm warning&utm_source=rss",
         "https://news.example.com/search?q=storm%20warning"),
        ("https://news.example.com/новости?x=é", "https://news.example.com/"
         "%D0%BD%D0%BE%D0%B2%D0%BE%D1%81%D1%82%D0%B8?x=%C3%A9"),
        ("https://bbc.co.uk@evil.example/a", "https://evil.example/a"),
    ],
)  # fmt: skip
def test_subscribers_are_shown_the_link_as_published_less_tracking(link: str, shown: str) -> None:
    assert shown_link(link) == shown


def test_a_story_links_to_the_article_as_published(db_url: str, rules: RuleSet) -> None:
    """The canonical link identifies the article; the story links to the link as the
    outlet published it (less tracking). An item stored before links were kept
    shows its canonical link."""
    store = open_store(db_url)
    pipeline = Pipeline(store, None, rules, clock=lambda: NOW)  # type: ignore[arg-type]
    published = "https://news.example.com/article.php?12345&utm_source=rss"
    pipeline.ingest(SPEC, [RawEntry("a", published, HEADLINE, "", BODY, NOW)])

    [story] = store.recent_stories(10)
    assert [link.url for link in story.links] == ["https://news.example.com/article.php?12345"]
    assert 'href="https://news.example.com/article.php?12345"' in render_story(story)
    [item] = store.iter_items()
    assert item.url == canonical_url(published) == "https://news.example.com/article.php?12345="

    with store.engine.begin() as c:  # as a row stored before links were kept
        c.execute(update(ItemRow).values(link=None))
    [story] = store.recent_stories(10)
    assert [link.url for link in story.links] == [item.url]


@pytest.mark.parametrize(
    "link",
    ["https://news.example.com/search?q=storm warning&utm_source=rss",
     "https://news.example.com/a?id=1&title=Met Office"],
)  # fmt: skip
def test_a_published_link_with_a_space_reaches_the_chat_as_a_link(link: str) -> None:
    """Telegram drops a link whose URL holds whitespace (the emulator's parser, as
    Telegram's): the story's links must be encoded to stay links."""
    body = rss([FeedItem(title="Storm", link=link, guid="g1")])
    parsed, _ = read_feed("reference", body.encode() if isinstance(body, str) else body,
                          SPEC.url)  # fmt: skip
    item = normalise(parsed.entries[0], SPEC, NOW)
    story = Story(1, "Storm", (), (StoryLink(item.id, "Outlet", "Storm", item.shown_link, NOW),),
                  (), NOW, 1)  # fmt: skip
    _, entities = parse_html(render_story(story))
    assert len([e for e in entities if e["type"] == "text_link"]) == 2  # outlet, "Read"


def test_a_link_of_another_scheme_is_not_made_a_link() -> None:
    story = Story(1, "Storm", (), (StoryLink("i", "Outlet", "Storm", "javascript:alert(1)", NOW),),
                  (), NOW, 1)  # fmt: skip
    html = render_story(story)
    assert "javascript:" not in html
