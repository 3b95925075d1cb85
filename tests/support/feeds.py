"""Build small RSS feeds for tests."""

from __future__ import annotations


def rss(items: list[str], title: str = "Test show") -> bytes:
    """A small RSS 2.0 feed around ``items`` (each an ``<item>…</item>`` string)."""
    body = "\n".join(items)
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        '<rss version="2.0" xmlns:podcast="https://podcastindex.org/namespace/1.0">'
        f"<channel><title>{title}</title><link>https://example.invalid/</link>"
        f"<description>test</description>{body}</channel></rss>"
    ).encode()


def item(
    guid: str,
    title: str,
    url: str | None,
    mime: str = "audio/mpeg",
    extra: str = "",
    date: str = "Mon, 02 Nov 2026 10:00:00 GMT",
) -> str:
    enclosure = f'<enclosure url="{url}" type="{mime}" length="0"/>' if url else ""
    return (
        f"<item><title>{title}</title><guid>{guid}</guid><pubDate>{date}</pubDate>"
        f"{enclosure}{extra}</item>"
    )
