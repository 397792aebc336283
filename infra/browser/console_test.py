#!/usr/bin/env python3
"""The managers' console in a real browser, as a manager who has never seen the API uses it.

Run by `infra/browser/run.sh`, which starts `portal-invites serve --demo` on a free port with a
fresh data dir and passes its banner, data dir and binary here. Headless Chromium (the system's
`/usr/bin/chromium`, driven by Playwright for Python), on a laptop-sized screen unless said:

a. the banner's one-time sign-in link signs in (OpenID Connect code + PKCE against the local
   provider) and lands on Invitations; the link does not work twice; the first load is
   measured (bytes transferred, asserted ≤ 150 KB) and the shell's headers checked;
b. Load counts shows the tiles (click-to-tiles time reported, not asserted), equal to the API's
   counts; the Not sent tile drills into its list, searchable, and its CSV downloads with one
   row per contact of the count;
c. a template edited with an unknown merge tag shows the server's error at the field; fixed,
   its preview shows the merge fields filled in; saved;
d. Compose and send states how many contacts in how many divisions, sends after the
   confirmation, and the campaign page shows progress, then the chart of the eight categories
   with the success rate; a category drills into its recipients; the campaign is in the
   division's history; a second send to the same division shows when it can be sent again;
e. ticked rows are invited as a hand-picked campaign;
f. a read-only sign-in sees no send control, and a forced send shows the permission message;
g. a sign-up request is matched from the queue (its portal key email goes out);
h. a recurring setting is saved and its next run previewed;
j. the Senders page shows the demo's allowed domains and each division's sender as allowed; an
   address is added and saved, a bad domain is refused at the field; Compose and send offers
   the allowed senders and refuses another at the field, before any confirmation;
i. every page: no serious or critical accessibility violation (axe-core, injected), no request
   to another host, no Content-Security-Policy violation, a screenshot (laptop and phone).

Any failed check raises AssertionError: the script exits non-zero.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import re
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

from playwright.sync_api import Page, expect, sync_playwright

from support import Api, step

TENANT = "demo"
LAPTOP = {"width": 1280, "height": 900}
PHONE = {"width": 390, "height": 844}
ALL_PERMISSIONS = "invitations:read,invitations:send,registrations:manage,settings:manage,sync:write"
FIRST_LOAD_BUDGET = 150 * 1024
expect.set_options(timeout=15_000)


def cli(binary: str, data_dir: Path, *args: str) -> str:
    out = subprocess.run([binary, *args, "--data-dir", str(data_dir)], check=True, capture_output=True, text=True)
    return out.stdout.strip()


class Session:
    """One browser context signed in with one sign-in link; checks every page it shows."""

    def __init__(self, browser, base: str, shots: Path, axe_js: str, viewport=LAPTOP, name="laptop") -> None:
        self.base = base
        self.origin = "{0}://{1}".format(*urllib.parse.urlsplit(base)[:2])
        self.shots = shots
        self.axe_js = axe_js
        self.name = name
        self.context = browser.new_context(viewport=viewport, accept_downloads=True)
        self.page: Page = self.context.new_page()
        self.foreign: list[str] = []
        self.csp: list[str] = []
        self.errors: list[str] = []
        self.screens: list[Path] = []
        self.context.on("request", self._request)
        self.page.on("console", self._console)
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))

    def _request(self, r) -> None:
        if not (r.url.startswith(self.origin + "/") or r.url.startswith(("data:", "blob:", "about:"))):
            self.foreign.append(r.url)

    def _console(self, msg) -> None:
        if "Content Security Policy" in msg.text or "Refused to" in msg.text:
            self.csp.append(msg.text)

    def goto(self, hash_path: str, heading: str) -> None:
        self.page.goto(f"{self.base}/console#/{hash_path}")
        self.heading(heading)

    def heading(self, text: str) -> None:
        expect(self.page.get_by_role("heading", level=1)).to_have_text(re.compile(text))

    def check(self, label: str) -> None:
        """Screenshot, accessibility scan, and the page's clean record so far."""
        self.page.wait_for_timeout(150)
        path = self.shots / f"console-{self.name}-{label}.png"
        self.page.screenshot(path=str(path), full_page=True)
        self.screens.append(path)
        self.page.evaluate(self.axe_js)
        result = self.page.evaluate(
            "async () => { const r = await axe.run(document, {resultTypes: ['violations']});"
            " return r.violations.map(v => ({id: v.id, impact: v.impact, help: v.help,"
            " nodes: v.nodes.slice(0, 3).map(n => n.target.join(' '))})); }"
        )
        bad = [v for v in result if v["impact"] in ("serious", "critical")]
        assert not bad, f"{label}: accessibility violations: {json.dumps(bad, indent=1)}"
        minor = [f"{v['id']} ({v['impact']})" for v in result]
        if minor:
            print(f"    axe, {label}: minor: {', '.join(minor)}")
        assert not self.foreign, f"{label}: requests to other hosts: {self.foreign}"
        assert not self.csp, f"{label}: CSP violations: {self.csp}"
        assert not self.errors, f"{label}: script errors: {self.errors}"

    def close(self) -> None:
        self.context.close()


# --- a. sign in ------------------------------------------------------------------------------


def sign_in(s: Session, link: str) -> dict:
    step(f"a. sign in with the one-time link ({s.name})")
    res = s.page.goto(link)
    s.heading("Invitations")
    assert s.page.url.startswith(f"{s.base}/console"), s.page.url
    total = first_load_bytes(s.base)
    print(f"    first load: {total / 1024:.1f} KB (the shell and its gzipped assets, headers included, uncached)")
    assert total <= FIRST_LOAD_BUDGET, f"the console's first load is {total} bytes (> {FIRST_LOAD_BUDGET})"
    # PKCE without WebCrypto (a phone on http://192.168.x.y): the plain SHA-256 agrees.
    same = s.page.evaluate(
        "async () => { const hex = b => [...new Uint8Array(b)].map(x => x.toString(16).padStart(2, '0')).join('');"
        " const out = []; for (const n of [0, 3, 55, 56, 64, 119, 1000]) {"
        " const bytes = new TextEncoder().encode('a'.repeat(n));"
        " out.push(hex(await crypto.subtle.digest('SHA-256', bytes)) === hex(C.sha256Plain(bytes))); }"
        " return out; }"
    )
    assert all(same), f"the plain SHA-256 differs from WebCrypto's for some lengths: {same}"
    return {"first_load_bytes": total}


def first_load_bytes(base: str) -> int:
    """What a browser with an empty cache transfers to show the console: the shell page and
    every asset it names, bodies and headers, asking for gzip as browsers do."""
    total = 0
    with urllib.request.urlopen(f"{base}/console", timeout=10) as r:
        body = r.read()
        total += len(body) + len(str(r.headers))
    for a in re.findall(r'/console/assets/[A-Za-z0-9.]+', body.decode()):
        req = urllib.request.Request(f"{base}{a}", headers={"Accept-Encoding": "gzip"})
        with urllib.request.urlopen(req, timeout=10) as r:
            assert r.headers["Content-Encoding"] == "gzip", f"{a} was not gzipped"
            total += len(r.read()) + len(str(r.headers))
    return total


def shell_headers(base: str) -> None:
    with urllib.request.urlopen(f"{base}/console", timeout=10) as r:
        csp = r.headers["Content-Security-Policy"]
        body = r.read().decode()
        assert r.headers["Cache-Control"] == "no-store", r.headers["Cache-Control"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp, csp
    assert "frame-ancestors 'none'" in csp, csp
    assets = re.findall(r'/console/assets/(app\.[0-9a-f]{12}\.(?:css|js))', body)
    assert len(assets) == 2, f"expected a hashed stylesheet and script in the shell, got {assets}"
    for a in assets:
        with urllib.request.urlopen(f"{base}/console/assets/{a}", timeout=10) as r:
            assert "immutable" in r.headers["Cache-Control"], r.headers["Cache-Control"]


def link_is_one_time(browser, link: str, base: str) -> None:
    ctx = browser.new_context()
    page = ctx.new_page()
    res = page.goto(link)
    assert res is not None and res.status == 410, f"a used sign-in link answered {res and res.status}"
    expect(page.get_by_role("heading", level=1)).to_have_text(re.compile("used"))
    ctx.close()


# --- b. counts, lists, CSV --------------------------------------------------------------------


def load_counts(s: Session, api: Api, division: str) -> dict:
    step("b. Load counts for one division")
    page = s.page
    s.goto("invitations", "Invitations")
    s.check("invitations")
    divisions = {d["division_id"]: d for d in api.call("GET", "/v1/divisions?limit=500")["items"]}
    page.get_by_label(re.compile(re.escape(f"({division})"))).check()
    started = time.monotonic()
    page.get_by_role("button", name="Load counts").click()
    tiles = page.get_by_test_id("send-tiles")
    expect(tiles).to_be_visible()
    click_ms = (time.monotonic() - started) * 1000
    server_ms = page.get_by_role("region", name="Counts").get_attribute("data-load-ms")
    print(f"    counts shown {click_ms:.0f} ms after the click (fetch {server_ms} ms)")
    counts = api.call("POST", "/v1/invitations/counts", {"division_ids": [division], "limit_to_uninvited": True})
    for group, title in [("total", "Total contacts"), ("not_sent", "Not sent"), ("eligible", "Eligible now"), ("suppressed", "Suppressed")]:
        tile = page.get_by_role("link", name=re.compile(f"^{counts[group]:,} {title}"))
        expect(tile).to_be_visible()
    # Contacts sharing an address get one invitation between them: a note under the tiles.
    note = page.get_by_test_id("duplicate-address")
    if counts["duplicate_address"]:
        expect(note).to_contain_text(f"{counts['duplicate_address']:,} of the eligible share an address")
        expect(note).to_contain_text(f"a send now emails {counts['eligible'] - counts['duplicate_address']:,}")
    else:
        expect(note).to_have_count(0)
    print(f"    {counts['duplicate_address']} eligible contact(s) share an address with another")
    s.check("counts")

    step("b. a filter whose choices come from the data: its count is the Total tile")
    values = api.call("GET", f"/v1/divisions/filter-values?division_id={division}")
    top = max(values["all"]["account_class"], key=lambda v: v["count"])
    choice = page.get_by_role("group", name="Account class").get_by_label(f"{top['value']} ({top['count']:,})")
    choice.check()
    page.get_by_role("button", name="Load counts").click()
    expect(page.get_by_role("link", name=re.compile(f"^{top['count']:,} Total contacts"))).to_be_visible()
    print(f"    account class {top['value']}: {top['count']:,} contacts")
    s.check("counts-filtered")
    choice.uncheck()
    page.get_by_role("button", name="Load counts").click()
    expect(page.get_by_role("link", name=re.compile(f"^{counts['total']:,} Total contacts"))).to_be_visible()
    return {"counts": counts, "click_ms": click_ms, "fetch_ms": server_ms, "division_name": divisions[division]["name"]}


def drill_not_sent(s: Session, counts: dict) -> None:
    step("b. drill into Not sent: search, CSV")
    page = s.page
    page.get_by_role("link", name=re.compile(r"^[\d,]+ Not sent")).click()
    s.heading("Not sent")
    rows = page.locator("tbody tr")
    expect(rows.first).to_be_visible()
    first_email = rows.first.locator("td").nth(1).locator(".muted").inner_text()
    s.check("list-not-sent")
    page.get_by_label("Search contacts").fill(first_email)
    page.get_by_role("button", name="Search").click()
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text(first_email)
    page.get_by_label("Search contacts").fill("")
    page.get_by_role("button", name="Search").click()
    expect(page.get_by_role("button", name="Next page")).to_be_enabled()
    with page.expect_download() as dl:
        page.get_by_role("button", name="Download CSV").click()
    text = Path(dl.value.path()).read_text()
    parsed = list(csv.reader(io.StringIO(text)))
    assert parsed[0][:2] == ["contact_id", "email"], parsed[0]
    assert len(parsed) - 1 == counts["not_sent"], f"the CSV has {len(parsed) - 1} rows, Not sent says {counts['not_sent']}"
    print(f"    {dl.value.suggested_filename}: {len(parsed) - 1} rows")


# --- c. a template edited: an unknown tag refused at its field, the preview, saved ----------------


def edit_template(s: Session, api: Api) -> None:
    step("c. edit a template: an unknown merge tag is shown at its field; fixed, previewed, saved")
    page = s.page
    templates = api.call("GET", "/v1/templates?limit=500")["items"]
    t = next(t for t in templates if t.get("kind", "invitation") == "invitation")
    s.goto("templates", "Templates")
    s.check("templates")
    page.get_by_role("link", name=f"Edit {t['name']}").click()
    subject = page.get_by_label("Subject", exact=True)
    expect(subject).to_have_value(t["subject"])
    subject.fill("[DivisionName]: your portal login, [FirstNam]")
    error = page.locator(".field .error")
    expect(error).to_contain_text("[FirstNam]")
    expect(subject).to_have_attribute("aria-invalid", "true")
    s.check("template-bad-tag")
    subject.fill("[DivisionName]: ")
    subject.press("End")
    page.get_by_role("button", name="Insert [ContactName]").click()
    expect(subject).to_have_value("[DivisionName]: [ContactName]")
    expect(error).to_have_count(0)
    frame = page.frame_locator('iframe[title="Email preview"]')
    expect(frame.locator("body")).to_contain_text("Alex Sample")
    expect(page.get_by_text(re.compile(r"Cedar Park Condominiums: Alex Sample"))).to_be_visible()
    # Leaving with unsaved changes asks first; staying keeps them.
    asked = []
    page.once("dialog", lambda d: (asked.append(d.message), d.dismiss()))
    page.get_by_role("link", name="Campaigns", exact=True).click()
    deadline = time.monotonic() + 10
    while not asked and time.monotonic() < deadline:
        page.wait_for_timeout(50)
    assert asked and "unsaved changes" in asked[0], asked
    expect(subject).to_have_value("[DivisionName]: [ContactName]")
    assert "#/templates/" in page.url, page.url
    page.get_by_role("button", name="Save template").click()
    expect(page.get_by_text(re.compile("[Ss]aved"))).to_be_visible()
    saved = api.call("GET", f"/v1/templates/{t['template_id']}")
    assert saved["subject"] == "[DivisionName]: [ContactName]", saved["subject"]
    s.check("template-saved")


# --- d. compose, send, watch, read the results ---------------------------------------------------


def send_and_watch(s: Session, api: Api, division: str, division_name: str, counts: dict, binary: str, data_dir: Path) -> str:
    step("d. Compose and send to the counted division, watch it, read the chart")
    page = s.page
    s.goto("invitations", "Invitations")
    expect(page.get_by_test_id("send-tiles")).to_be_visible()  # the counts loaded before
    page.get_by_role("link", name="Compose and send").click()
    s.heading("Compose and send")
    emailed = counts["eligible"] - counts["duplicate_address"]
    expect(page.get_by_text(f"{emailed:,} contacts in 1 division")).to_be_visible()
    divisions = {d["division_id"]: d for d in api.call("GET", "/v1/divisions?limit=500")["items"]}
    expect(page.get_by_label("Email from")).to_have_value(divisions[division]["email_from"])
    s.check("compose")
    page.get_by_role("button", name="Send invitations").click()
    dialog = page.get_by_role("dialog")
    expect(dialog).to_contain_text(f"{emailed:,} contacts in 1 division")
    s.check("send-confirmation")
    dialog.get_by_role("button", name="Send now").click()
    s.heading("Campaign of")
    campaign_id = page.url.rsplit("/", 1)[-1]
    assert re.fullmatch(r"[0-9a-f]{32}", campaign_id), page.url
    expect(page.get_by_role("progressbar", name="Invitations sent")).to_be_visible()
    # One email per person: contacts sharing an address with another are skipped.
    expect(page.locator(".progress-words")).to_contain_text(f"{emailed:,} of {emailed:,} sent", timeout=60_000)
    expect(page.locator(".progress-words")).to_contain_text("Completed")
    sent = api.call("GET", f"/v1/campaigns/{campaign_id}")
    assert sent["skipped"]["duplicate_address"] == counts["duplicate_address"], sent["skipped"]
    print(f"    campaign {campaign_id}: {emailed:,} sent, {counts['duplicate_address']} skipped for a shared address")
    # SES's events, made up and fed through the webhook's core, then the chart again.
    cli(binary, data_dir, "simulate-events", "--campaign", campaign_id, "--tenant", TENANT, "--register-share", "0.3")
    stats = api.call("GET", f"/v1/campaigns/{campaign_id}")["statistics"]
    page.get_by_role("button", name="Refresh results").click()
    chart = page.get_by_role("list", name="Invitations by category")
    for cat in ["in_process", "failed", "unopened", "bounced", "opened", "clicked", "unsubscribed", "registered"]:
        label = cat.replace("_", " ").capitalize()
        expect(chart.get_by_role("listitem").filter(has=page.get_by_role("link", name=label, exact=True))).to_contain_text(f"{stats[cat]:,}")
    rate = f"{stats['success_rate'] * 100:.1f}%"
    expect(page.get_by_text(rate, exact=True)).to_be_visible()
    print(f"    chart: {', '.join(f'{k} {stats[k]}' for k in ['unopened', 'opened', 'clicked', 'registered', 'bounced'])}; success rate {rate}")
    s.check("campaign")

    step("d. drill into Opened; the campaign is in the division's history")
    chart.get_by_role("link", name="Opened", exact=True).click()
    s.heading("Opened")
    rows = page.locator("tbody tr")
    expect(rows.first).to_be_visible()
    expected_rows = min(stats["opened"], 50)
    expect(rows).to_have_count(expected_rows)
    s.check("campaign-recipients")
    page.get_by_role("link", name="Campaigns", exact=True).click()
    s.heading("Campaigns")
    page.get_by_label("Division").select_option(division)
    expect(page.locator(f"a[href$='{campaign_id}']").first).to_be_visible()
    s.check("history")

    step("d. a second bulk send to the division says when it can be sent again")
    s.goto("invitations", "Invitations")
    page.get_by_role("link", name="Compose and send").click()
    s.heading("Compose and send")
    page.get_by_role("button", name="Send invitations").click()
    page.get_by_role("dialog").get_by_role("button", name="Send now").click()
    alert = page.get_by_role("alert")
    expect(alert).to_contain_text(f"{division_name} was sent less than 24 hours ago")
    expect(alert).to_contain_text("can be sent again after")
    s.check("send-held")
    return campaign_id


# --- e. ticked rows, invited as a hand-picked campaign ----------------------------------------------


def invite_picked(s: Session, api: Api) -> None:
    step("e. tick two rows of Not sent in another division and invite just those")
    page = s.page
    s.goto("invitations", "Invitations")
    page.get_by_label(re.compile(r"\(oak-hills\)")).uncheck()
    page.get_by_label(re.compile(r"\(cedar-park\)")).check()
    page.get_by_role("button", name="Load counts").click()
    expect(page.get_by_test_id("send-tiles")).to_be_visible()
    page.get_by_role("link", name=re.compile(r"^[\d,]+ Not sent")).click()
    s.heading("Not sent")
    rows = page.locator("tbody tr").filter(has=page.get_by_role("button", name=re.compile("^Invite ")))
    expect(rows.first).to_be_visible()
    picked = []
    for i in range(2):
        row = rows.nth(i)
        row.get_by_role("checkbox").check()
        picked.append(row.locator("td").nth(1).locator(".muted").inner_text())
    expect(page.get_by_text("2 selected")).to_be_visible()
    s.check("list-picked")
    # One more, invited on its own from its row.
    third = rows.nth(2)
    one = third.locator("td").nth(1).locator(".muted").inner_text()
    third.get_by_role("button", name=re.compile("^Invite ")).click()
    dialog = page.get_by_role("dialog")
    expect(dialog).to_contain_text(one)
    s.check("invite-one")
    dialog.get_by_role("button", name="Send invitation").click()
    expect(page.get_by_role("status")).to_contain_text(f"Invitation sent to {one}")
    page.get_by_role("link", name="See how it fares").click()
    s.heading("Campaign of")
    expect(page.locator(".progress-words")).to_contain_text("1 of 1 sent", timeout=30_000)
    page.go_back()
    s.heading("Not sent")
    rows = page.locator("tbody tr").filter(has=page.get_by_role("button", name=re.compile("^Invite ")))
    for i in range(2):
        rows.nth(i).get_by_role("checkbox").check()
    expect(page.get_by_text("2 selected")).to_be_visible()
    page.get_by_role("button", name="Invite selected").click()
    s.heading("Compose and send")
    expect(page.get_by_text("2 hand-picked contacts")).to_be_visible()
    page.get_by_role("button", name="Send invitations").click()
    dialog = page.get_by_role("dialog")
    expect(dialog).to_contain_text("2 hand-picked contacts")
    dialog.get_by_role("button", name="Send now").click()
    s.heading("Campaign of")
    expect(page.locator(".progress-words")).to_contain_text("2 of 2 sent", timeout=60_000)
    campaign_id = page.url.rsplit("/", 1)[-1]
    view = api.call("GET", f"/v1/campaigns/{campaign_id}")
    assert view.get("selection", {}).get("contacts") == 2, view
    sent = api.call("POST", f"/v1/campaigns/{campaign_id}/recipients", {})["items"]
    assert sorted(r["email"].lower() for r in sent) == sorted(e.lower() for e in picked), (sent, picked)
    print(f"    hand-picked campaign {campaign_id}: {', '.join(picked)}")
    s.check("campaign-picked")


# --- g. a registration request, matched from the queue -------------------------------------------


def outbox(base: str) -> list[dict]:
    """The newest 1,000 messages of the server's outbox (`GET /dev/outbox`: file, to, subject)."""
    with urllib.request.urlopen(f"{base}/dev/outbox?limit=1000", timeout=10) as r:
        return json.load(r)


def match_request(s: Session, api: Api, data_dir: Path) -> None:
    step("g. a sign-up request filed on the public page, matched from the console's queue")
    division = "river-bend"
    person = api.call("POST", "/v1/invitations/recipients", {"division_ids": [division], "group": "eligible", "limit": 1})["items"][0]
    addr = person["email"]
    page = s.page
    page.goto(f"{s.base}/register/request?tenant={TENANT}")
    page.fill("#name", person["contact_name"])
    page.fill("#email", addr)
    page.fill("#phone", "+1 555 010 0142")
    page.fill("#address", "4 Riverside Walk, River Bend")
    page.select_option("#division_id", division)
    page.locator("form button[type=submit], form input[type=submit]").first.click()
    expect(page.get_by_role("heading", level=1)).to_have_text(re.compile("Request received"))
    before = {e["file"] for e in outbox(s.base)}

    s.goto("requests", "Registration requests")
    s.check("requests")
    page.get_by_role("link", name=person["contact_name"]).first.click()
    expect(page.get_by_role("heading", name="Suggested matches")).to_be_visible()
    s.check("request")
    page.get_by_role("button", name=re.compile("^Match with")).first.click()
    page.get_by_role("dialog").get_by_role("button", name="Match and send portal key").click()
    expect(page.get_by_role("heading", name="Matched: portal key email sent")).to_be_visible()
    s.check("request-matched")
    deadline = time.monotonic() + 30
    while True:
        fresh = [e["file"] for e in outbox(s.base) if e["file"] not in before and addr.lower() in e["to"].lower()]
        if fresh:
            break
        assert time.monotonic() < deadline, f"no portal key email to {addr} within 30 s"
        time.sleep(0.2)
    print(f"    matched {person['contact_name']} <{addr}>; portal key email {fresh[0]}")


# --- h. a recurring setting, saved and previewed -----------------------------------------------------


def recurring_setting(s: Session, api: Api) -> None:
    step("h. a recurring invitation saved, then its next run previewed")
    page = s.page
    s.goto("recurring", "Recurring invitations")
    page.get_by_role("link", name="New recurring invitation").click()
    page.get_by_label("Name").fill("weekday-welcome")
    # A filter value offered from the data.
    values = api.call("GET", "/v1/divisions/filter-values")["all"]["account_class"]
    offered = next(v["value"] for v in values if v["value"])
    page.get_by_role("button", name=f"Add account class {offered}").click()
    expect(page.get_by_label("Account class", exact=True)).to_have_value(offered)
    s.check("recurring-new")
    page.get_by_role("button", name="Save recurring invitation").click()
    expect(page.get_by_text(re.compile("^Saved\\."))).to_be_visible()
    saved = api.call("GET", "/v1/recurring/weekday-welcome")
    assert saved["filters"]["account_class"] == [offered], saved["filters"]
    print(f"    saved: {json.dumps(saved)[:200]}")
    page.get_by_role("button", name="Preview next run").click()
    preview = api.call("POST", "/v1/recurring/weekday-welcome/preview", {})
    section = page.locator("section").filter(has=page.get_by_role("heading", name="Who the next run would target"))
    expect(section).to_be_visible()
    numbers = {v for k, v in preview.items() if isinstance(v, int) and v > 0}
    expect(section).not_to_contain_text("Counting")
    shown = section.inner_text()
    assert any(f"{n:,}" in shown for n in numbers), f"the preview shows none of {numbers}: {shown[:400]}"
    s.check("recurring-preview")


# --- j. sender settings ---------------------------------------------------------------------------


def sender_settings(s: Session, api: Api) -> None:
    step("j. sender settings: the demo's domains, an address added, the send form offering only allowed senders")
    page = s.page
    s.goto("senders", "Senders")
    domains = page.get_by_label("Domains")
    expect(domains).to_have_value(re.compile("oakhills.example.com"))
    table = page.get_by_role("table", name="Each division's default sender")
    expect(table.get_by_role("row")).to_have_count(4)
    expect(table).not_to_contain_text("Not allowed")
    page.get_by_label("Single addresses").fill("Office@MapleCourt.example")
    page.get_by_role("button", name="Save senders").click()
    expect(page.get_by_text(re.compile("^Saved "))).to_be_visible()
    saved = api.call("GET", "/v1/settings/senders")
    assert saved["addresses"] == ["Office@MapleCourt.example"], saved
    assert "riverbend.example.net" in saved["domains"], saved
    # A domain that is not one: refused at the field, nothing saved.
    domains.fill("oakhills.example.com\nnot a domain")
    page.get_by_role("button", name="Save senders").click()
    expect(page.locator(".field .error")).to_contain_text("domains")
    assert api.call("GET", "/v1/settings/senders")["domains"] == saved["domains"]
    domains.fill("\n".join(saved["domains"]))
    # The sender name: a preview with the first division's name, saved; a merge tag other
    # than [DivisionName] is refused at the field.
    name = page.get_by_label("Sender name")
    name.fill("[ContactName] at Demo Property")
    page.get_by_role("button", name="Save senders").click()
    expect(page.locator(".field .error")).to_contain_text("[ContactName]")
    name.fill("[DivisionName] via Demo Property")
    expect(page.get_by_text(re.compile("Inboxes show: .+ via Demo Property"))).to_be_visible()
    page.get_by_role("button", name="Save senders").click()
    expect(page.get_by_text(re.compile("^Saved "))).to_be_visible()
    assert api.call("GET", "/v1/settings/senders")["display_name"] == "[DivisionName] via Demo Property"
    s.check("senders")

    s.goto("invitations/send", "Compose and send")
    sender = page.get_by_label("Email from")
    expect(sender).to_have_value(re.compile("@(oakhills|riverbend|cedarpark)\\.example\\.(com|net|org)$"))
    expect(page.locator("datalist option[value='Office@MapleCourt.example']")).to_have_count(1)
    sender.fill("ceo@othertenant.example")
    page.get_by_role("button", name="Send invitations").click()
    expect(page.locator(".field .error")).to_contain_text("Send from an allowed sender")
    assert page.get_by_role("dialog").count() == 0, "no send is offered from a sender not allowed"
    s.check("send-sender-not-allowed")


# --- f. read-only ------------------------------------------------------------------------------


def read_only(browser, base: str, shots: Path, axe_js: str, binary: str, data_dir: Path) -> None:
    step("f. a read-only sign-in: no send control, a forced send explains the permission")
    link = cli(binary, data_dir, "sign-in-link", "--url", base, "--tenant", TENANT, "--permissions", "invitations:read", "--sub", "read-only-manager")
    s = Session(browser, base, shots, axe_js, name="read-only")
    try:
        s.page.goto(link)
        s.heading("Invitations")
        s.page.get_by_role("button", name="Load counts").click()
        expect(s.page.get_by_test_id("send-tiles")).to_be_visible()
        expect(s.page.get_by_text("can read counts but not send")).to_be_visible()
        assert s.page.get_by_role("link", name="Compose and send").count() == 0
        assert s.page.get_by_role("button", name=re.compile("^Send")).count() == 0
        s.page.get_by_role("link", name=re.compile(r"^[\d,]+ Not sent")).click()
        s.heading("Not sent")
        expect(s.page.locator("tbody tr").first).to_be_visible()
        assert s.page.get_by_role("button", name="Invite").count() == 0
        assert s.page.get_by_role("checkbox").count() == 0
        s.check("read-only-list")
        # Forced: the send page by its address, and the API call the page would make.
        s.page.goto(f"{base}/console#/invitations/send")
        expect(s.page.get_by_role("alert")).to_contain_text("You do not have permission")
        expect(s.page.get_by_role("alert")).to_contain_text("invitations:send")
        status = s.page.evaluate(
            "async () => { try { await C.api('POST', '/v1/campaigns', {body: {division_ids: ['oak-hills'], template_id: 'welcome'}}); return 0; }"
            " catch (e) { document.getElementById('main').append(C.problem(e)); return e.status; } }"
        )
        assert status == 403, f"a forced send answered {status}"
        expect(s.page.get_by_role("alert").last).to_contain_text("Ask an administrator")
        s.check("read-only-forced-send")
    finally:
        s.close()


# --- i. every page on a phone ----------------------------------------------------------------------


def on_a_phone(browser, base: str, shots: Path, axe_js: str, binary: str, data_dir: Path, campaign_id: str) -> None:
    step("i. every page on a phone: readable, nothing wider than the screen, accessible")
    link = cli(binary, data_dir, "sign-in-link", "--url", base, "--tenant", TENANT, "--permissions", ALL_PERMISSIONS, "--sub", "phone-manager")
    s = Session(browser, base, shots, axe_js, viewport=PHONE, name="phone")
    try:
        s.page.goto(link)
        s.heading("Invitations")
        s.page.get_by_role("button", name="Load counts").click()
        expect(s.page.get_by_test_id("send-tiles")).to_be_visible()
        pages = [
            (None, "invitations"),
            ("invitations/list/eligible", "Eligible now"),
            ("invitations/send", "Compose and send"),
            (f"campaigns/{campaign_id}", "Campaign of"),
            ("campaigns", "Campaigns"),
            ("templates", "Templates"),
            ("requests", "Registration requests"),
            ("recurring", "Recurring invitations"),
            ("senders", "Senders"),
        ]
        for path, heading in pages:
            if path:
                s.goto(path, heading)
                expect(s.page.locator("main .spinner:visible")).to_have_count(0)
            wide = s.page.evaluate("() => document.documentElement.scrollWidth - window.innerWidth")
            assert wide <= 1, f"{path or 'invitations'}: the page is {wide}px wider than the phone's screen"
            s.check((path or "invitations").replace("/", "-"))
    finally:
        s.close()


# --- main ------------------------------------------------------------------------------------


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--banner", type=Path, required=True, help="the server's stdout (its banner)")
    ap.add_argument("--data-dir", type=Path, required=True)
    ap.add_argument("--bin", required=True, help="the portal-invites binary")
    ap.add_argument("--screenshots", type=Path, required=True)
    ap.add_argument("--axe", type=Path, required=True, help="axe.min.js (npm axe-core)")
    args = ap.parse_args()
    args.screenshots.mkdir(parents=True, exist_ok=True)
    axe_js = args.axe.read_text()

    banner = args.banner.read_text()
    m = re.search(r"listening on (http://\S+)", banner)
    assert m, f"no 'listening on' line in the banner:\n{banner}"
    base = m.group(1).rstrip("/")
    m = re.search(r"(http://\S+/local-idp/sign-in\?ticket=\S+)", banner)
    assert m, f"the banner shows no console sign-in link:\n{banner}"
    link = m.group(1)
    token = cli(args.bin, args.data_dir, "token", "--tenant", TENANT, "--permissions", ALL_PERMISSIONS)
    api = Api(base, token)
    shell_headers(base)

    figures = {}
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path="/usr/bin/chromium", headless=True)
        s = Session(browser, base, args.screenshots, axe_js)
        try:
            figures.update(sign_in(s, link))
            link_is_one_time(browser, link, base)
            got = load_counts(s, api, "oak-hills")
            figures["click_ms"] = got["click_ms"]
            drill_not_sent(s, got["counts"])
            edit_template(s, api)
            campaign_id = send_and_watch(s, api, "oak-hills", got["division_name"], got["counts"], args.bin, args.data_dir)
            invite_picked(s, api)
            match_request(s, api, args.data_dir)
            recurring_setting(s, api)
            sender_settings(s, api)
            read_only(browser, base, args.screenshots, axe_js, args.bin, args.data_dir)
            on_a_phone(browser, base, args.screenshots, axe_js, args.bin, args.data_dir, campaign_id)
        finally:
            s.close()
            browser.close()
            print("screenshots:")
            for p in sorted(args.screenshots.glob("console-*.png")):
                print(f"  {p}")
    print(
        f"FIGURES: console first load {figures['first_load_bytes'] / 1024:.1f} KB; "
        f"counts shown {figures['click_ms']:.0f} ms after the click"
    )
    print("PASS: the managers' console in the browser")
    return 0


if __name__ == "__main__":
    sys.exit(main())
