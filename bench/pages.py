"""Realistic HTML pages and the snapshot frames a browser sends for them.

Real pages compress 4-8x with gzip because they mix repeated markup with
varied text, URLs, ids and numbers. :func:`html_page` builds such a page from a
seeded generator (a product listing: head, navigation, cards, JSON-LD, inline
script), so the cost model sees what gzip does to real markup, not to a
repeated string.
"""

from __future__ import annotations

import gzip
import random
import string

from tabrelay import core, wire

__all__ = ["FRAME_BUDGET", "gzip_ratio", "html_page", "snapshot_frames"]

# A browser sends each message as one frame of at most 32 KB; the clients keep
# each JSON message within 30,000 bytes (docs/protocol.md).
FRAME_BUDGET = core.DEFAULT_FRAME_BUDGET

_WORD_TEXT = (
    "account add all amazing apply available back bag basket battery best black blue "
    "book brand buy camera care cart cash charger classic clear coffee color compare "
    "cotton customer deal delivery design desk details digital discount easy edition "
    "electric everyday express fast featured free fresh garden gift glass green guide "
    "headphones help home in kitchen laptop large leather light limited lunch medium "
    "modern more new now of offer only order organic original outdoor pack premium "
    "price pro quality quick rated red return review sale save search season select "
    "ship shoes size sleep small smart sport stainless standard steel stock store "
    "style summer support table the today top travel ultra use value warranty water "
    "white wireless with wood your"
)
_WORDS = tuple(_WORD_TEXT.split())
_CLASS_TEXT = (
    "card product-card grid col row flex item title price badge rating btn btn-primary "
    "nav-link muted small lead container header footer media thumb sr-only"
)
_CLASSES = tuple(_CLASS_TEXT.split())


def _text(rng: random.Random, low: int, high: int) -> str:
    return " ".join(rng.choice(_WORDS) for _ in range(rng.randint(low, high)))


def _token(rng: random.Random, n: int) -> str:
    return "".join(rng.choice(string.ascii_lowercase + string.digits) for _ in range(n))


def _card(rng: random.Random, i: int) -> str:
    sku = _token(rng, 10).upper()
    title = _text(rng, 4, 12).capitalize()
    price = f"{rng.randint(3, 999)}.{rng.randint(0, 99):02d}"
    classes = " ".join(rng.sample(_CLASSES, 3))
    stars = rng.randint(1, 5)
    return (
        # Real listings wrap every card in the same utility-class scaffolding.
        '<div class="s-result-item s-asin sg-col-4-of-12 sg-col-4-of-16 sg-col s-widget-spacing-small">'
        '<div class="sg-col-inner"><div class="s-card-container s-overflow-hidden aok-relative">'
        f'<div class="{classes}" data-sku="{sku}" data-pos="{i}" id="p-{_token(rng, 8)}">'
        f'<a href="/dp/{sku}/ref=sr_1_{i}?qid={rng.randint(10**9, 10**10)}&amp;s={_token(rng, 6)}">'
        f'<img src="https://img.example-cdn.com/i/{_token(rng, 24)}.jpg" alt="{title}" '
        f'width="{rng.choice((160, 200, 240))}" height="{rng.choice((160, 200, 240))}" loading="lazy">'
        f'<h3 class="title">{title}</h3></a>'
        f'<div class="rating" aria-label="{stars} of 5 stars">{"★" * stars}{"☆" * (5 - stars)} '
        f"<span>({rng.randint(0, 25000):,})</span></div>"
        f'<p class="muted small">{_text(rng, 8, 30)}</p>'
        f'<span class="price" data-currency="USD">${price}</span>'
        f'<button class="btn btn-primary" data-action="add" data-id="{sku}">Add to cart</button>'
        "</div></div></div></div>\n"
    )


def html_page(size: int, seed: int = 7) -> str:
    """A product-listing page of exactly ``size`` characters (ASCII-ish, seeded).

    Deterministic for a given ``seed``, so every run prices the same bytes.
    """
    rng = random.Random(seed)
    head = (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        f"<title>{_text(rng, 3, 6).title()} | Example Store</title>"
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        + "".join(
            f'<link rel="stylesheet" href="/static/css/{_token(rng, 12)}.css">' for _ in range(4)
        )
        + '</head><body><header class="header"><nav>'
        + "".join(
            f'<a class="nav-link" href="/c/{w}">{w.title()}</a>' for w in rng.sample(_WORDS, 12)
        )
        + '</nav><form action="/s"><input name="k" placeholder="Search"></form></header>'
        '<main class="container"><div class="grid">\n'
    )
    tail = (
        '</div></main><footer class="footer"><p>'
        + _text(rng, 20, 40)
        + "</p></footer></body></html>"
    )
    body: list[str] = []
    length = len(head) + len(tail)
    i = 0
    while length < size:
        if i % 9 == 8:
            # Pages carry JSON state and scripts with ids that do not repeat.
            chunk = (
                '<script type="application/ld+json">{"@type":"Product","sku":"'
                + _token(rng, 10)
                + '","offers":{"price":"'
                + f"{rng.random() * 500:.2f}"
                + '","availability":"InStock"},"tracking":"'
                + _token(rng, 40)
                + '"}</script>\n'
            )
        else:
            chunk = _card(rng, i)
        body.append(chunk)
        length += len(chunk)
        i += 1
    page = head + "".join(body)
    return page[: size - len(tail)] + tail


def gzip_ratio(html: str) -> float:
    """Uncompressed UTF-8 bytes over gzip bytes."""
    raw = html.encode()
    return len(raw) / len(gzip.compress(raw))


def snapshot_frames(
    html: str, *, sid: str, seq: int, compress: bool = True, url: str = "https://shop.example/s"
) -> list[str]:
    """The JSON frames a browser sends for one snapshot (protocol v1).

    ``compress=True``: exactly what the bundled client sends by default
    (:func:`tabrelay.core.snapshot_frames`: plain when the page fits one
    30,000-byte frame, else gzip, base64 and parts). ``compress=False``: one
    frame with the HTML as it is, whatever its size (what a naive client sends;
    over 32 KB a real browser could not even send it as one frame).
    """
    if compress:
        return core.snapshot_frames(html, sid=sid, seq=seq, url=url, title="Example")
    return [wire.encode(wire.Snapshot(sid=sid, seq=seq, data=html, url=url, title="Example"))]
