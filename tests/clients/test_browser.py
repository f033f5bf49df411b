"""Real headless Chromium plays the service's streams: MSE (fmp4, webm) and <audio src> (mp3).

The pages are served by the test on a port of their own, so the audio comes cross-origin from
the service, as it does for a web app (CORS). Needs Chromium and ChromeDriver (`make test`
installs Debian's chromium and chromium-driver when they are missing).
"""

from __future__ import annotations

import functools
import http.server
import shutil
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By

from tests.support.server import API_KEY, Server

PAGES = Path(__file__).parent / "browser"
# The specification's MSE example, verbatim (its URL and key are replaced at test time).
SPEC_EXAMPLE = PAGES / "spec_mse_example.html"
TOKENS = 100  # 4 s of audio
SECONDS = TOKENS * 0.04


def browser_binary() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        if path := shutil.which(name):
            return path
    pytest.fail("Chromium is not installed: run `make test`, which installs it")


@pytest.fixture(scope="module")
def pages(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """A static file server for the test pages: (its URL, its directory)."""
    root = tmp_path_factory.mktemp("pages")
    shutil.copytree(PAGES, root, dirs_exist_ok=True)
    handler = functools.partial(QuietHandler, directory=str(root))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}", root
    httpd.shutdown()


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def browser() -> Iterator[webdriver.Chrome]:
    options = webdriver.ChromeOptions()
    options.binary_location = browser_binary()
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic",
                 "--no-first-run", "--disable-background-networking", "--disable-sync",
                 "--disable-component-update", "--autoplay-policy=no-user-gesture-required",
                 "--disable-dev-shm-usage"):  # fmt: skip
        options.add_argument(flag)
    driver_path = shutil.which("chromedriver") or "/usr/bin/chromedriver"
    driver = webdriver.Chrome(options=options, service=Service(executable_path=driver_path))
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture(autouse=True)
def idle(server: Server) -> None:
    server.wait_idle()


def tts_url(server: Server, audio_format: str) -> str:
    query = {"text": "Playing in a browser.", "seed": 3, "fixed_token_count": TOKENS,
             "format": audio_format, "api_key": API_KEY}  # fmt: skip
    return f"{server.url}/tts/generate?{urlencode(query)}"


def wait_for(browser: webdriver.Chrome, script: str, timeout: float = 120) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if (value := browser.execute_script(script)) is not None:
            return value
        time.sleep(0.1)
    raise TimeoutError(f"no answer from the page to {script!r}")


@pytest.mark.parametrize(
    ("audio_format", "mime"),
    [("fmp4", 'audio/mp4; codecs="mp4a.40.2"'), ("webm", 'audio/webm; codecs="opus"')],
)
def test_mse_buffers_the_whole_stream_and_plays_it(
    server: Server, pages: tuple[str, Path], browser: webdriver.Chrome, audio_format: str,
    mime: str,
) -> None:  # fmt: skip
    browser.get(f"{pages[0]}/mse_player.html")
    assert browser.execute_script("return MediaSource.isTypeSupported(arguments[0])", mime)
    browser.execute_script(
        "window.run(arguments[0], arguments[1])", tts_url(server, audio_format), mime
    )
    result = wait_for(browser, "return window.result")
    assert result.get("error") is None, result
    assert result["appended"] > 1  # it arrived in pieces and was appended as it came
    assert result["ranges"] == 1  # one continuous buffered range, no holes
    assert abs(result["buffered"] - SECONDS) < 0.05, result
    assert result["advanced"] > 0.5, result  # playback time moves


def test_an_audio_element_plays_mp3_from_a_url(
    server: Server, pages: tuple[str, Path], browser: webdriver.Chrome
) -> None:
    browser.get(f"{pages[0]}/mse_player.html")
    script = """
        const audio = new Audio(arguments[0]);
        window.result = null;
        audio.play().then(() => setTimeout(() => {
            window.result = {time: audio.currentTime, error: audio.error && audio.error.message};
        }, 1500), (e) => { window.result = {error: String(e)}; });
    """
    browser.execute_script(script, tts_url(server, "mp3"))
    result = wait_for(browser, "return window.result")
    assert result.get("error") is None and result["time"] > 0.5, result


def test_the_specifications_mse_example_plays_unchanged(
    server: Server, pages: tuple[str, Path], browser: webdriver.Chrome
) -> None:
    page = SPEC_EXAMPLE.read_text().replace("http://localhost:8000", server.url)
    page = page.replace("YOUR_API_KEY", API_KEY)
    (pages[1] / "spec_example.html").write_text(page)
    browser.get(f"{pages[0]}/spec_example.html")
    browser.find_element(By.ID, "playButton").click()
    player = "document.getElementById('audioPlayer')"
    wait_for(browser, f"return {player}.currentTime > 0.5 ? true : null", timeout=120)
    buffered = wait_for(browser, f"""
        const p = {player};
        return p.buffered.length && p.buffered.end(0) > {SECONDS * 0.5} ? p.buffered.end(0) : null;
    """)  # fmt: skip
    assert buffered > SECONDS * 0.5
