"""Refresh the screenshots of the web UI in docs/screenshots/.

Starts a throwaway server (embedded mode, fresh instance directory), drives Chromium through
the main screens with the offline demo model, and writes one PNG per screen. Usage:

    .venv/bin/python scripts/screenshots.py [--chromium /usr/bin/chromium]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from playwright.sync_api import sync_playwright  # noqa: E402

from tests.browser.server import LiveServer  # noqa: E402

OUT = REPO / "docs" / "screenshots"
EMAIL = "ada@example.com"
PASSWORD = "correct horse battery"
QUESTION = "What can you do? Answer with a **short** list and some `code`."


def sign_up(page) -> None:
    page.goto("/signup")
    page.get_by_label("Email").fill(EMAIL)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Create account").click()
    page.get_by_label("Message", exact=True).wait_for()


def chat(page) -> None:
    for count, text in enumerate(("Hello there!", QUESTION), start=1):
        box = page.get_by_label("Message", exact=True)
        box.fill(text)
        box.press("Enter")
        page.wait_for_function(
            """(count) => {
              const answers = document.querySelectorAll('article.role-assistant');
              return answers.length === count && answers[count - 1].classList.contains('status-complete');
            }""", arg=count)


def shoot(page, name: str) -> None:
    page.wait_for_timeout(300)  # let the last frame paint
    page.screenshot(path=str(OUT / f"{name}.png"))
    print(f"wrote docs/screenshots/{name}.png")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chromium", default="/usr/bin/chromium")
    args = parser.parse_args()
    OUT.mkdir(parents=True, exist_ok=True)
    with LiveServer() as server, sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=args.chromium, headless=True,
            args=["--no-sandbox", "--disable-background-networking", "--disable-gpu"])
        try:
            desktop = browser.new_context(base_url=server.url, viewport={"width": 1280, "height": 800}, color_scheme="light")
            page = desktop.new_page()
            page.goto("/login")
            page.get_by_label("Email").wait_for()
            shoot(page, "sign-in")
            sign_up(page)
            chat(page)
            shoot(page, "chat")
            conversation = page.evaluate("() => location.pathname")
            page.goto("/settings")
            page.get_by_role("heading", name="API tokens").wait_for()
            page.wait_for_load_state("networkidle")
            shoot(page, "settings")
            page.goto("/usage")
            page.wait_for_selector(".chart, .usage-body .notice")
            shoot(page, "usage")
            page.goto("/plan")
            page.wait_for_selector(".plan-body .card, .plan-body .notice")
            shoot(page, "plan")

            dark = browser.new_context(base_url=server.url, viewport={"width": 1280, "height": 800},
                                       color_scheme="dark", storage_state=desktop.storage_state())
            page = dark.new_page()
            page.goto(conversation)
            page.locator("article.role-assistant").last.wait_for()
            shoot(page, "chat-dark")

            phone = browser.new_context(base_url=server.url, viewport={"width": 360, "height": 740},
                                        storage_state=desktop.storage_state(), device_scale_factor=2)
            page = phone.new_page()
            page.goto(conversation)
            page.locator("article.role-assistant").last.wait_for()
            shoot(page, "chat-mobile")
            page.get_by_role("button", name="Chats").click()
            shoot(page, "sidebar-mobile")
            page.goto("/usage")
            page.wait_for_selector(".chart, .usage-body .notice")
            shoot(page, "usage-mobile")
        finally:
            browser.close()


if __name__ == "__main__":
    main()
