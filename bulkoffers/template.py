"""`bulkoffers template`: a starter spreadsheet with every column and example rows."""

from __future__ import annotations

import csv
from pathlib import Path

from .errors import ConfigError
from .columns import FIELDS

EXAMPLE_ROWS = [
    {"offer_key": "spring-banner", "name": "Spring sale fallback", "description": "Shown when nothing else fits",
     "status": "approved", "start_date": "2026-03-01", "end_date": "2026-05-31", "priority": "1",
     "tags": "", "channel": "web", "placement": "offerPlacement1234", "component_type": "imagelink",
     "format": "", "delivery_url": "https://example.com/img/spring.png", "link_url": "https://example.com/spring",
     "content": "", "language": "en"},
    {"offer_key": "spring-banner", "name": "", "description": "", "status": "", "start_date": "", "end_date": "",
     "priority": "", "tags": "", "channel": "email", "placement": "offerPlacementMail01", "component_type": "html",
     "format": "text/html", "delivery_url": "", "link_url": "", "content": "<p>Spring sale: 20% off</p>",
     "language": "en,fr"},
]
NOTES = {
    "offer_key": "rows with the same key become one offer (optional; without it, rows with the same name do)",
    "name": "required; should be unique in the sandbox",
    "status": "draft, approved or archived (empty: --status, default approved)",
    "start_date": "YYYY-MM-DD or YYYY-MM-DDTHH:MM:SS (UTC unless an offset is given)",
    "end_date": "after start_date; a date alone means the end of that day",
    "channel": "web, email, mobile, push, sms, inapp, code ... or a full channel URI",
    "placement": "placement id (xcore: xcore:offer-placement:...)",
    "component_type": "imagelink, html, text or json",
    "format": "MIME type; empty: guessed from the type or the URL",
    "language": "comma list, default en",
}


def write_template(out: Path) -> None:
    suffix = out.suffix.lower()
    if suffix == ".csv":
        with out.open("w", newline="", encoding="utf-8") as fh:
            writer = csv.DictWriter(fh, fieldnames=FIELDS)
            writer.writeheader()
            writer.writerows(EXAMPLE_ROWS)
        return
    if suffix not in (".xlsx", ".xlsm"):
        raise ConfigError(f"cannot write a template as {suffix or 'a file without suffix'}", hint="use .xlsx or .csv")
    from openpyxl import Workbook
    from openpyxl.comments import Comment
    from openpyxl.styles import Font

    book = Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.title = "offers"
    sheet.append(list(FIELDS))
    for cell in sheet[1]:
        cell.font = Font(bold=True)
        if note := NOTES.get(str(cell.value)):
            cell.comment = Comment(note, "bulkoffers")
    for row in EXAMPLE_ROWS:
        sheet.append([row[f] for f in FIELDS])
    # Text cells, so spreadsheet programs keep leading zeros and do not turn codes into numbers.
    for column in sheet.iter_cols(min_row=2, max_row=200):
        for cell in column:
            cell.number_format = "@"
    sheet.freeze_panes = "A2"
    try:
        book.save(out)
    except OSError as exc:
        raise ConfigError(f"cannot write {out}: {exc.strerror}") from exc
