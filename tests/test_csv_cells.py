"""CSV exports never hand a spreadsheet a formula (issue 16, info): cells that would run are
written as text, phone numbers stay as dialers read them."""

from __future__ import annotations

import csv
import io

import pytest

from ivr.csv_cells import safe_cell
from tests.helpers import token_for


@pytest.mark.parametrize(
    ("value", "written"),
    [
        ('=HYPERLINK("http://evil.test","x")', '\'=HYPERLINK("http://evil.test","x")'),
        ("+SUM(1,2)", "'+SUM(1,2)"),
        ("-2+3", "'-2+3"),
        ("@cmd", "'@cmd"),
        ("\tx", "'\tx"),
        ("+14155550100", "+14155550100"),  # a phone number is a number, run by no spreadsheet
        ("-12.5", "-12.5"),
        ("agent smith", "agent smith"),
        (42, 42),
    ],
)
def test_cells_that_would_run_are_text(value, written) -> None:
    assert safe_cell(value) == written


async def test_the_suppression_csv_keeps_numbers_dialable(service, twilio, http) -> None:
    staff = await token_for(service, "staff", "csv")
    call = twilio.call()
    await call.dial()
    await call.keys("2", "2", "1")  # stop marketing calls
    async with http.get(
        f"{service.base_url}/api/suppression?format=csv", headers={"Authorization": f"Bearer {staff}"}
    ) as resp:
        rows = list(csv.reader(io.StringIO(await resp.text())))
    assert rows[0] == ["phone", "revoked_at", "honor_by"]
    assert call.caller in [row[0] for row in rows[1:]]
