"""``metwatch preview``, run as a real subprocess against the local feed server."""

from __future__ import annotations

from pathlib import Path

from tests.rules_for_tests import write_rules
from tests.support.feed_server import FeedServer
from tests.support.feeds import FeedItem, rss
from tests.test_cli import SEED_002, metwatch
from watchers.article import article_from_text

ARTICLE = """<html><head><title>Met inspection</title></head><body><article>
<h1>Met police warned sex offenders before visits</h1>
<p>Inspectors found that visits to registered sex offenders were announced in advance by the
Metropolitan Police, giving offenders time to hide evidence, according to the HMICFRS report
published on Thursday.</p>
<p>The report said one high-risk offender had not been visited since 2017, which the
inspectorate described as a serious failing in the way the force manages offenders.</p>
</article></body></html>"""
#: Teasers are the items with less text than this (the tests' default is 0: none).
TEASERS = {"METWATCH_FULLTEXT_MIN_CHARS": "300"}


def test_a_source_is_shown_with_identity_and_evidence_and_nothing_is_stored(
    tmp_path: Path, feed_server: FeedServer
) -> None:
    seed = article_from_text(SEED_002.read_text(encoding="utf-8"))
    flagged = FeedItem(title=seed.title, link="https://news.example.com/met-1", guid="met-1",
                       content=seed.content)  # fmt: skip
    teaser = FeedItem(title="Met chief answers inspectors", link=feed_server.url("/articles/2"),
                      description="The commissioner replied on Friday.")  # fmt: skip
    feed_server.serve("/feed.xml", rss([flagged, teaser, flagged]), etag='"v1"')
    rules = write_rules(
        tmp_path, [{"id": "local", "name": "Local", "url": feed_server.url("/feed.xml")}]
    )

    result = metwatch("preview", "local", cwd=tmp_path, METWATCH_RULES_PATH=str(rules), **TEASERS)

    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert f"local  Local  {feed_server.url('/feed.xml')}  (feed)" in out
    assert "fetched: HTTP 200, application/rss+xml" in out
    assert "3 entries: 2 items (1 repeated within the body, kept once)" in out
    assert "identity: guid" in out and "identity: link" in out
    assert "FLAGGED finding iic-nfa-rate" in out
    evidence = out[out.index("FLAGGED finding iic-nfa-rate") :].splitlines()[1]
    assert "60 per cent" in evidence
    assert "teaser only: its article page is fetched when polled (--full-text: now)" in out
    assert out.rstrip().endswith("1 teaser-only. Nothing was stored or sent.")
    # One unconditional fetch of the feed, no article page, and no database.
    [request] = feed_server.requests("/feed.xml")
    assert "if-none-match" not in request.headers
    assert feed_server.requests("/articles/2") == []
    assert list(tmp_path.glob("*.db*")) == []
    flagged_only = metwatch("preview", "local", "--flagged", cwd=tmp_path,
                            METWATCH_RULES_PATH=str(rules), **TEASERS)  # fmt: skip
    assert "Met chief answers" not in flagged_only.stdout and "iic-nfa-rate" in flagged_only.stdout


def test_a_page_url_with_a_selector_and_full_text(tmp_path: Path, feed_server: FeedServer) -> None:
    listing = ('<html><body><ul><li><a href="/press/1">Met police warned offenders</a></li>'
               '<li><a href="/press/2">Other news</a></li></ul></body></html>')  # fmt: skip
    feed_server.serve("/press", listing, content_type="text/html")
    feed_server.serve("/press/1", ARTICLE, content_type="text/html; charset=utf-8")
    feed_server.serve("/press/2", "gone", status=404)
    url = feed_server.url("/press")

    needs_selector = metwatch("preview", url, "--kind", "page", cwd=tmp_path)
    assert needs_selector.returncode == 2 and "give --link-selector" in needs_selector.stderr

    result = metwatch(
        "preview", url, "--kind", "page", "--link-selector", "li a", "--full-text",
        cwd=tmp_path, METWATCH_ALLOW_PRIVATE_ADDRESSES="true", **TEASERS,
    )  # fmt: skip

    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "2 entries: 2 items" in out
    first, second = out.split(f"{feed_server.url('/press/2')}\n")
    assert "full text from its article page:" in first
    assert "FLAGGED finding announced-visits" in first
    assert "FLAGGED finding unvisited-since-2017" in first
    assert "teaser only: no full text (HTTP 404)" in second
    assert "1 of 2 items flagged" in out
    # As a poll does: the site's robots.txt is read before its article pages.
    assert feed_server.requests("/robots.txt")


def test_failures_say_why_and_exit_1(tmp_path: Path, feed_server: FeedServer) -> None:
    head = '<link rel="alternate" type="application/rss+xml" href="/news/rss.xml">'
    feed_server.serve("/news/", f"<html><head>{head}</head><body>News</body></html>",
                      content_type="text/html")  # fmt: skip
    feed_server.serve("/missing.xml", "no", status=404)

    page = metwatch("preview", feed_server.url("/news/"), cwd=tmp_path)
    assert page.returncode == 1
    assert (f"failed: not a feed: got text/html; the page names its feed: "
            f"{feed_server.url('/news/rss.xml')}") in page.stderr  # fmt: skip

    missing = metwatch("preview", feed_server.url("/missing.xml"), cwd=tmp_path)
    assert missing.returncode == 1 and "failed: HTTP 404" in missing.stderr

    unknown = metwatch("preview", "no-such-source", cwd=tmp_path)
    assert unknown.returncode == 2
    assert "'no-such-source' is neither a source id of" in unknown.stderr
    assert "bbc-london" in unknown.stderr  # the enabled ones are listed


def test_feed_text_cannot_drive_the_terminal(tmp_path: Path, feed_server: FeedServer) -> None:
    # XML cannot carry ESC, but a page's HTML can; a feed can carry a direction override.
    listing = (
        '<html><body><a class="s" href="/p/1">Met\x1b[2J\x1b]0;owned\x07 report</a></body></html>'
    )
    feed_server.serve("/press", listing, content_type="text/html")
    feed_server.serve("/feed.xml", rss([FeedItem(title="Met \u202egpj.exe", guid="1",
                                                 link="https://news.example.com/1")]))  # fmt: skip

    page = metwatch("preview", feed_server.url("/press"), "--kind", "page",
                    "--link-selector", "a.s", cwd=tmp_path)  # fmt: skip
    feed = metwatch("preview", feed_server.url("/feed.xml"), cwd=tmp_path)

    assert page.returncode == 0 and feed.returncode == 0, page.stderr + feed.stderr
    assert "Met\\x1b[2J\\x1b]0;owned\\x07 report" in page.stdout
    assert "Met \\u202egpj.exe" in feed.stdout
    assert not any(c in page.stdout + feed.stdout for c in "\x1b\x07\u202e")


def test_repeats_disabled_sources_and_private_article_pages(
    tmp_path: Path, feed_server: FeedServer
) -> None:
    teaser = FeedItem(title="Met chief answers inspectors", guid="t-1",
                      link=feed_server.url("/articles/2"), description="Short.")  # fmt: skip
    # The same article under a second GUID: a poll keeps one item per link.
    again = FeedItem(title="Met chief answers inspectors (updated)", guid="t-2",
                     link=feed_server.url("/articles/2"), description="Short.")  # fmt: skip
    feed_server.serve("/feed.xml", rss([teaser, again]))
    feed_server.serve("/articles/2", ARTICLE, content_type="text/html")
    rules = write_rules(tmp_path, [
        {"id": "live", "name": "Live", "url": feed_server.url("/other.xml")},
        {"id": "paused", "name": "Paused", "url": feed_server.url("/feed.xml"), "enabled": False},
    ])  # fmt: skip

    result = metwatch("preview", "paused", "--full-text", cwd=tmp_path,
                      METWATCH_RULES_PATH=str(rules), **TEASERS)  # fmt: skip

    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert out.startswith(f"paused is disabled in {rules}: shown here, not polled\n")
    assert "2 entries: 1 item (1 repeated within the body, kept once)" in out
    assert "(updated)" not in out
    # Article pages on private or loopback addresses are refused unless allowed.
    assert "teaser only: no full text (refused: " in out and "a loopback address" in out
    assert feed_server.requests("/articles/2") == []
