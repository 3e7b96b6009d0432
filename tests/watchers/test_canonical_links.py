"""Canonical links: how the same article is recognised across feeds and tracking."""

from __future__ import annotations

import pytest

from watchers.normalise import canonical_url


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
