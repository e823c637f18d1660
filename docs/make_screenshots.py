"""Screenshots of the search page for the README: the sample corpus, served and photographed.

    python docs/make_screenshots.py [--chromium /usr/bin/chromium]

Indexes semsearch/sample/ into a temporary index, clusters it (with its map), starts
`semsearch serve` on a free loopback port and lets Playwright (driving the system's Chromium)
photograph a query's results and the clusters view into docs/.
"""

from __future__ import annotations

import argparse
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from playwright.sync_api import expect, sync_playwright

HERE = Path(__file__).parent


def semsearch(*args: str, **options) -> subprocess.Popen | None:
    command = [sys.executable, "-m", "semsearch", *args]
    if options.get("background"):
        return subprocess.Popen(command)
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
    return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chromium", default=shutil.which("chromium"))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        index = str(Path(folder) / "sample")
        semsearch("index", "--index", index, str(HERE.parent / "semsearch" / "sample"))
        semsearch("cluster", "--index", index, "-k", "4", "--plot", f"{folder}/map.png")
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        server = semsearch("serve", "--index", index, "--port", str(port), "--no-access-log",
                           background=True)
        url = f"http://127.0.0.1:{port}"
        try:
            for _ in range(600):
                try:
                    urllib.request.urlopen(f"{url}/health", timeout=1)
                    break
                except OSError:
                    time.sleep(0.2)
            with sync_playwright() as driver:
                browser = driver.chromium.launch(executable_path=args.chromium,
                                                 args=["--no-sandbox"])
                page = browser.new_page(viewport={"width": 1000, "height": 760})
                page.goto(url)
                page.fill("#q", "how long should bread rise")
                page.press("#q", "Enter")
                page.wait_for_selector("#status:has-text('hits')")
                page.screenshot(path=HERE / "search-page.png")
                page.click("#tab-clusters")
                expect(page.locator("#cluster-map")).to_have_js_property("complete", True)
                page.screenshot(path=HERE / "clusters-page.png", full_page=True)
                browser.close()
        finally:
            server.terminate()
            server.wait(timeout=30)
    print(f"wrote {HERE / 'search-page.png'} and {HERE / 'clusters-page.png'}")


if __name__ == "__main__":
    main()
