"""Regenerate the sample input files from the sandbox seed (deterministic).

    .venv/bin/python samples/make_samples.py

Writes ``samples/attendees.csv`` (trade-show booth scans, US dates, crossing the US daylight
saving change of 8 March 2026) and ``samples/webinar.xlsx`` (a webinar report with a summary
sheet first and the attendee table starting on row 3, crossing the UK change of 29 March 2026)
and ``samples/webinar-report.csv`` (a webinar platform's attendee report: emails only), plus
three exports as they come out of other tools, for ``eloqua-import init``:
``samples/zoom-attendees.csv`` (Zoom's webinar attendee report with its preamble, host and
panelist blocks and ``--`` cells for no-shows), ``samples/eventbrite-attendees.xlsx`` (an
Eventbrite attendee summary with refunds) and ``samples/badge-scans.csv`` (a badge scanner's
export saved by Excel on Windows: cp1252, ``;``, CRLF, day-first dates).
Every row refers to a seeded sandbox contact with its real name and e-mail address, so both
files import cleanly into ``eloqua-import run ... --sandbox``.
"""

from __future__ import annotations

import csv
import io
import random
import re
import sys
import zipfile
from datetime import datetime, timedelta
from pathlib import Path

from openpyxl import Workbook
from openpyxl.styles import Font

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))  # run from a checkout without installing

from importer.sandbox.seed import CONTACTS  # noqa: E402

Contact = tuple[int, str, str, str]

# Contacts every sample should contain: accents, an apostrophe, a "+" tag, CJK script.
MUST_INCLUDE = (2001, 2002, 2003, 2004, 2005, 2006, 2007)

COMPANIES = (
    "Acme Analytics", "Nordlicht GmbH", "Blue Harbor Logistics", "Café Solutions SARL",
    "Kowalski & Syn", "Fjord Data AS", "Sakura Systems KK", "Emerald Isle Insurance",
    "Pampas Retail SA", "Helix Biotech", "Lumière Médias", "Brightwater Bank",
)  # fmt: skip
CSV_HEADER = (
    "First Name", "Last Name", "Email", "Contact ID", "Company", "Event", "Action",
    "Scan Time", "Booth", "Campaign ID",
)  # fmt: skip
XLSX_HEADER = (
    "Contact ID", "First Name", "Last Name", "Email", "Joined At", "Minutes Attended", "Attended",
)  # fmt: skip


def pick_contacts(rng: random.Random, count: int) -> list[Contact]:
    """``count`` distinct seeded contacts, always including the awkward ones."""
    required = [c for c in CONTACTS if c[0] in MUST_INCLUDE]
    others = [c for c in CONTACTS if c[0] not in MUST_INCLUDE]
    return required + rng.sample(others, count - len(required))


def attendee_rows(rng: random.Random) -> list[dict[str, str]]:
    """60 booth scans over Saturday 7 and Monday 9 March 2026 (US DST starts on the 8th)."""
    scans: list[tuple[datetime, Contact, str]] = []
    for index, contact in enumerate(pick_contacts(rng, 45)):
        day = datetime(2026, 3, 7) if index % 2 == 0 else datetime(2026, 3, 9)
        first = day + timedelta(hours=9, minutes=5 * rng.randrange(0, 96))  # 09:00..16:55
        action = "registered" if index % 7 == 3 else "visited"
        scans.append((first, contact, action))
        if index < 15:  # a third of the visitors came back for a demo
            demo = first + timedelta(minutes=10 + 5 * rng.randrange(0, 10))
            scans.append((demo, contact, "demo"))
    scans.sort(key=lambda scan: (scan[0], scan[1][0]))
    rows = []
    for number, (when, (cid, first_name, last_name, email), action) in enumerate(scans):
        rows.append(
            {
                "First Name": first_name,
                "Last Name": last_name,
                "Email": email,
                "Contact ID": str(cid),
                "Company": COMPANIES[cid % len(COMPANIES)],
                "Event": "Spring Expo 2026",
                "Action": action,
                "Scan Time": when.strftime("%m/%d/%Y %H:%M"),
                "Booth": f"B{cid % 24 + 1:02d}",
                "Campaign ID": "" if number % 9 == 4 else "37",
            }
        )
    return rows


def write_attendees(path: Path) -> int:
    rows = attendee_rows(random.Random(2026))
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=CSV_HEADER, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    return len(rows)


def webinar_rows(rng: random.Random) -> list[tuple[int | float, str, str, str, datetime, int, str]]:
    """55 registrants of a webinar on Thursday 2 April 2026, 14:00 London time (BST).

    Attendees carry the time they joined; no-shows carry the time they registered (in March,
    mostly before the UK clocks changed on 29 March), which the mapping turns into "Registered".
    """
    webinar = datetime(2026, 4, 2, 14, 0)
    rows = []
    for index, (cid, first_name, last_name, email) in enumerate(pick_contacts(rng, 55)):
        attended = index % 10 not in (2, 5, 8)
        if attended:
            joined = webinar + timedelta(minutes=rng.randrange(-3, 20), seconds=rng.randrange(60))
            minutes = rng.randrange(5, 61)
        else:
            # 07:00..21:59 on 10..31 March: never inside the 01:00-02:00 gap of 29 March
            day = datetime(2026, 3, 10 + rng.randrange(22))
            joined = day + timedelta(hours=7, minutes=rng.randrange(15 * 60))
            minutes = 0
        # Files from other tools often hold whole numbers as floats; keep a few (2007 among them).
        contact_id: int | float = float(cid) if cid == 2007 or index % 9 == 6 else cid
        rows.append(
            (contact_id, first_name, last_name, email, joined, minutes, "Yes" if attended else "No")
        )
    return rows


def write_webinar(path: Path) -> int:
    rows = webinar_rows(random.Random(402))
    attended = [row for row in rows if row[6] == "Yes"]
    workbook = Workbook()
    summary = workbook.active
    summary.title = "Summary"
    for line in (
        ("Webinar report",),
        ("Webinar", "Data Privacy in 2026"),
        ("Date", datetime(2026, 4, 2, 14, 0)),
        ("Registrants", len(rows)),
        ("Attended", len(attended)),
        ("Average minutes attended", round(sum(r[5] for r in attended) / len(attended), 1)),
        ("Times are", "Europe/London local time"),
    ):
        summary.append(line)
    summary["A1"].font = Font(bold=True, size=14)
    summary["B3"].number_format = "dd/mm/yyyy hh:mm"
    summary.column_dimensions["A"].width = 26
    summary.column_dimensions["B"].width = 24

    sheet = workbook.create_sheet("Attendees")
    sheet.append(("Webinar: Data Privacy in 2026",))
    sheet["A1"].font = Font(bold=True, size=14)
    sheet.append(())
    sheet.append(XLSX_HEADER)
    for cell in sheet[3]:
        cell.font = Font(bold=True)
    for row in rows:
        sheet.append(row)
        sheet.cell(sheet.max_row, 1).number_format = "0"
        sheet.cell(sheet.max_row, 5).number_format = "dd/mm/yyyy hh:mm:ss"
    for column, width in zip("ABCDEFG", (11, 14, 18, 36, 20, 17, 9), strict=True):
        sheet.column_dimensions[column].width = width

    workbook.properties.creator = "samples/make_samples.py"
    workbook.properties.created = datetime(2026, 4, 2, 16, 0)
    workbook.save(path)
    float_rows = {number for number, row in enumerate(rows, start=4) if isinstance(row[0], float)}
    _rewrite_xlsx(path, "xl/worksheets/sheet2.xml", float_rows)
    return len(rows)


def _rewrite_xlsx(path: Path, sheet_xml: str, float_rows: set[int]) -> None:
    """Store column A of ``float_rows`` as ``2007.0`` and pin every timestamp.

    openpyxl writes 2007.0 as ``<v>2007</v>``, which reads back as an int; files written by
    other tools keep the ``.0``, and the importer must cope. Fixed zip and document dates make
    the file byte-for-byte reproducible.
    """
    with zipfile.ZipFile(path) as source:
        entries = [(info.filename, source.read(info)) for info in source.infolist()]
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as target:
        for name, data in entries:
            text = data.decode("utf-8") if name.endswith(".xml") else None
            if name == sheet_xml and text is not None:
                text = re.sub(
                    r'(<c r="A(\d+)"[^>]*><v>)(\d+)(</v>)',
                    lambda m: m[1] + m[3] + (".0" if int(m[2]) in float_rows else "") + m[4],
                    text,
                )
            if name == "docProps/core.xml" and text is not None:
                text = re.sub(r"(<dcterms:modified[^>]*>)[^<]*", r"\g<1>2026-04-02T16:00:00Z", text)
            payload = text.encode("utf-8") if text is not None else data
            target.writestr(zipfile.ZipInfo(name, date_time=(2026, 4, 2, 16, 0, 0)), payload)


def write_webinar_report(path: Path) -> int:
    """A Zoom-style attendee report: a preamble, then emails only (no contact ids), written
    as people type them: mixed case, stray spaces. Some people joined twice."""
    rng = random.Random(2026_04_16)
    contacts = pick_contacts(rng, 40)
    start = datetime(2026, 4, 16, 11, 0)
    lines = [
        ["Attendee Report"],
        ["Topic", "Scaling Marketing Ops", "Webinar ID", "841 2207 5531"],
        ["Actual Start Time", "Apr 16, 2026 11:00 AM", "Time Zone", "America/Chicago"],
        [],
        ["Attendee Details"],
        ["User Name (Original Name)", "Email", "Join Time", "Leave Time", "Time in Session"],
    ]
    for index, (_, first, last, email) in enumerate(contacts):
        joined = start + timedelta(minutes=rng.randint(-5, 20))
        left = joined + timedelta(minutes=rng.randint(10, 60))
        shown = email.upper() if index % 5 == 0 else email.title() if index % 7 == 0 else email
        padded = f"  {shown} " if index % 3 == 0 else shown
        for when, until in [(joined, left)] + ([(left, left)] if index % 9 == 0 else []):
            lines.append([
                f"{first} {last}", padded, when.strftime("%b %d, %Y %I:%M %p"),
                until.strftime("%b %d, %Y %I:%M %p"), str(max((until - when).seconds // 60, 1)),
            ])  # fmt: skip
    with path.open("w", encoding="utf-8", newline="") as file:
        csv.writer(file, lineterminator="\n").writerows(lines)
    return len(lines) - 6


ZOOM_SECTION = (
    "Attended", "User Name (Original Name)", "Email", "Join Time", "Leave Time",
    "Time in Session (minutes)", "Is Guest", "Country/Region Name",
)  # fmt: skip
ZOOM_ATTENDEES = (
    "Attended", "User Name (Original Name)", "First Name", "Last Name", "Email",
    "Registration Time", "Approval Status", "Join Time", "Leave Time",
    "Time in Session (minutes)", "Is Guest", "Country/Region Name",
)  # fmt: skip
COUNTRIES = ("Spain", "Germany", "France", "Denmark", "Poland", "Japan", "Ireland", "Canada")


def zoom_time(when: datetime) -> str:
    return when.strftime("%b %d, %Y %I:%M:%S %p")


def write_zoom_attendees(path: Path) -> int:
    """Zoom's webinar attendee report as Zoom writes it: a title, when it was generated, the
    webinar's own table, host and panelist blocks, then the attendees. No-shows (Attended No)
    carry ``--`` where a time would be; people who dropped out and came back have two rows.
    Times are in the account's zone (America/New_York here), seconds included."""
    rng = random.Random(2026_03_14)
    contacts = pick_contacts(rng, 22)
    start = datetime(2026, 3, 14, 9, 0)
    attendees = []
    for index, (_, first, last, email) in enumerate(contacts):
        registered = start - timedelta(days=rng.randint(1, 12), minutes=rng.randint(0, 600),
                                       seconds=rng.randint(0, 59))  # fmt: skip
        country = COUNTRIES[index % len(COUNTRIES)]
        name = f"{first} {last}"
        if index % 6 == 4:  # a no-show
            attendees.append(["No", name, first, last, email, zoom_time(registered), "approved",
                              "--", "--", "--", "--", country])  # fmt: skip
            continue
        joined = start + timedelta(minutes=rng.randint(-3, 15), seconds=rng.randint(0, 59))
        visits = [(joined, joined + timedelta(minutes=rng.randint(15, 40)))]
        if index % 7 == 2:  # dropped out and came back
            back = visits[0][1] + timedelta(minutes=rng.randint(2, 6), seconds=rng.randint(0, 59))
            visits.append((back, back + timedelta(minutes=rng.randint(5, 20))))
        for come, go in visits:
            minutes = str(max((go - come).seconds // 60, 1))
            attendees.append(["Yes", name, first, last, email, zoom_time(registered),
                              "approved", zoom_time(come), zoom_time(go), minutes, "No",
                              country])  # fmt: skip
    end = start + timedelta(minutes=65)
    lines = [
        ["Attendee Report"],
        ["Report Generated:", "Mar 14, 2026 11:42 AM"],
        ["Topic", "Webinar ID", "Actual Start Time", "Actual Duration (minutes)",
         "# Registered", "# Cancelled", "Unique Viewers", "Total Users", "Max Concurrent Views"],
        ["Spring Product Launch", "841 2207 5531", "Mar 14, 2026 08:58 AM", "65",
         str(len(contacts)), "1", str(len(contacts) - 4), str(len(attendees)), "17"],
        ["Host Details"],
        list(ZOOM_SECTION),
        ["Yes", "Marketing Team", "webinars@example.com", zoom_time(start - timedelta(minutes=8)),
         zoom_time(end), "73", "No", "United States"],
        ["Panelist Details"],
        list(ZOOM_SECTION),
        ["Yes", "Dana Whitfield", "dana.whitfield@example.com",
         zoom_time(start - timedelta(minutes=5)), zoom_time(end), "70", "No", "United States"],
        ["Attendee Details"],
        list(ZOOM_ATTENDEES),
        *attendees,
    ]  # fmt: skip
    with path.open("w", encoding="utf-8-sig", newline="") as file:
        # Zoom ends every line with a comma: one more, empty, cell than the header names.
        for line in lines:
            file.write(_csv_line(line) + ",\n")
    return len(attendees)


def _csv_line(cells: list[str], delimiter: str = ",") -> str:
    buffer = io.StringIO()
    csv.writer(buffer, delimiter=delimiter, lineterminator="").writerow(cells)
    return buffer.getvalue()


EVENTBRITE_HEADER = (
    "Order #", "Order Date", "First Name", "Last Name", "Email", "Quantity", "Price Tier",
    "Ticket Type", "Attendee #", "Group", "Order Type", "Currency", "Total Paid",
    "Attendee Status", "Event Name", "Event ID", "Venue Name", "Job Title", "Company",
)  # fmt: skip
JOBS = ("Marketing Manager", "Demand Gen Lead", "CMO", "Ops Analyst", "Events Coordinator")


def write_eventbrite(path: Path) -> int:
    """An Eventbrite attendee summary (.xlsx): one row per ticket, order dates as Excel date
    cells in the event's zone, a few refunds and a cancellation, and one buyer with two
    tickets (the same person and order time twice)."""
    rng = random.Random(2026_05_20)
    contacts = pick_contacts(rng, 18)
    workbook = Workbook()
    sheet = workbook.active
    sheet.title = "Attendees"
    sheet.append(EVENTBRITE_HEADER)
    for cell in sheet[1]:
        cell.font = Font(bold=True)
    order = 4_812_331_905
    rows = 0
    for index, (_, first, last, email) in enumerate(contacts):
        order += rng.randint(3, 90)
        ordered = datetime(2026, 4, 1, 8, 0) + timedelta(minutes=rng.randint(0, 40_000))
        tickets = 2 if index == 5 else 1
        status = "Refunded" if index in (3, 11) else "Not Attending" if index == 8 else (
            "Checked In" if index % 3 == 0 else "Attending")  # fmt: skip
        vip = index % 4 == 1
        for ticket in range(tickets):
            sheet.append((
                order, ordered, first, last, email, tickets, "", "VIP" if vip else "General",
                order * 10 + ticket + 1, "", "Eventbrite Completed", "USD",
                (249.0 if vip else 99.0) * tickets, status, "Customer Summit 2026",
                893_204_117, "Moscone West", JOBS[index % len(JOBS)],
                COMPANIES[index % len(COMPANIES)],
            ))  # fmt: skip
            sheet.cell(sheet.max_row, 2).number_format = "yyyy-mm-dd hh:mm:ss"
            rows += 1
    for column, width in zip("ABCDE", (13, 20, 12, 14, 34), strict=True):
        sheet.column_dimensions[column].width = width
    workbook.properties.creator = "Eventbrite"
    workbook.properties.created = datetime(2026, 5, 20, 9, 0)
    workbook.save(path)
    _pin_xlsx_dates(path, datetime(2026, 5, 20, 9, 0))
    return rows


def _pin_xlsx_dates(path: Path, when: datetime) -> None:
    """Fixed zip and document dates, so the file is byte-for-byte reproducible."""
    with zipfile.ZipFile(path) as source:
        entries = [(info.filename, source.read(info)) for info in source.infolist()]
    stamp = when.strftime("%Y-%m-%dT%H:%M:%SZ")
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as target:
        for name, data in entries:
            if name == "docProps/core.xml":
                text = re.sub(r"(<dcterms:modified[^>]*>)[^<]*", rf"\g<1>{stamp}", data.decode())
                data = text.encode()
            target.writestr(zipfile.ZipInfo(name, date_time=when.timetuple()[:6]), data)


BADGE_HEADER = (
    "Badge ID", "First Name", "Last Name", "Company", "E-mail", "Scan Date", "Booth",
    "Scanned By", "Notes",
)  # fmt: skip
NOTES = ("", "", "", "Wants a demo; call back next week", "Budget 50 k€", "N/A", "Met the CEO")


def write_badge_scans(path: Path) -> int:
    """A badge scanner's export opened and saved by Excel on Windows (French regional
    settings): cp1252, ';' between cells, CRLF line ends, day-first dates without seconds,
    'N/A' where the scanner had nothing, and the empty ';;;' line Excel leaves at the end."""
    rng = random.Random(2026_03_15)
    fits = [c for c in CONTACTS if _encodes(c, "cp1252")]
    required = [c for c in fits if c[0] in (2001, 2003, 2012)]  # José, François, Chloé
    others = [c for c in fits if c not in required]
    contacts = required + rng.sample(others, 17)
    lines = [list(BADGE_HEADER)]
    for index, (cid, first, last, email) in enumerate(contacts):
        day = datetime(2026, 3, 14) if index % 2 == 0 else datetime(2026, 3, 15)
        when = day + timedelta(hours=9, minutes=rng.randrange(0, 8 * 60))
        company = "N/A" if index % 8 == 5 else COMPANIES[cid % len(COMPANIES)]
        lines.append([
            f"BX-{40_210 + index * 7}", first, last, company, email,
            when.strftime("%d/%m/%Y %H:%M"),
            f"Hall {1 + index % 3} / {chr(65 + index % 4)}{10 + index % 9}",
            "Tablet 2" if index % 2 else "Tablet 1", NOTES[index % len(NOTES)],
        ])  # fmt: skip
    lines.append([""] * len(BADGE_HEADER))
    text = "".join(_csv_line(line, ";") + "\r\n" for line in lines)
    path.write_bytes(text.encode("cp1252"))
    return len(contacts)


def _encodes(contact: Contact, encoding: str) -> bool:
    try:
        "".join(contact[1:]).encode(encoding)
    except UnicodeEncodeError:
        return False
    return True


def main() -> None:
    print(f"attendees.csv: {write_attendees(HERE / 'attendees.csv')} rows")
    print(f"webinar.xlsx: {write_webinar(HERE / 'webinar.xlsx')} rows")
    print(f"webinar-report.csv: {write_webinar_report(HERE / 'webinar-report.csv')} rows")
    print(f"zoom-attendees.csv: {write_zoom_attendees(HERE / 'zoom-attendees.csv')} rows")
    print(f"eventbrite-attendees.xlsx: {write_eventbrite(HERE / 'eventbrite-attendees.xlsx')} rows")
    print(f"badge-scans.csv: {write_badge_scans(HERE / 'badge-scans.csv')} rows")


if __name__ == "__main__":
    main()
