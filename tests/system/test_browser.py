"""The dashboard and Swagger UI in a real headless Chromium, against gunicorn and a real worker."""

import hashlib
import os
import shutil
from datetime import timedelta
from pathlib import Path

import pytest
import requests

from downloads_app.downloads import run_writes, user_actions
from downloads_app.downloads.models import Content, Download, utcnow
from support import wait_until
from support.databases import migrated_sqlite_url
from support.environment import PROCESS_REDIS_URL
from support.origins import NGINX, Nginx, require
from support.processes import ROOT, Service

pytestmark = pytest.mark.browser

CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
SCREENSHOTS = Path(os.environ.get("SCREENSHOT_DIR", ROOT / "var" / "screenshots"))
# 480p of the test movie is 194,500,000 bytes: room for one, not two.
QUOTA = 300_000_000


@pytest.fixture(scope="module")
def browser():
    if not (shutil.which(CHROMIUM) or Path(CHROMIUM).exists()):
        if os.environ.get("REQUIRE_BROWSER") == "1":
            pytest.fail(f"Chromium not found at {CHROMIUM} and REQUIRE_BROWSER=1")
        pytest.skip(f"Chromium not found at {CHROMIUM} (apt-get install chromium; CI requires it)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
            ],
        )
        yield browser
        browser.close()


@pytest.fixture
def database_url(tmp_path):
    """The browser suite runs once, on SQLite; the API beneath it is tested on both back ends."""
    return migrated_sqlite_url(tmp_path)


@pytest.fixture
def service(database_url, movie, tmp_path):
    # No reconciler pass during a test: the admin page, not the worker, requeues stalled downloads.
    service = Service(
        database_url,
        PROCESS_REDIS_URL,
        tmp_path,
        DOWNLOAD_SIMULATED_SECONDS=4,
        STORAGE_QUOTA_BYTES=QUOTA,
        DOWNLOAD_RECONCILE_SECONDS=3600,
        STORAGE_DIR=tmp_path / "storage",
    ).start()
    yield service
    service.stop()


@pytest.fixture
def page(browser):
    """A page; the test fails if the Content-Security-Policy blocked anything on it."""
    context = browser.new_context(viewport={"width": 1280, "height": 860})
    page = context.new_page()
    page.set_default_timeout(15_000)
    blocked = []
    page.on(
        "console", lambda message: blocked.append(message.text) if "Content Security Policy" in message.text else None
    )
    yield page
    context.close()
    assert blocked == []


def progress_of(card):
    return int(card.locator(".meter").get_attribute("aria-valuenow"))


def test_the_quality_list_goes_from_lowest_to_highest_and_defaults_to_720p(service, page, token, app):
    with app.app_context():
        Content.create(id="ladder", title="Every quality", duration_seconds=600, qualities="360p,480p,720p,1080p,2160p")
    page.goto(f"{service.base}/")
    page.fill("#token", token("alice"))
    page.click("text=Use token")
    page.wait_for_selector("#app:not([hidden])")
    page.select_option("#content", "ladder")
    values = page.eval_on_selector_all("#quality option", "options => options.map((option) => option.value)")
    assert values == ["360p", "480p", "720p", "1080p", "2160p"]
    assert page.input_value("#quality") == "720p"


def test_clean_up_asks_first_then_deletes_everything_and_the_pages_have_an_icon(service, page, token):
    user = {"Authorization": f"Bearer {token('alice')}"}
    started = requests.post(
        f"{service.base}/api/downloads/start", json={"content_id": "movie", "quality": "480p"}, headers=user, timeout=5
    )
    assert started.status_code == 202
    page.goto(f"{service.base}/")
    page.fill("#token", token("alice"))
    page.click("text=Use token")
    page.wait_for_selector(".download")
    asked = []
    page.once("dialog", lambda dialog: (asked.append(dialog.message), dialog.dismiss()))
    page.click("#cleanup")
    assert asked == ["Delete all your downloads? Their files are removed and your storage freed."]
    assert requests.get(f"{service.base}/api/downloads", headers=user, timeout=5).json()["pagination"]["total"] == 1
    page.once("dialog", lambda dialog: dialog.accept())
    page.click("#cleanup")
    page.wait_for_selector("#notice:not([hidden])")
    assert page.inner_text("#notice") == "Deleted 1 download, freed 195 MB"
    assert page.is_visible("#empty")
    assert requests.get(f"{service.base}/api/downloads", headers=user, timeout=5).json()["pagination"]["total"] == 0
    for path in ("/", "/admin"):
        page.goto(f"{service.base}{path}")
        icon = page.get_attribute("link[rel=icon]", "href")
        answer = requests.get(f"{service.base}{icon}", timeout=5)
        assert answer.status_code == 200 and answer.headers["Content-Type"].startswith("image/svg+xml")


def test_dashboard_starts_watches_pauses_resumes_and_deletes_live(service, page, token):
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.goto(f"{service.base}/")
    page.fill("#token", "not a token")
    page.click("text=Use token")
    assert "does not look like a token" in page.inner_text("#error")

    page.fill("#token", token("alice"))
    page.click("text=Use token")
    page.wait_for_selector("#app:not([hidden])")
    assert page.inner_text("#user") == "alice"
    page.select_option("#content", "movie")
    page.select_option("#quality", "480p")
    page.click("#start")
    card = page.locator(".download").first
    card.locator(".badge", has_text="downloading").wait_for()
    page.wait_for_function("() => document.getElementById('live').classList.contains('on')")

    # Latency from the worker's publish (the event id is its clock, in ms) to this page.
    page.evaluate("""() => {
        window.latencies = [];
        const source = new EventSource('/api/downloads/events');
        source.addEventListener('progress', (e) => window.latencies.push(Date.now() - Number(e.lastEventId)));
    }""")
    page.wait_for_function(
        "() => { const m = document.querySelector('.download .meter');"
        " const v = Number(m.getAttribute('aria-valuenow')); return v >= 20 && v < 100; }"
    )
    assert card.locator(".speed").inner_text().endswith("/s")
    assert "left" in card.locator(".eta").inner_text()
    page.screenshot(path=str(SCREENSHOTS / "dashboard-desktop.png"), full_page=True)

    card.locator("button[data-action=pause]").click()
    card.locator(".badge", has_text="paused").wait_for()
    paused_at = progress_of(card)
    assert 0 < paused_at < 100
    # The same title and quality again: the page says it is already there, and adds no card.
    page.click("#start")
    page.wait_for_selector("#notice:not([hidden])")
    assert "You already have this title at this quality (paused)" in page.inner_text("#notice")
    assert page.locator(".download").count() == 1
    # A second download does not fit the quota: the API's refusal is shown on the page.
    page.select_option("#quality", "720p")
    page.click("#start")
    page.wait_for_selector("#error:not([hidden])")
    assert "Not enough storage" in page.inner_text("#error")

    card.locator("button[data-action=resume]").click()
    card.locator(".badge", has_text="completed").wait_for()
    assert page.is_hidden("#notice")  # it told of the download as paused: no longer true
    assert progress_of(card) == 100 and paused_at < 100
    assert card.locator(".size").inner_text() == "195 MB of 195 MB"
    latencies = page.evaluate("window.latencies")
    assert latencies and max(latencies) < 1000
    print(f"\nSSE latency, worker publish → browser, ms: {sorted(latencies)}")

    quota_before = float(page.locator(".quota .meter").get_attribute("aria-valuenow"))
    assert quota_before > 50
    page.set_viewport_size({"width": 390, "height": 844})
    page.screenshot(path=str(SCREENSHOTS / "dashboard-phone.png"), full_page=True)
    asked = []
    page.once("dialog", lambda dialog: (asked.append(dialog.message), dialog.dismiss()))
    card.locator("button[data-action=delete]").click()
    assert asked == ["Delete A Movie · 480p? Its file is removed and its storage freed."]
    assert page.locator(".download").count() == 1  # dismissed: nothing was sent
    page.once("dialog", lambda dialog: dialog.accept())
    card.locator("button[data-action=delete]").click()
    page.wait_for_function(
        "() => Number(document.getElementById('quota-bar').parentElement.getAttribute('aria-valuenow')) === 0"
    )
    assert page.locator(".download").count() == 0
    assert page.is_visible("#empty")


def test_swagger_ui_authorizes_and_starts_a_download(service, page, token):
    page.goto(f"{service.base}/docs")
    page.click("button.authorize")
    page.fill(".auth-container input", token("alice"))
    page.click(".auth-btn-wrapper button.authorize")
    page.click("button.btn-done")
    operation = page.locator(".opblock-post", has=page.locator("[data-path='/api/downloads/start']"))
    operation.locator(".opblock-summary").click()
    operation.locator("button.try-out__btn").click()
    operation.locator("textarea.body-param__text").fill('{"content_id": "movie", "quality": "480p"}')
    operation.locator("button.execute").click()
    status = operation.locator(".live-responses-table tbody .response-col_status").first
    status.wait_for()
    assert status.inner_text().strip() == "202"
    assert '"Download started"' in operation.locator(".live-responses-table tbody .microlight").first.inner_text()


def test_admin_page_shows_real_counts_and_requeues_a_stalled_download(service, page, token, app):
    user = {"Authorization": f"Bearer {token('alice')}"}
    api = f"{service.base}/api"
    done = requests.post(
        f"{api}/downloads/start", json={"content_id": "movie", "quality": "480p"}, headers=user, timeout=5
    ).json()["download"]
    wait_until(
        lambda: (
            requests.get(f"{api}/downloads/{done['id']}", headers=user, timeout=5).json()["download"]["status"]
            == "completed"
        ),
        timeout=20,
        interval=0.1,
    )
    with app.app_context():  # a download whose worker died a minute ago
        stalled, _ = user_actions.start_download(app.extensions["runtime"], "bob", "movie", "480p")
        run_writes.claim(app.extensions["runtime"], stalled.id)
        Download.update(updated_at=utcnow() - timedelta(seconds=60)).where(Download.id == stalled.id).execute()

    page.goto(f"{service.base}/admin")
    page.fill("#token", token("root", admin=True))
    page.click("text=Use token")
    page.wait_for_selector("#app:not([hidden])")
    assert page.inner_text("[data-status=completed] strong") == "1"
    assert page.inner_text("[data-status=downloading] strong") == "1"
    assert page.inner_text("#stalled-count") == "1" and page.inner_text("#workers-alive") == "1"
    assert "alive" in page.inner_text("#workers")
    states = page.eval_on_selector_all("#by-status [data-status]", "cells => cells.map((c) => c.dataset.status)")
    assert states == ["pending", "downloading", "paused", "completed", "failed", "cancelled", "expired"]
    # The last hour's charts, from the service's own history in Redis: the start above is in it.
    charts = page.eval_on_selector_all("#charts figure", "figures => figures.map((f) => f.dataset.chart)")
    assert charts == ["depth", "started", "completed", "failed", "bytes"]
    assert page.locator("[data-chart=started] rect").count() == 60
    assert "peak 1" in page.inner_text("[data-chart=started] figcaption")
    assert page.inner_text("#expiring-count") == "0" and page.is_visible("#none-expiring")
    movie = page.eval_on_selector_all("#titles tr[data-id=movie] td", "cells => cells.map((c) => c.textContent)")
    assert movie == ["A Movie", "yes", "no cap", "default", "default", "default", ""]
    page.locator(f"#attention li[data-id='{stalled.id}'] button").click()
    page.wait_for_function(
        "() => document.querySelector('[data-status=completed] strong').textContent === '2'", timeout=20_000
    )
    assert page.inner_text("#stalled-count") == "0" and page.is_visible("#calm")
    page.screenshot(path=str(SCREENSHOTS / "admin.png"), full_page=True)


def test_a_real_transfer_is_saved_from_the_dashboard(service, page, token, tmp_path):
    require(NGINX, "nginx is not installed (Debian: apt-get install nginx-light)")
    (tmp_path / "media").mkdir()
    content = os.urandom(5 * 1024 * 1024)
    (tmp_path / "media" / "movie.mp4").write_bytes(content)
    with Nginx(tmp_path / "media") as origin:
        saved = requests.put(
            f"{service.base}/api/contents/movie/sources/480p",
            json={"location": f"{origin.url}/movie.mp4", "sha256": hashlib.sha256(content).hexdigest()},
            headers={"Authorization": f"Bearer {token('root', admin=True)}"},
            timeout=10,
        )
        assert saved.status_code == 200, saved.text
        page.goto(f"{service.base}/")
        page.fill("#token", token("alice"))
        page.click("text=Use token")
        page.wait_for_selector("#app:not([hidden])")
        page.select_option("#content", "movie")
        page.select_option("#quality", "480p")
        page.click("#start")
        card = page.locator(".download").first
        card.locator(".badge", has_text="completed").wait_for()
    save = card.locator("a.save")
    save.wait_for()  # shown once the record's SHA-256 is known
    with page.expect_download() as download:
        save.click()
    target = tmp_path / "saved.mp4"
    download.value.save_as(target)
    assert download.value.suggested_filename == "movie-480p.mp4"
    assert hashlib.sha256(target.read_bytes()).hexdigest() == hashlib.sha256(content).hexdigest()


# The title "short" has a licence of seconds: the workers' expiry job expires it while the page watches.
SHORT_LICENSE_SECONDS = 5


@pytest.fixture
def offline_service(database_url, movie, tmp_path, token):
    """The service with a reconciler (and so the expiry job) every half second, and a series."""
    service = Service(
        database_url,
        PROCESS_REDIS_URL,
        tmp_path,
        DOWNLOAD_SIMULATED_SECONDS=1,
        DOWNLOAD_RECONCILE_SECONDS=0.5,
        STORAGE_DIR=tmp_path / "storage",
    ).start()
    admin = {"Authorization": f"Bearer {token('root', admin=True)}"}
    titles = [
        {"id": "ep1", "title": "Pilot", "series_id": "show", "season": 1, "episode": 1},
        {"id": "ep2", "title": "Second", "series_id": "show", "season": 1, "episode": 2},
        {"id": "short", "title": "Short licence", "license_days": SHORT_LICENSE_SECONDS / 86_400},
    ]
    for title in titles:
        body = {"duration_seconds": 60, "qualities": ["480p"], **title}
        added = requests.post(f"{service.base}/api/contents", json=body, headers=admin, timeout=5)
        assert added.status_code == 201, added.json()
    yield service
    service.stop()


def card_of(page, title):
    return page.locator(".download", has=page.locator(".title", has_text=title))


def test_dashboard_devices_licences_renewals_expiry_and_smart_downloads(offline_service, page, token):
    service = offline_service
    page.goto(f"{service.base}/")
    page.fill("#token", token("alice"))
    page.click("text=Use token")
    page.wait_for_selector("#app:not([hidden])")
    assert page.eval_on_selector_all("#device option", "options => options.map((o) => o.textContent)") == [
        "Default device"
    ]
    page.fill("#device-name", "Phone")
    page.fill("#device-platform", "ios")
    page.click("#add-device")
    page.locator("#devices li", has_text="Phone · ios · 0 downloads, 0 B").wait_for()
    assert page.eval_on_selector_all("#device option", "options => options.map((o) => o.textContent)") == ["Phone"]

    # A completed episode: its licence, played, renewed.
    page.select_option("#content", "ep1")
    page.click("#start")
    pilot = card_of(page, "Pilot")
    pilot.locator(".badge", has_text="completed").wait_for()
    assert pilot.locator(".device").inner_text() == "on Phone"
    page.wait_for_function(
        "() => /Licence expires in 30 days/.test(document.querySelector('.download .licence').textContent)"
    )
    pilot.locator("button[data-action=play]").click()
    pilot.locator(".licence", has_text="Licence expires in 2 days (playing started)").wait_for()
    pilot.locator("button[data-action=renew]").click()
    pilot.locator(".licence", has_text="Licence expires in 32 days").wait_for()
    page.locator("#devices li", has_text="Phone · ios · 1 download,").wait_for()

    # Smart downloads: marking it watched brings the next episode in its place.
    page.check("#smart")
    page.wait_for_function("() => document.getElementById('smart').checked")
    pilot.locator("button[data-action=watched]").click()
    page.wait_for_selector("#notice:not([hidden])")
    assert page.inner_text("#notice") == "Marked watched and deleted; the next episode, 'Second', started."
    card_of(page, "Second").locator(".badge", has_text="completed").wait_for()
    assert pilot.count() == 0

    # A licence of seconds runs out while the page watches: greyed, with the reason, renewable.
    page.select_option("#content", "short")
    page.click("#start")
    short = card_of(page, "Short licence")
    short.locator(".badge", has_text="expired").wait_for(timeout=60_000)
    assert "expired" in short.get_attribute("class")
    assert "Renew to download it again" in short.locator(".licence").inner_text()
    assert short.locator("button[data-action=renew]").is_visible()
    assert short.locator("button[data-action=play]").is_hidden()
    page.screenshot(path=str(SCREENSHOTS / "dashboard-licences.png"), full_page=True)
    short.locator("button[data-action=renew]").click()
    short.locator(".badge", has_text="completed").wait_for()

    # Removing the device deletes its downloads.
    asked = []
    page.once("dialog", lambda dialog: (asked.append(dialog.message), dialog.accept()))
    page.locator("#devices li", has_text="Phone").locator("button").click()
    page.wait_for_selector("#notice:has-text('Removed Phone')")
    # The short one may have expired again meanwhile: it then holds no storage, but is deleted too.
    assert asked and asked[0].startswith("Remove Phone? Its ")
    assert page.inner_text("#notice").startswith("Removed Phone: deleted 2 downloads")
    assert page.locator(".download").count() == 0
    assert page.eval_on_selector_all("#device option", "options => options.map((o) => o.textContent)") == [
        "Default device"
    ]
