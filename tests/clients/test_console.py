"""The web console (``/``, app/static) in real headless Chromium, driven by Playwright, against
the real service on the tiny checkpoint: loading, the key, voices (file, microphone, delete),
playback through Media Source Extensions and through ``<audio src>``, voice conversion (a file or
the microphone as the source), errors in words, the keyboard and a phone-sized screen.

Screenshots (``console.png``, ``console-phone.png``) go to ``TEST_ARTIFACTS_DIR``, by default
``.cache/test-artifacts/``. Needs Debian's ``chromium`` (``make test`` installs it).
"""

from __future__ import annotations

import io
import json
import os
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import numpy as np
import pytest
from playwright.sync_api import Browser, ConsoleMessage, Page, Route, expect, sync_playwright

from tests.support.audio_files import write_audio
from tests.support.server import API_KEY, REPO, Server
from worker.engine.model.random_checkpoint import reference_clip

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = Path(os.environ.get("TEST_ARTIFACTS_DIR") or REPO / ".cache" / "test-artifacts")
TOKENS = 75  # 3 s of audio per play: enough to see playback advance, quick on the CPU
BOUNDED = json.dumps({"fixed_token_count": TOKENS})
VOICE = "console-voice.wav"
WAIT_MS = 60_000
FAILED_LOAD = "Failed to load resource"  # Chromium's own line for a refused request


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not CHROMIUM.exists():
        pytest.fail("Chromium is not installed: run `make test`, which installs it")
    args = ["--no-sandbox", "--autoplay-policy=no-user-gesture-required",
            "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
            "--disable-dev-shm-usage"]  # fmt: skip
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=args)
        try:
            yield browser
        finally:
            browser.close()


@dataclass
class Console:
    """The console in a fresh browser context (empty localStorage), with what it logged."""

    page: Page
    errors: list[str] = field(default_factory=list)

    def on_console(self, message: ConsoleMessage) -> None:
        if message.type == "error":
            self.errors.append(message.text)

    def set_key(self, key: str = API_KEY) -> None:
        self.page.fill("#api-key", key)
        self.page.keyboard.press("Enter")

    def unexpected_errors(self) -> list[str]:
        """Everything logged except the browser's own line for a request the server refused."""
        return [e for e in self.errors if not e.startswith(FAILED_LOAD)]

    def current_time(self, player: str = "player") -> float:
        return float(self.page.evaluate(f"document.getElementById('{player}').currentTime"))

    def wait_for_playback(self, seconds: float = 0.5, player: str = "player") -> float:
        """Wait until the player's time passes ``seconds``. (Polled from here: the page's
        Content-Security-Policy forbids the eval that ``wait_for_function`` relies on.)"""
        deadline = time.monotonic() + WAIT_MS / 1000
        while (position := self.current_time(player)) <= seconds:
            assert time.monotonic() < deadline, f"playback stuck at {position} s"
            self.page.wait_for_timeout(100)
        return position


def open_console(browser: Browser, server: Server, **context: object) -> Iterator[Console]:
    browser_context = browser.new_context(**context)  # type: ignore[arg-type]
    page = browser_context.new_page()
    console = Console(page)
    page.on("console", console.on_console)
    page.on("pageerror", lambda error: console.errors.append(f"page error: {error}"))
    page.goto(f"{server.url}/")
    try:
        yield console
    finally:
        browser_context.close()


@pytest.fixture
def console(browser: Browser, server: Server) -> Iterator[Console]:
    server.wait_idle()
    yield from open_console(browser, server, viewport={"width": 1280, "height": 900})


@pytest.fixture
def keyed(console: Console) -> Console:
    """The console with the right key saved and the voice list loaded."""
    with console.page.expect_response("**/voices?details=true") as listed:
        console.set_key()
    assert listed.value.ok
    return console


def clip(tmp_path: Path, name: str, seconds: float = 4.0, silent: bool = False) -> Path:
    """A speech-like reference clip (noise with a syllable envelope), or a silent one."""
    pcm = np.zeros(24000 * 3, np.float32) if silent else reference_clip(seconds, seed=5)
    return write_audio(tmp_path / name, pcm, 24000)


@pytest.fixture(scope="module")
def stored_voice(server: Server, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A voice uploaded through the API, for the playback tests."""
    data = clip(tmp_path_factory.mktemp("voice"), VOICE).read_bytes()
    response = httpx.post(f"{server.url}/voices", headers=server.headers, timeout=60,
                          files={"file": (VOICE, io.BytesIO(data))})  # fmt: skip
    assert response.status_code == 201, response.text
    yield VOICE
    httpx.delete(f"{server.url}/voices/{VOICE}", headers=server.headers)


def voice_ids(server: Server) -> list[str]:
    ids: list[str] = httpx.get(f"{server.url}/voices", headers=server.headers).json()
    return ids


def screenshot(page: Page, name: str) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / name
    page.screenshot(path=str(path), full_page=True)
    return path


def test_the_page_is_public_and_loads_without_errors(server: Server, console: Console) -> None:
    page_response = httpx.get(f"{server.url}/")  # no key: the page holds no secret
    assert page_response.status_code == 200
    assert page_response.headers["content-type"].startswith("text/html")
    assert "default-src 'self'" in page_response.headers["content-security-policy"]
    script = httpx.get(f"{server.url}/console/console.js")
    assert script.status_code == 200 and "javascript" in script.headers["content-type"]
    page = console.page
    expect(page).to_have_title("Chatterbox TTS console")
    expect(page.locator("#key-hint")).to_contain_text("Enter the service's API key")
    # Without a key the panel shows the public /ready: both workers, ready.
    expect(page.locator("#workers tr")).to_have_count(2)
    expect(page.locator("#workers")).to_contain_text("ready")
    expect(page.locator("#service-summary")).to_contain_text("Ready")
    assert page.locator("#format").input_value() == "fmp4"  # MSE plays fmp4 in Chromium
    assert page.evaluate("localStorage.length") == 0
    assert console.errors == []


def test_a_wrong_key_is_explained_in_words(console: Console) -> None:
    page = console.page
    console.set_key("not-the-key")
    expected = "The API key was not accepted. Check the key field."
    expect(page.locator("#voice-message")).to_have_text(expected)
    expect(page.locator("#status-message")).to_have_text(expected)
    expect(page.locator("#api-key")).to_have_attribute("aria-invalid", "true")
    page.click("#play")
    expect(page.locator("#play-message")).to_have_text(expected)
    page.select_option("#format", "mp3")  # <audio src>: the page asks the server why it failed
    page.evaluate("document.getElementById('play-message').textContent = ''")
    page.click("#play")
    expect(page.locator("#m-mode")).to_contain_text("<audio src>")
    expect(page.locator("#play-message")).to_have_text(expected)
    assert not re.search(r"\b40[13]\b", page.locator("main").inner_text())  # words, not codes
    assert page.evaluate("localStorage.getItem('chatterbox-console.api-key')") == "not-the-key"
    assert console.unexpected_errors() == []


def test_an_unreachable_server_is_explained_in_words(keyed: Console) -> None:
    page = keyed.page
    page.route("**/tts/generate", lambda route: route.abort())
    page.click("#play")
    expect(page.locator("#play-message")).to_contain_text("Cannot reach the server")
    expect(page.locator("#play-message")).to_have_class(re.compile("error"))


def test_upload_a_voice_file_pick_it_and_delete_it(
    server: Server, keyed: Console, tmp_path: Path
) -> None:
    page = keyed.page
    page.set_input_files("#voice-file", str(clip(tmp_path, "take1.wav")))
    page.fill("#voice-name", "console upload")
    page.click("#upload-form button[type=submit]")
    expect(page.locator("#voice-message")).to_contain_text("“console upload.wav” uploaded")
    assert page.locator("#voice").input_value() == "console upload.wav"  # selected at once
    expect(page.locator("#voice option:checked")).to_contain_text("console upload.wav (")
    assert "console upload.wav" in voice_ids(server)
    assert page.locator("#voice-delete").is_enabled()

    page.once("dialog", lambda dialog: dialog.accept())
    page.click("#voice-delete")
    expect(page.locator("#voice-message")).to_have_text("Voice “console upload.wav” deleted.")
    expect(page.locator("#voice option", has_text="console upload")).to_have_count(0)
    assert "console upload.wav" not in voice_ids(server)
    assert keyed.errors == []


def test_a_silent_clip_is_refused_in_words(server: Server, keyed: Console, tmp_path: Path) -> None:
    page = keyed.page
    page.set_input_files("#voice-file", str(clip(tmp_path, "quiet.wav", silent=True)))
    page.click("#upload-form button[type=submit]")
    message = page.locator("#voice-message")
    expect(message).to_contain_text("The clip is silent (or nearly): record someone speaking.")
    expect(message).to_have_class(re.compile("error"))
    assert "quiet.wav" not in voice_ids(server)


def test_play_streams_through_mse_shows_time_to_first_audio_and_downloads(
    stored_voice: str, keyed: Console
) -> None:
    page = keyed.page
    expect(page.locator(f"#voice option[value='{stored_voice}']")).to_have_count(1)
    page.select_option("#voice", stored_voice)
    page.fill("#seed", "7")
    page.click("#more summary")
    page.fill("#extra", BOUNDED)
    page.fill("#text", "Hello from the console.")
    with page.expect_request("**/tts/generate") as sent:
        page.click("#play")
    body = json.loads(sent.value.post_data or "{}")
    assert sent.value.headers["x-api-key"] == API_KEY
    assert body["voice_id"] == stored_voice and body["format"] == "fmp4"
    assert body["seed"] == 7 and body["fixed_token_count"] == TOKENS
    assert body["temperature"] == 0.8 and body["exaggeration"] == 0.5 and body["cfg_weight"] == 0.5

    keyed.wait_for_playback(0.5)
    assert page.evaluate("document.getElementById('player').src").startswith("blob:")  # MSE
    expect(page.locator("#m-first-byte")).to_have_text(re.compile(r"^\d+ ms$"))
    expect(page.locator("#m-playing")).to_have_text(re.compile(r"^\d+ ms$"))
    expect(page.locator("#m-mode")).to_contain_text("Media Source Extensions")
    expect(page.locator("#download")).to_be_enabled(timeout=WAIT_MS)  # the stream has ended
    expect(page.locator("#play-message")).to_contain_text("Done")
    screenshot(page, "console.png")

    with page.expect_download() as saved:
        page.click("#download")
    assert saved.value.suggested_filename == "speech-7.m4a"
    data = Path(saved.value.path()).read_bytes()
    assert data[4:8] == b"ftyp" and len(data) > 3 * 8000  # AAC in MP4, ~3 s at 64 kbit/s
    assert keyed.errors == []


def test_mp3_falls_back_to_an_audio_element_with_the_key_in_the_url(keyed: Console) -> None:
    page = keyed.page
    page.select_option("#format", "mp3")
    page.click("#more summary")
    page.fill("#extra", BOUNDED)
    page.fill("#text", "Played from a URL.")
    page.click("#play")
    keyed.wait_for_playback(0.5)
    src = page.evaluate("document.getElementById('player').src")
    assert "/tts/generate?" in src and f"api_key={API_KEY}" in src and "format=mp3" in src
    expect(page.locator("#m-mode")).to_contain_text("<audio src>")
    expect(page.locator("#m-playing")).to_have_text(re.compile(r"^\d+ ms$"))
    assert keyed.errors == []


def test_the_keyboard_plays_with_ctrl_enter_and_focus_is_visible(keyed: Console) -> None:
    page = keyed.page
    page.click("#more summary")
    page.fill("#extra", json.dumps({"fixed_token_count": 40}))
    page.focus("#text")
    with page.expect_request("**/tts/generate"):
        page.keyboard.press("Control+Enter")
    keyed.wait_for_playback(0.2)
    page.focus("#text")
    page.keyboard.press("Tab")  # to the voice picker
    focused = page.evaluate(
        "[document.activeElement.id, getComputedStyle(document.activeElement).outlineStyle]"
    )
    assert focused == ["voice", "solid"]
    assert keyed.errors == []


def test_a_microphone_recording_becomes_a_voice(server: Server, keyed: Console) -> None:
    page = keyed.page  # Chromium's fake microphone: a beep every second
    page.fill("#voice-name", "console-mic")
    page.click("#record")
    expect(page.locator("#record")).to_have_attribute("aria-pressed", "true")
    page.wait_for_timeout(3500)
    page.click("#record")
    expect(page.locator("#voice-message")).to_contain_text("“console-mic.webm” uploaded")
    try:
        assert page.locator("#voice").input_value() == "console-mic.webm"
        assert keyed.errors == []
    finally:
        httpx.delete(f"{server.url}/voices/console-mic.webm", headers=server.headers)


def test_preloaded_voices_cannot_be_deleted(server: Server, keyed: Console, tmp_path: Path) -> None:
    shipped = server.preloaded_dir / "console-shipped.wav"
    shipped.write_bytes(clip(tmp_path, "shipped.wav").read_bytes())
    try:
        page = keyed.page
        page.click("#voices-refresh")
        expect(page.locator("#voice option", has_text="console-shipped.wav")).to_contain_text(
            "preloaded"
        )
        page.select_option("#voice", "console-shipped.wav")
        expect(page.locator("#voice-delete")).to_be_disabled()
    finally:
        shipped.unlink()


def convert_and_play(console: Console) -> None:
    """Wait for the converted audio to play and its stream to end, as the speak tests do."""
    page = console.page
    console.wait_for_playback(0.5, "convert-player")
    assert page.evaluate("document.getElementById('convert-player').src").startswith("blob:")
    expect(page.locator("#c-first-byte")).to_have_text(re.compile(r"^\d+ ms$"))
    expect(page.locator("#c-playing")).to_have_text(re.compile(r"^\d+ ms$"))
    expect(page.locator("#c-mode")).to_contain_text("Media Source Extensions")
    expect(page.locator("#convert-download")).to_be_enabled(timeout=WAIT_MS)  # the stream ended
    expect(page.locator("#convert-message")).to_contain_text("Done")


def test_convert_a_file_into_a_voice_plays_as_it_streams(
    server: Server, stored_voice: str, keyed: Console, tmp_path: Path
) -> None:
    page = keyed.page
    source = clip(tmp_path, "source.wav", seconds=2.5)
    page.set_input_files("#convert-file", str(source))
    expect(page.locator("#convert-source")).to_have_text("Source: the file “source.wav”.")
    page.select_option("#convert-voice", stored_voice)
    page.fill("#convert-seed", "3")
    with page.expect_request("**/vc/convert") as sent:
        page.click("#convert-go")
    assert sent.value.headers["x-api-key"] == API_KEY
    convert_and_play(keyed)
    expect(page.locator("#c-seed")).to_have_text("3")
    with page.expect_download() as saved:
        page.click("#convert-download")
    assert saved.value.suggested_filename == "converted-3.m4a"
    # The form's fields (Chromium does not show a file's form to the test): the same request
    # from here gives the same bytes.
    form = {"voice_id": stored_voice, "output_format": "fmp4", "seed": "3"}
    direct = httpx.post(f"{server.url}/vc/convert", headers=server.headers, data=form,
                        files={"audio": source.read_bytes()}, timeout=60)  # fmt: skip
    assert direct.status_code == 200, direct.text
    assert Path(saved.value.path()).read_bytes() == direct.content
    assert keyed.errors == []


def test_a_microphone_recording_is_converted(keyed: Console) -> None:
    page = keyed.page  # Chromium's fake microphone: a beep every second
    page.click("#convert-record")
    expect(page.locator("#convert-record")).to_have_attribute("aria-pressed", "true")
    page.wait_for_timeout(3000)
    with page.expect_response("**/vc/convert") as answered:
        page.click("#convert-record")  # "Stop and convert"
    assert answered.value.ok
    expect(page.locator("#convert-source")).to_contain_text("Source: your recording (")
    expect(page.locator("#convert-record")).to_have_attribute("aria-pressed", "false")
    convert_and_play(keyed)
    assert keyed.errors == []


def test_a_silent_source_is_refused_in_words(keyed: Console, tmp_path: Path) -> None:
    page = keyed.page
    page.focus("#convert-go")
    page.keyboard.press("Enter")  # the keyboard submits; nothing chosen yet
    message = page.locator("#convert-message")
    expect(message).to_have_text("Choose a recording to convert, or record one.")
    assert page.evaluate("document.activeElement.id") == "convert-file"
    page.set_input_files("#convert-file", str(clip(tmp_path, "quiet.wav", silent=True)))
    page.click("#convert-go")
    expected = "The source recording was refused: the audio is silent (or nearly)."
    expect(message).to_have_text(expected)
    expect(message).to_have_class(re.compile("error"))
    expect(page.locator("#convert-file")).to_have_attribute("aria-invalid", "true")
    assert keyed.unexpected_errors() == []


def test_the_convert_panel_says_when_the_model_cannot_convert(keyed: Console) -> None:
    page = keyed.page
    expect(page.locator("#convert-unavailable")).to_be_hidden()

    def as_turbo(route: Route) -> None:  # the status of a Turbo pool, which refuses VC
        status = route.fetch().json()
        status["model"].update(label="chatterbox-turbo", voice_conversion=False)
        route.fulfill(json=status)

    page.route("**/system-status", as_turbo)
    page.click("#status-refresh")
    expect(page.locator("#convert-unavailable")).to_have_text(
        "The served model (chatterbox-turbo) cannot convert voices: voice conversion needs "
        "Chatterbox English or multilingual (MODEL_VARIANT=chatterbox or chatterbox-multilingual)."
    )
    expect(page.locator("#convert-body")).to_be_hidden()


def test_a_phone_sized_screen_has_no_horizontal_scroll(browser: Browser, server: Server) -> None:
    server.wait_idle()
    phone = {"viewport": {"width": 375, "height": 740}, "is_mobile": True, "has_touch": True,
             "device_scale_factor": 2}  # fmt: skip
    for console in open_console(browser, server, **phone):
        page = console.page
        console.set_key()
        expect(page.locator("#host")).to_contain_text("RAM")  # the keyed status has arrived
        expect(page.locator("#gpus")).to_contain_text("No GPU")
        page.click("#more summary")
        page.fill("#extra", json.dumps({"fixed_token_count": 40}))
        page.click("#play")
        expect(page.locator("#download")).to_be_enabled(timeout=WAIT_MS)  # played to the end
        widths = page.evaluate(
            "[document.documentElement.scrollWidth, document.documentElement.clientWidth]"
        )
        assert widths[0] <= widths[1] == 375, widths
        overflowing = page.evaluate("""
            [...document.querySelectorAll('main *, header *')]
                .filter((e) => e.getClientRects().length && !e.closest('.table-wrap'))
                .filter((e) => e.getBoundingClientRect().right > window.innerWidth + 0.5)
                .map((e) => e.id || e.tagName)
        """)  # fmt: skip
        assert overflowing == []
        screenshot(page, "console-phone.png")
        assert console.errors == []
