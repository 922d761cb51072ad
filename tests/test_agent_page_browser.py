"""The agent page in a real browser (Debian's chromium, headless, driven by Selenium).

Skipped, saying why, where chromium and chromedriver are not installed; CI installs
them (see .ci/run).
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from tests.browser import chromium, needs_chromium
from tests.helpers import a_caller_on_a_call, token_for, twilio_follows

pytestmark = needs_chromium


async def test_an_agent_starts_a_transfer_and_watches_the_decision_arrive(desk, phone, rest, tmp_path: Path) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as shown
    from selenium.webdriver.support.ui import WebDriverWait

    token = await token_for(desk, "agent", "kim")
    call = await a_caller_on_a_call(phone)
    driver = await asyncio.to_thread(chromium)
    try:

        def sign_in_and_start() -> None:
            driver.get(f"{desk.base_url}/agent")
            driver.find_element(By.ID, "token").send_keys(token)
            driver.find_element(By.CSS_SELECTOR, "#signin button[type=submit]").click()
            WebDriverWait(driver, 10).until(shown.visibility_of_element_located((By.ID, "transfer")))
            driver.find_element(By.ID, "call_sid").send_keys(call.call_sid)
            driver.find_element(By.ID, "return_to").send_keys("client:kim")
            driver.find_element(By.CSS_SELECTOR, "#transfer button[type=submit]").click()
            WebDriverWait(driver, 10).until(shown.text_to_be_present_in_element((By.ID, "events"), "Requested"))

        await asyncio.to_thread(sign_in_and_start)
        await twilio_follows(phone, call, rest.redirects[-1].url)
        await call.keys("1", "1")
        await call.connection_ends("completed")

        def final_text() -> str:
            WebDriverWait(driver, 10).until(shown.presence_of_element_located((By.CSS_SELECTOR, "#events li.final")))
            driver.save_screenshot(str(tmp_path / "agent-page.png"))
            return driver.find_element(By.ID, "events").text

        text = await asyncio.to_thread(final_text)
    finally:
        await asyncio.to_thread(driver.quit)

    assert "Decision stored: grant cpni (for this call only)." in text
    assert "Returned: the call with client:kim ended (completed)." in text
    assert (tmp_path / "agent-page.png").stat().st_size > 1000
