"""The search page in a real browser: Playwright drives the system's Chromium against
`semsearch serve` started from the command line (nothing is downloaded)."""

import os
import shutil
import subprocess
import sys
import urllib.request

import pytest

from conftest import XSS, free_port, wait_until_serving

playwright = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
CHROMIUM = os.environ.get("SEMSEARCH_CHROMIUM") or next(
    filter(None, map(shutil.which, ("chromium", "chromium-browser"))), None)
pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason="no Chromium found (apt install chromium, or set SEMSEARCH_CHROMIUM)")


@pytest.fixture(scope="module")
def server(site_index, tmp_path_factory):
    """`semsearch serve` on a copy of the site index, with a drawn cluster map."""
    path = tmp_path_factory.mktemp("served") / "site"
    shutil.copytree(site_index, path)
    subprocess.run([sys.executable, "-m", "semsearch", "clusters", "--index", str(path),
                    "--plot", str(path.parent / "map.png")], check=True, capture_output=True)
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "semsearch", "serve", "--index", str(path), "--port",
         str(port), "--no-access-log"], stderr=subprocess.PIPE, text=True)
    url = f"http://127.0.0.1:{port}"
    wait_until_serving(process, lambda: urllib.request.urlopen(f"{url}/health", timeout=1),
                       lambda: f"semsearch serve did not start: {process.stderr.read()}")
    yield url
    process.terminate()
    process.wait(timeout=30)


@pytest.fixture(scope="module")
def browser():
    with playwright.sync_playwright() as driver:
        browser = driver.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield browser
        browser.close()


@pytest.fixture
def page(browser, server):
    page = browser.new_page(viewport={"width": 1100, "height": 800})
    errors = []
    page.on("pageerror", lambda error: errors.append(error))
    page.goto(server)
    yield page
    page.close()
    assert not errors


def search(page, text: str) -> None:
    page.fill("#q", text)
    page.press("#q", "Enter")
    page.wait_for_selector("#status:has-text('hits')")


def test_query_shows_the_hit_highlighted_in_its_context(page, tmp_path):
    search(page, "bake the loaf in an oven")
    first = page.locator(".hit").first
    assert first.locator("mark").inner_text().startswith("Bake the loaf in a hot oven")
    assert first.locator(".title").inner_text() == "Baking bread"
    assert "Flour, water and yeast" in first.locator(".context").first.inner_text()
    assert "hybrid" in page.inner_text("#status")
    assert "q=bake" in page.url  # the search can be shared as a link
    page.screenshot(path=tmp_path / "results.png")
    assert (tmp_path / "results.png").stat().st_size > 10_000


def test_switching_mode_searches_again(page):
    search(page, "red planet")
    page.select_option("#mode", "keyword")
    page.wait_for_selector("#status:has-text('keyword')")
    hits = page.locator(".hit")
    assert hits.count() == 1  # only one sentence has these words
    assert hits.first.locator("mark").inner_text() == "Mars is called the red planet."
    assert "cosine" not in hits.first.locator(".scores").inner_text()


def test_document_markup_is_shown_as_text_never_run(page):
    search(page, "zebrafish markup")
    first = page.locator(".hit").first
    assert XSS in first.inner_text()
    assert first.locator(".title").inner_text() == "<b>Markup</b> title"
    assert page.locator("#results script, #results img, #results b").count() == 0
    assert page.evaluate("window.__xss") is None


def test_clusters_view_lists_clusters_with_the_map_and_searches_inside_one(page):
    page.click("#tab-clusters")
    page.wait_for_selector("tr.cluster")
    rows = page.locator("tr.cluster")
    assert rows.count() == 3
    assert all(rows.nth(i).locator("li").count() >= 1 for i in range(3))
    image = page.locator("#cluster-map")
    playwright.expect(image).to_have_js_property("complete", True)  # the CSP forbids eval()
    assert image.evaluate("img => img.naturalWidth") > 100
    rows.first.locator("button").click()
    assert page.is_visible("#search-view")
    assert page.input_value("#cluster").endswith(":0")
    search(page, "anything at all")
    assert page.locator(".hit").count() >= 1


def test_a_shared_link_restores_the_search_with_its_filters(page, server):
    page.goto(f"{server}/?q=planet+sleep+bread&mode=dense&k=5&where=topic%3Dspace")
    page.wait_for_selector("#status:has-text('hits')")
    assert page.input_value("#where") == "topic=space"
    assert page.input_value("#mode") == "dense"
    titles = page.locator(".hit .title").all_inner_texts()
    assert titles and set(titles) == {"The night sky"}
