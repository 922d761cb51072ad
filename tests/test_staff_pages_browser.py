"""The staff pages in a real browser: sign in, search a number, open a call, hear it, take the bundle.

Skipped, saying why, where Debian's chromium and chromium-driver are not installed.
"""

from __future__ import annotations

import asyncio
import time
import zipfile
from pathlib import Path

from tests.browser import chromium, needs_chromium
from tests.test_staff_pages import PASSWORD, staff_user

pytestmark = needs_chromium


async def test_a_staff_member_finds_a_call_and_takes_its_bundle(service, twilio, customer, tmp_path: Path) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as shown
    from selenium.webdriver.support.ui import WebDriverWait

    call = twilio.call(caller=customer.phones[0])
    await call.dial()
    await call.keys("6", "1", "48317#")
    await call.record(seconds=5)
    await call.press("1")
    name = await staff_user(service)
    downloads = tmp_path / "downloads"
    downloads.mkdir()
    driver = await asyncio.to_thread(lambda: chromium(width=1200, height=1400, downloads=downloads))

    def find(by: str, what: str):
        return WebDriverWait(driver, 10).until(shown.presence_of_element_located((by, what)))

    def walk_through() -> dict[str, str]:
        seen = {}
        driver.get(f"{service.base_url}/staff/login")
        driver.find_element(By.NAME, "username").send_keys(name)
        driver.find_element(By.NAME, "password").send_keys(PASSWORD)
        driver.find_element(By.CSS_SELECTOR, "form button[type=submit]").click()
        find(By.NAME, "q").send_keys(customer.account_number)
        driver.find_element(By.CSS_SELECTOR, "form button[type=submit]").click()
        seen["person"] = find(By.ID, "consents").text
        driver.save_screenshot(str(tmp_path / "person-page.png"))
        driver.find_element(By.CSS_SELECTOR, f'#timeline a[href="/staff/calls/{call.call_sid}"]').click()
        seen["keys"] = find(By.ID, "keypresses").text
        seen["chain"] = driver.find_element(By.ID, "chain-check").text
        seen["audio"] = str(len(driver.find_elements(By.CSS_SELECTOR, "#recordings audio[controls]")))
        driver.save_screenshot(str(tmp_path / "call-page.png"))
        driver.find_element(By.LINK_TEXT, "Download the evidence bundle").click()
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and not list(downloads.glob("evidence-*.zip")):
            time.sleep(0.1)
        return seen

    try:
        seen = await asyncio.to_thread(walk_through)
    finally:
        await asyncio.to_thread(driver.quit)

    assert "testimonial" in seen["person"] and "granted" in seen["person"]
    assert "[pin withheld]" in seen["keys"] and "48317" not in seen["keys"]
    assert "intact" in seen["chain"]
    assert seen["audio"] == "1"
    [bundle] = list(downloads.glob("evidence-*.zip"))
    assert "CERTIFICATION.txt" in zipfile.ZipFile(bundle).namelist()
    assert (tmp_path / "call-page.png").stat().st_size > 1000
