"""The compact page view (tabrelay.pageview): text, controls with selectors, form values, size."""

from __future__ import annotations

from tabrelay.pageview import VIEW_MAX_CHARS, VIEW_MIN_CHARS, page_view

from bench.pages import html_page


def test_given_page_when_viewed_then_headings_text_and_controls_in_document_order() -> None:
    html = """<!doctype html><html><head><title>T</title><style>p{color:red}</style></head>
    <body><h1>Shop</h1><p>Pick   something
    nice.</p><button id="go">Search</button><script>var x = "not text";</script>
    <h2>More</h2><a href="/next">Next page</a></body></html>"""
    assert page_view(html).splitlines() == [
        "# Shop",
        "Pick something nice.",
        "[button #go] Search",
        "## More",
        "[a html>body>a -> /next] Next page",
    ]


def test_given_controls_without_ids_when_viewed_then_selectors_are_unique_attributes_or_paths() -> (
    None
):
    html = """<html><body>
    <form><input name="q"><input name="q"><input placeholder="Email"></form>
    <div id="card"><a href="/a">A</a><a href="/b">B</a></div>
    <table><tr><td><button>Row</button></td></tr></table>
    <div id="dup"></div><div id="dup"><button>Dup</button></div>
    <button id="has space">Odd id</button>
    </body></html>"""
    lines = page_view(html).splitlines()
    assert lines == [
        # name= is not unique: a path; placeholder is
        "[input html>body>form>input:nth-of-type(1) type=text] q",
        "[input html>body>form>input:nth-of-type(2) type=text] q",
        '[input input[placeholder="Email"] type=text] Email',
        "[a #card>a:nth-of-type(1) -> /a] A",
        "[a #card>a:nth-of-type(2) -> /b] B",
        # rows sit in a tbody in the DOM, as the browser's querySelector sees it
        "[button html>body>table>tbody>tr>td>button] Row",
        # a duplicated id is no anchor
        "[button html>body>div:nth-of-type(3)>button] Dup",
        '[button [id="has space"]] Odd id',
    ]


def test_given_form_state_when_viewed_then_values_shown_but_never_passwords() -> None:
    html = """<body>
    <input id="n" value="Ada"><input id="pw" type="password" value="secret">
    <input id="c" type="checkbox" checked><input id="r" type="radio" value="x">
    <select id="s" name="size"><option value="s">Small</option>
      <option value="m" selected>Medium</option></select>
    <textarea id="t">Hello
      there</textarea><input type="hidden" name="csrf" value="zzz">
    <button id="b" disabled>Send</button></body>"""
    lines = page_view(html).splitlines()
    assert lines == [
        '[input #n type=text value="Ada"]',
        "[input #pw type=password]",
        "[input #c type=checkbox checked]",
        '[input #r type=radio unchecked value="x"]',
        '[select #s value="m"] size options: s, m',
        '[textarea #t value="Hello there"]',
        "[button #b disabled] Send",
    ]
    assert "secret" not in page_view(html) and "zzz" not in page_view(html)


def test_given_hidden_elements_when_viewed_then_left_out() -> None:
    html = """<body><p>shown</p><p hidden>gone1</p><div style="display: none">gone2</div>
    <span aria-hidden="true">gone3</span><template><p>gone4</p></template>
    <noscript>gone5</noscript></body>"""
    assert page_view(html) == "shown"


def test_given_image_only_link_when_viewed_then_labelled_by_alt() -> None:
    html = '<body><a id="logo" href="/"><img src="l.png" alt="Home"></a></body>'
    assert page_view(html) == "[a #logo -> /] Home"


def test_given_broken_html_when_viewed_then_no_error() -> None:
    html = "<div><p>one<p>two</span></div></div><b>three<li>four"
    assert page_view(html).splitlines() == ["one", "two", "three", "four"]


def test_given_generated_shop_pages_when_viewed_then_about_a_tenth_of_the_html() -> None:
    for size in (100_000, 300_000):
        html = html_page(size)
        view = page_view(html, max_chars=10**9)
        assert 0.05 <= len(view) / len(html) <= 0.13, size
        # every product's link and button keeps its selector
        assert view.count("[button #p-") == html.count('data-action="add"')


def test_given_small_page_when_viewed_then_text_is_not_shortened() -> None:
    words = " ".join(["word"] * 400)  # one long text line, far over a tenth of the page
    view = page_view(f"<body><p>{words}</p></body>")
    assert view == words and len(view) <= VIEW_MIN_CHARS


def test_given_huge_page_when_viewed_then_cut_at_max_chars_and_says_so() -> None:
    html = "<body>" + "".join(f'<button id="b{i}">Button {i}</button>' for i in range(5000))
    view = page_view(html)
    assert len(view) <= VIEW_MAX_CHARS
    assert view.endswith("characters]") and "[view truncated at 40,000 of " in view
    assert page_view(html, max_chars=100).count("\n") <= 3
