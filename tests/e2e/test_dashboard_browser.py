"""The inspection page in Debian's headless Chromium against a live service on a real Tansu broker.

Classrooms are MetricBatch records shaped like the simulator's (tests/dashboard_support.py). The
test sees the grid fill, a value change live, the filters, a classroom's detail with its S-T curve
and attention chart, and the English switch; screenshots go to ``artifacts/dashboard/``.
A missing Chromium or Playwright fails the test with the install line — it never skips.
"""

from __future__ import annotations

import shutil
import uuid
from pathlib import Path

import pytest

from classtrace.kafka import ensure_topics, make_producer
from classtrace.topics import TopicSpec
from readers.dashboard.app import build_app
from readers.dashboard.viewers import add_viewer
from stream_processors.metrics.alerts import DEVICE_OFFLINE, raised
from tests.helpers.dashboard_support import T0, batch, classroom_batches, produce, serve, summary, wait_for

pytestmark = [pytest.mark.browser, pytest.mark.e2e]

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
INSTALL = "apt-get update && apt-get install -y chromium fonts-wqy-microhei; pip install playwright"
ARTIFACTS = Path(__file__).resolve().parents[2] / "artifacts" / "dashboard"
ROOMS = 2000


@pytest.fixture(scope="module")
def browser():
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.fail(f"Playwright is not installed; the browser test needs: {INSTALL}")
    if not Path(CHROMIUM).exists() and not shutil.which("chromium"):
        pytest.fail(f"Debian's Chromium is not installed at {CHROMIUM}; the browser test needs: {INSTALL}")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture(scope="module")
def dashboard(kafka):
    metrics, viewers = f"test.metrics.{uuid.uuid4().hex[:8]}", f"test.viewers.{uuid.uuid4().hex[:8]}"
    alerts = f"test.alerts.{uuid.uuid4().hex[:8]}"
    ensure_topics(kafka.bootstrap, 2, topics=[TopicSpec(metrics), TopicSpec(alerts)])
    _, token = add_viewer(kafka.bootstrap, {}, "", topic=viewers)
    batches = classroom_batches(ROOMS)
    produce(kafka.bootstrap, metrics, batches)
    # The worker raises device_offline for each offline tablet; the cards show what it raised.
    producer = make_producer(kafka.bootstrap)
    for _key, b in batches:
        for d in (d for d in b.devices if d.offline):
            alert = raised(
                DEVICE_OFFLINE, d.school_id, d.classroom_id, T0 * 1000, 91.0, 90.0, device_id=d.device_id
            )
            producer.produce(alerts, key=d.classroom_id.encode(), value=alert.SerializeToString())
    assert producer.flush(30) == 0
    app = build_app(kafka.bootstrap, {}, metrics_topic=metrics, viewers_topic=viewers, alerts_topic=alerts)
    with serve(app) as url:
        wait_for(lambda: app.state.live.caught_up)
        yield {"url": url, "token": token, "bootstrap": kafka.bootstrap, "metrics": metrics}


def test_the_page_runs_under_its_content_security_policy(browser, dashboard):
    # The policy is enforced here (no bypass): the page's own scripts, styles and stream must
    # work within it. Locators poll from Playwright's isolated world, which the policy allows.
    page = browser.new_page(viewport={"width": 1440, "height": 900}, locale="zh-CN")
    violations: list[str] = []

    def on_console(msg) -> None:
        if "Content Security Policy" in msg.text:
            violations.append(msg.text)

    page.on("console", on_console)
    page.on("pageerror", lambda exc: violations.append(str(exc)))
    try:
        response = page.goto(f"{dashboard['url']}/?token={dashboard['token']}")
        assert response is not None
        assert "frame-ancestors 'none'" in response.headers["content-security-policy"]
        page.locator(".card").nth(ROOMS - 1).wait_for(timeout=10_000)  # every card drawn by app.js
        assert page.locator(".card").count() == ROOMS
        assert "线上巡课" in page.inner_text("header")
    finally:
        page.close()
    assert violations == []


def test_inspection_page_fills_updates_live_and_opens_a_classroom(browser, dashboard):
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    # wait_for_function evaluates its predicate with eval, which the page's policy forbids
    # (test_the_page_runs_under_its_content_security_policy holds the page to it).
    context = browser.new_context(viewport={"width": 1440, "height": 900}, locale="zh-CN", bypass_csp=True)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    try:
        _walk_through(page, dashboard)
    finally:
        page.close()
        context.close()
    assert errors == []


def _walk_through(page, dashboard) -> None:
    page.goto(f"{dashboard['url']}/?token={dashboard['token']}")

    # the grid fills (2,000 classrooms, in a few seconds at most), in Chinese; the token leaves the URL
    page.wait_for_function(f"document.querySelectorAll('.card').length === {ROOMS}", timeout=10_000)
    assert "线上巡课" in page.inner_text("header")
    assert "token=" not in page.url
    assert page.inner_text("#stat-rooms") == str(ROOMS)
    card = '.card[data-id="s1/s1-r000"]'
    assert page.inner_text(f"{card} .mode") == "讲授型"
    assert page.inner_text(f"{card} .attention") == "55%"
    page.wait_for_selector("#conn.on")
    page.screenshot(path=str(ARTIFACTS / "grid.png"))

    # a value changes live, without reload
    produce(
        dashboard["bootstrap"],
        dashboard["metrics"],
        [
            (
                "s1-r000",
                batch(
                    [
                        summary(
                            "s1-r000",
                            "s1",
                            version=5,
                            attention_rate=0.93,
                            teaching_mode="dialogue",
                            st_rt=0.5,
                            st_ch=0.45,
                        )
                    ]
                ),
            ),
        ],
    )
    page.wait_for_function(
        f"document.querySelector('{card} .attention').textContent === '93%'", timeout=5_000
    )
    assert page.inner_text(f"{card} .mode") == "对话型"

    # filters: one school; alerts only (rooms with an offline tablet)
    page.select_option("#f-school", "s2")
    assert page.locator(".card:visible").count() == len(range(1, ROOMS, 3))
    page.select_option("#f-school", "")
    page.check("#f-alerts")
    alerting = page.locator(".card:visible").count()
    assert 0 < alerting < ROOMS and page.locator(".card.alerting:visible").count() == alerting
    page.uncheck("#f-alerts")

    # a classroom's detail: S-T curve, attention over the lesson, the offline device flagged
    page.click('.card[data-id="s1/s1-r003"]')
    page.wait_for_selector("#st-curve polyline.st-line", timeout=5_000)
    page.wait_for_selector("#attention-chart polyline.att-line")
    assert "s1-r003" in page.inner_text("#d-title")
    assert page.locator("#d-devices tr.offline").count() == 1
    assert "离线" in page.inner_text("#d-devices")
    page.screenshot(path=str(ARTIFACTS / "detail.png"))

    # the English switch
    page.click("#lang")
    assert "Online class inspection" in page.inner_text("header")
    assert page.inner_text(f"{card} .mode") == "Dialogue"
    page.screenshot(path=str(ARTIFACTS / "detail-en.png"))

    # a burst: a quarter of the classrooms change at once; all are on screen within 3 s
    burst = [f"{('s1', 's2', 's3')[i % 3]}-r{i:03d}" for i in range(1, ROOMS, 4)]
    produce(
        dashboard["bootstrap"],
        dashboard["metrics"],
        [(room, batch([summary(room, room[:2], version=7, attention_rate=0.31)])) for room in burst],
    )
    last = f'.card[data-id="{burst[-1][:2]}/{burst[-1]}"] .attention'
    page.wait_for_function(f"document.querySelector('{last}').textContent === '31%'", timeout=5_000)
    first = f'.card[data-id="{burst[0][:2]}/{burst[0]}"] .attention'
    assert page.text_content(first) == "31%"  # off screen: not rendered


def test_two_schools_c101_are_two_cards_each_opening_its_own_detail(browser, kafka):
    # The page keys cards and detail requests by (school, classroom): clicking one school's C101
    # must show that school's lesson, never the other's.
    metrics, viewers = f"test.metrics.{uuid.uuid4().hex[:8]}", f"test.viewers.{uuid.uuid4().hex[:8]}"
    ensure_topics(kafka.bootstrap, 1, topics=[TopicSpec(metrics)])
    _, token = add_viewer(kafka.bootstrap, {}, "", topic=viewers)
    rooms = [("north", 0.9, "lecture"), ("south", 0.2, "practice")]
    produce(
        kafka.bootstrap,
        metrics,
        [
            ("C101", batch([summary("C101", s, lesson="L-1", st_rt=rt, teaching_mode=m)]))
            for s, rt, m in rooms
        ],
    )
    app = build_app(kafka.bootstrap, {}, metrics_topic=metrics, viewers_topic=viewers)
    with serve(app) as url:
        wait_for(lambda: app.state.live.caught_up)
        page = browser.new_page(viewport={"width": 1280, "height": 800}, locale="zh-CN")
        try:
            page.goto(f"{url}/?token={token}")
            page.locator(".card").nth(1).wait_for(timeout=10_000)
            assert page.locator(".card").count() == 2
            for school, st_rt, _mode in rooms:
                page.click(f'.card[data-id="{school}/C101"]')
                page.locator("#d-sub", has_text=school).wait_for(timeout=5_000)
                metrics_text = page.inner_text("#d-metrics")
                assert f"{st_rt:.2f}" in metrics_text and "C101" in page.inner_text("#d-title")
                page.click("#d-close")
        finally:
            page.close()
