#!/usr/bin/env python3
"""Registration sign-up in a real browser, as a new resident and a staff member would do it.

Run by `infra/browser/run.sh`, which starts `portal-invites serve --demo` on a free port with
a fresh data dir and passes its banner, data dir and binary here. Headless Chromium (the
system's `/usr/bin/chromium`, driven by Playwright for Python) on a phone-sized screen:

a. the demo invitation link from the banner is the one in the invitation email (outbox);
b. the link's page names the division and a masked address, sends the security headers and
   loads nothing from another host;
c. a too-short and a common password are refused (422, the form again); a good one registers;
d. the link then says it was already used;
e. the campaign's statistics show `registered: 1` and a non-zero success rate, the counts one
   more `accepted` contact;
f. a sign-up request is filed, matched by staff to the top suggestion, and its portal key
   email signs the resident up (account number + key), confirmed by the emailed link;
g. the same address cannot register twice.

Screenshots go to --screenshots. Any failed check raises AssertionError: the script exits
non-zero.
"""

from __future__ import annotations

import argparse
import email
import email.policy
import json
import re
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from html.parser import HTMLParser
from pathlib import Path

from playwright.sync_api import Page, Response, sync_playwright

from support import Api, step

TENANT = "demo"
PHONE = {"width": 390, "height": 844}
GOOD_PASSWORD = "lantern orchard velvet 42"
KEY_PASSWORD = "copper meadow kettle 97"
# The server's list of common passwords has it (12+ characters, so the browser lets it go).
COMMON_PASSWORD = "password1234"
# The pages' accent colour (#0b5cad): the button has it only when the stylesheet applied.
ACCENT_RGB = "rgb(11, 92, 173)"


# --- Small helpers ----------------------------------------------------------------------------


class Links(HTMLParser):
    """Every `<a href>` of an HTML part (entities decoded)."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.hrefs: list[str] = []

    def handle_starttag(self, tag, attrs):
        if tag == "a":
            self.hrefs += [v for k, v in attrs if k == "href" and v]


class Mail:
    """One outbox message, decoded (quoted-printable, charsets) by Python's email package."""

    def __init__(self, name: str, raw: bytes) -> None:
        self.path = Path(name)
        self.msg = email.message_from_bytes(raw, policy=email.policy.default)
        text = self.msg.get_body(preferencelist=("plain",))
        html = self.msg.get_body(preferencelist=("html",))
        assert text is not None and html is not None, f"{path}: expected a text and an HTML part"
        self.text: str = text.get_content()
        self.html: str = html.get_content()
        parser = Links()
        parser.feed(self.html)
        self.html_links = parser.hrefs
        self.text_links = re.findall(r"https?://[^\s<>\"]+", self.text)

    @property
    def to(self) -> str:
        return self.msg["To"].addresses[0].addr_spec

    def link(self, path: str) -> str:
        """The one link to `path` (e.g. `/register/key`), the same in both parts."""
        base = urllib.parse.urlsplit
        in_html = {u for u in self.html_links if base(u).path == path}
        in_text = {u for u in self.text_links if base(u).path == path}
        assert len(in_html) == 1, f"{self.path}: expected one {path} link in the HTML part, got {in_html}"
        assert in_html == in_text, (
            f"{self.path}: the HTML and text parts link {path} differently: {in_html} vs {in_text}"
        )
        return in_html.pop()


class Outbox:
    """The server's outbox, read as a developer does: through `GET /dev/outbox` (newest first)
    and `GET /dev/outbox/{file}` (the message's bytes)."""

    def __init__(self, base: str) -> None:
        self.base = base

    def files(self) -> list[str]:
        """The messages' file names, oldest first (the newest 1,000)."""
        with urllib.request.urlopen(f"{self.base}/dev/outbox?limit=1000", timeout=10) as r:
            entries = json.load(r)
        return [e["file"] for e in reversed(entries)]

    def mail(self, file: str) -> Mail:
        with urllib.request.urlopen(f"{self.base}/dev/outbox/{file}", timeout=10) as r:
            return Mail(file, r.read())

    def newest(self) -> Mail:
        files = self.files()
        assert files, f"the outbox of {self.base} is empty"
        return self.mail(files[-1])

    def wait_new(self, seen: set[str], to: str, what: str, timeout: float = 30.0) -> Mail:
        """The newest message to `to` not in `seen`, waiting for it (sends are queued)."""
        deadline = time.monotonic() + timeout
        while True:
            fresh = [p for p in self.files() if p not in seen]
            for p in reversed(fresh):
                m = self.mail(p)
                if m.to.lower() == to.lower():
                    return m
            assert time.monotonic() < deadline, (
                f"no {what} to {to} reached the outbox of {self.base} within {timeout:.0f} s "
                f"(new files: {fresh})"
            )
            time.sleep(0.2)


def mask(addr: str) -> str:
    """How the pages show an address: its first character, then `***@domain`."""
    local, domain = addr.rsplit("@", 1)
    return f"{local[0]}***@{domain}"


class Browser:
    """One phone-sized browsing session that records every request and checks every page."""

    def __init__(self, pw, base: str, shots: Path) -> None:
        self.base = base
        self.origin = urllib.parse.urlsplit(base)[:2]
        self.shots = shots
        self.browser = pw.chromium.launch(executable_path="/usr/bin/chromium", headless=True)
        self.context = self.browser.new_context(
            viewport=PHONE, device_scale_factor=2, is_mobile=True, has_touch=True
        )
        self.requests: list[str] = []
        self.csp_violations: list[str] = []
        self.referers: list[str] = []
        self.context.on("request", self._request)
        self.page: Page = self.context.new_page()
        self.page.on("console", self._console)
        self.screenshots: list[Path] = []

    def _request(self, r) -> None:
        self.requests.append(r.url)
        if r.headers.get("referer"):
            self.referers.append(f"{r.method} {r.url} <- {r.headers['referer']}")

    def _console(self, msg) -> None:
        if "Content Security Policy" in msg.text or "Refused to" in msg.text:
            self.csp_violations.append(msg.text)

    def close(self) -> None:
        self.context.close()
        self.browser.close()

    def check_page(self, res: Response | None, status: int, heading: str) -> None:
        """The page answered `status` with `heading`, the security headers, and a layout that
        fits a phone."""
        assert res is not None, f"no response for {self.page.url}"
        h1 = self.page.locator("h1").first.inner_text()
        assert res.status == status, (
            f"{res.request.method} {res.url}: expected {status}, got {res.status} ({h1!r})"
        )
        assert heading in h1, f"{res.url}: expected the heading {heading!r}, got {h1!r}"
        headers = res.headers  # lowercase names
        where = f"{res.request.method} {urllib.parse.urlsplit(res.url).path}"
        assert headers.get("referrer-policy") == "no-referrer", (
            f"{where}: Referrer-Policy is {headers.get('referrer-policy')!r}"
        )
        csp = headers.get("content-security-policy", "")
        assert csp, f"{where}: no Content-Security-Policy"
        assert "unsafe" not in csp, f"{where}: the Content-Security-Policy allows unsafe-*: {csp}"
        assert "default-src 'none'" in csp, f"{where}: the policy is not deny-by-default: {csp}"
        assert "frame-ancestors 'none'" in csp, f"{where}: the policy allows framing: {csp}"
        assert headers.get("x-frame-options") == "DENY", (
            f"{where}: X-Frame-Options is {headers.get('x-frame-options')!r}"
        )
        assert headers.get("content-type", "").startswith("text/html"), (
            f"{where}: Content-Type {headers.get('content-type')!r}"
        )
        # The one inline stylesheet applies (its hash is in the policy)...
        if self.page.locator("button").count():
            bg = self.page.locator("button").first.evaluate("e => getComputedStyle(e).backgroundColor")
            assert bg == ACCENT_RGB, f"{where}: the stylesheet did not apply (button background {bg})"
        # ...and the page fits a phone: no sideways scrolling, readable text, large targets.
        overflow = self.page.evaluate(
            "() => document.documentElement.scrollWidth - document.documentElement.clientWidth"
        )
        assert overflow <= 0, f"{where}: the page is {overflow}px wider than a {PHONE['width']}px screen"
        size = self.page.evaluate("() => parseFloat(getComputedStyle(document.body).fontSize)")
        assert size >= 16, f"{where}: body text is {size}px on a phone"
        for i in range(self.page.locator("button, input, select").count()):
            el = self.page.locator("button, input, select").nth(i)
            box = el.bounding_box()
            if box is not None:
                assert box["height"] >= 40, f"{where}: a form control is {box['height']:.0f}px tall"
        assert not self.csp_violations, f"{where}: the browser refused: {self.csp_violations}"

    def goto(self, url: str, status: int, heading: str) -> Response:
        res = self.page.goto(url)
        self.check_page(res, status, heading)
        return res

    def submit(self, status: int, heading: str, button: str = "button[type=submit]") -> Response:
        with self.page.expect_navigation() as nav:
            self.page.click(button)
        res = nav.value
        self.check_page(res, status, heading)
        return res

    def shot(self, name: str) -> None:
        path = self.shots / f"{len(self.screenshots) + 1:02d}-{name}.png"
        self.page.screenshot(path=str(path), full_page=True)
        self.screenshots.append(path)
        print(f"    screenshot: {path}", flush=True)

    def text(self) -> str:
        return self.page.locator("main").inner_text()

    def assert_same_origin(self) -> None:
        foreign = [u for u in self.requests if urllib.parse.urlsplit(u)[:2] != self.origin]
        assert not foreign, f"the pages requested other hosts: {foreign}"
        assert self.requests, "no request was recorded"
        # Referrer-Policy: no-referrer at work: no request (form posts included) named the
        # page it came from, whose URL holds a token.
        assert not self.referers, f"requests carried a Referer: {self.referers}"


# WCAG relative luminance and contrast of computed `rgb(...)` colours over the page's canvas.
CONTRAST_JS = """(sel) => {
  const rgb = (c) => (c.match(/[0-9.]+/g) || []).map(Number);
  const lum = ([r, g, b]) => [r, g, b]
    .map((v) => { v /= 255; return v <= 0.03928 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4); })
    .reduce((a, v, i) => a + v * [0.2126, 0.7152, 0.0722][i], 0);
  const bg = getComputedStyle(document.documentElement).backgroundColor;
  const canvas = rgb(bg).length >= 3 && rgb(bg)[3] !== 0 ? rgb(bg)
    : (matchMedia('(prefers-color-scheme: dark)').matches ? [18, 18, 18] : [255, 255, 255]);
  const el = document.querySelector(sel);
  if (!el) return null;
  let op = 1;
  for (let e = el; e; e = e.parentElement) op *= parseFloat(getComputedStyle(e).opacity);
  const fg = rgb(getComputedStyle(el).color).slice(0, 3).map((v, i) => v * op + canvas[i] * (1 - op));
  const [a, b] = [lum(fg), lum(canvas)].sort((x, y) => y - x);
  return (a + 0.05) / (b + 0.05);
}"""


def contrast_check(pw, url: str, shots: Path) -> list[str]:
    """Text and link contrast of a page in the light and the dark colour scheme (the pages
    declare `color-scheme: light dark`). Below 3:1 in light fails; below WCAG AA (4.5:1) is
    reported as a note."""
    notes = []
    browser = pw.chromium.launch(executable_path="/usr/bin/chromium", headless=True)
    try:
        for scheme in ("light", "dark"):
            ctx = browser.new_context(viewport=PHONE, device_scale_factor=2, is_mobile=True, color_scheme=scheme)
            page = ctx.new_page()
            page.goto(url)
            page.screenshot(path=str(shots / f"scheme-{scheme}.png"), full_page=True)
            print(f"    screenshot: {shots / f'scheme-{scheme}.png'}")
            for what, sel in (("text", "main p"), ("hint", ".hint"), ("link", "main a")):
                ratio = page.evaluate(CONTRAST_JS, sel)
                if ratio is None:
                    continue
                line = f"{scheme} {what} ({sel}) contrast {ratio:.2f}:1"
                print(f"    {line}")
                # Unreadable light text fails the run; short of WCAG AA is reported.
                assert scheme != "light" or ratio >= 3, f"{url}: {line}: unreadable"
                if ratio < 4.5:
                    notes.append(f"{url}: {line}, below WCAG AA 4.5:1")
            ctx.close()
    finally:
        browser.close()
    return notes


def token_for(binary: str, data_dir: Path, permissions: str) -> str:
    out = subprocess.run(
        [binary, "token", "--data-dir", str(data_dir), "--tenant", TENANT, "--permissions", permissions],
        check=True,
        capture_output=True,
        text=True,
    )
    token = out.stdout.strip()
    assert token.count(".") == 2, f"`portal-invites token` printed no JWT: {out.stdout!r} {out.stderr!r}"
    return token


# --- The run ----------------------------------------------------------------------------------


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--banner", type=Path, required=True, help="the server's stdout (its banner)")
    ap.add_argument("--data-dir", type=Path, required=True)
    ap.add_argument("--bin", required=True, help="the portal-invites binary")
    ap.add_argument("--screenshots", type=Path, required=True)
    args = ap.parse_args()
    args.screenshots.mkdir(parents=True, exist_ok=True)

    banner = args.banner.read_text()
    m = re.search(r"listening on (http://\S+)", banner)
    assert m, f"no 'listening on' line in the banner:\n{banner}"
    base = m.group(1).rstrip("/")
    outbox = Outbox(base)
    api = Api(base, token_for(args.bin, args.data_dir, "invitations:read,registrations:manage"))

    with sync_playwright() as pw:
        b = Browser(pw, base, args.screenshots)
        try:
            invitee = invitation_link_flow(b, api, banner, base, outbox, args.data_dir)
            request_flow(b, api, base, outbox, invitee)
            step("every page loaded only from this server, no Referer sent")
            b.assert_same_origin()
            print(f"    {len(b.requests)} requests, all to {base}")
            step("contrast on a phone, light and dark colour schemes")
            notes = contrast_check(pw, f"{base}/register/request?tenant={TENANT}", args.screenshots)
        finally:
            b.close()
            print("screenshots:")
            for p in b.screenshots:
                print(f"  {p}")
    for n in notes:
        print(f"NOTE (not a failure): {n}")
    print("PASS: registration in the browser")
    return 0


def invitation_link_flow(b: Browser, api: Api, banner: str, base: str, outbox: Outbox, data_dir: Path):
    step("a. the banner's registration link is the invitation email's [PortalLink]")
    m = re.search(r"(http://\S+/register\?token=[A-Za-z0-9_-]+)", banner)
    assert m, f"the banner shows no registration link:\n{banner}"
    link = m.group(1)
    assert link.startswith(base + "/register?"), f"the link {link} does not point at {base}"
    # The banner is printed once the invitation is queued; its email follows at once.
    deadline = time.monotonic() + 30
    while not outbox.files() and time.monotonic() < deadline:
        time.sleep(0.2)
    mail = outbox.newest()
    assert mail.link("/register") == link, (
        f"the newest email {mail.path.name} links {mail.link('/register')}, the banner {link}"
    )
    invitee = mail.to
    keys = set(re.findall(r"\b[0-9A-Z]{4}(?:-[0-9A-Z]{4}){2,}\b", mail.text))
    assert len(keys) == 1, f"expected one [PortalKey] in the invitation email, got {keys}"
    invitee_key = keys.pop()
    assert invitee_key in mail.html, f"the HTML part lacks the portal key {invitee_key}"
    print(f"    {link}\n    in {mail.path.name}, to {invitee}")

    # The campaign of that invitation: the demo's one individual send.
    divisions = {d["division_id"]: d for d in api.get("/v1/divisions?limit=500")["items"]}
    individual = [
        c
        for d in divisions
        for c in api.get(f"/v1/campaigns?division_id={d}")["items"]
        if c["trigger"] == "individual"
    ]
    assert len(individual) == 1, f"expected the demo's one individual campaign, got {individual}"
    campaign = individual[0]
    cid = campaign["campaign_id"]
    division = divisions[campaign["division_ids"][0]]
    recipients = api.post(f"/v1/campaigns/{cid}/recipients", {})["items"]
    assert len(recipients) == 1 and recipients[0]["email"].lower() == invitee.lower(), (
        f"campaign {cid} did not invite {invitee}: {recipients}"
    )
    contact = recipients[0]
    assert campaign["statistics"]["registered"] == 0, (
        f"campaign {cid} counts a registration before the test registered: {campaign['statistics']}"
    )
    assert mail.msg["From"].addresses[0].display_name == division["name"], mail.msg["From"]
    selection = {"division_ids": [division["division_id"]]}
    before = api.post("/v1/invitations/counts", selection)
    status_before = contact_status(api, division["division_id"], invitee)
    assert status_before == "pending", f"{invitee} is {status_before} before registering"
    print(f"    campaign {cid} ({division['name']}), contact {contact['contact_id']}, "
          f"accepted before: {before['accepted']}")

    step("b. the link's page on a phone: division, masked address, headers, nothing foreign")
    b.goto(link, 200, "Create your portal login")
    text = b.text()
    assert division["name"] in text, f"the page does not name {division['name']!r}:\n{text}"
    assert mask(invitee) in text, f"the page does not show the masked {mask(invitee)!r}:\n{text}"
    assert invitee.split("@")[0].lower() not in b.page.content().lower(), "the page shows the whole address"
    b.shot("invitation-link")
    events = data_dir / "portal-events.jsonl"
    assert not events.exists() or not events.read_text().strip(), "opening the link registered someone"

    step("c. a too-short password, a common one, then a good one")
    b.page.fill("#password", "short pw")
    assert not b.page.eval_on_selector("form", "f => f.checkValidity()"), (
        "the browser accepts a too-short password (no minlength on the field?)"
    )
    # An old browser, or one that ignores minlength, posts it anyway: the server says so.
    b.page.eval_on_selector("form", "f => { f.noValidate = true }")
    b.submit(422, "Create your portal login")
    assert "at least 12 characters" in b.text(), f"the page does not say why:\n{b.text()}"
    assert b.page.locator("#password").count() == 1, "the form is not shown again"
    assert "short pw" not in b.page.content(), "the page echoes the password"
    b.shot("password-too-short")
    b.page.fill("#password", COMMON_PASSWORD)
    b.submit(422, "Create your portal login")
    assert "common" in b.text(), f"a common password is not refused as such:\n{b.text()}"
    b.page.fill("#name", contact["contact_name"])
    b.page.fill("#password", GOOD_PASSWORD)
    b.submit(200, "You are registered")
    assert mask(invitee) in b.text(), b.text()
    b.shot("registered")

    step("d. the link a second time says it was used")
    b.goto(link, 410, "already used")
    b.shot("link-used")

    step("e. statistics: registered 1, success rate > 0, one more accepted")
    after = api.get(f"/v1/campaigns/{cid}")
    stats = after["statistics"]
    assert stats["registered"] == 1, f"campaign {cid}: {stats}"
    assert stats["success_rate"] is not None and stats["success_rate"] > 0, f"campaign {cid}: {stats}"
    counts = api.post("/v1/invitations/counts", selection)
    assert counts["accepted"] == before["accepted"] + 1, (
        f"accepted went from {before['accepted']} to {counts['accepted']}"
    )
    assert contact_status(api, division["division_id"], invitee) == "accepted"
    lines = [json.loads(l) for l in events.read_text().splitlines() if l.strip()]
    assert len(lines) == 1 and lines[0]["detail-type"] == "Portal Registration", lines
    assert lines[0]["detail"]["campaign_id"] == cid, lines[0]
    print(f"    statistics {stats}\n    accepted {before['accepted']} -> {counts['accepted']}")
    return {
        "email": invitee,
        "name": contact["contact_name"],
        "account_number": contact["account_number"],
        "portal_key": invitee_key,
    }


def contact_status(api: Api, division_id: str, addr: str) -> str:
    page = api.post(
        "/v1/invitations/recipients",
        {"division_ids": [division_id], "limit_to_uninvited": False, "q": addr, "limit": 10},
    )
    found = [r for r in page["items"] if (r["email"] or "").lower() == addr.lower()]
    assert found, f"{addr} is not among {division_id}'s recipients"
    return found[0]["portal_status"]


def request_flow(b: Browser, api: Api, base: str, outbox: Outbox, invitee: dict) -> None:
    step("f. a sign-up request for a demo contact, matched by staff")
    division_id = "oak-hills"
    person = api.post(
        "/v1/invitations/recipients", {"division_ids": [division_id], "group": "eligible", "limit": 1}
    )["items"][0]
    addr = person["email"]
    print(f"    {person['contact_name']} <{addr}>, account {person['account_number']}")
    b.goto(f"{base}/register/request?tenant={TENANT}", 200, "Request a portal login")
    b.page.fill("#name", person["contact_name"])
    b.page.fill("#email", addr)
    b.page.fill("#phone", "+1 555 010 0199")
    b.page.fill("#address", "12 Hillside Court, Oak Hills")
    b.page.select_option("#division_id", division_id)
    b.shot("request-form")
    b.submit(200, "Request received")
    b.shot("request-received")

    items = api.get(f"/v1/registration-requests?status=open&division_id={division_id}")["items"]
    mine = [r for r in items if r["email"].lower() == addr.lower()]
    assert len(mine) == 1, f"expected one open request from {addr}, got {items}"
    rid = mine[0]["request_id"]
    detail = api.get(f"/v1/registration-requests/{rid}")
    suggestions = detail["suggestions"]
    assert suggestions, f"request {rid} has no suggestions: {detail}"
    top = suggestions[0]
    assert top["contact_id"] == person["contact_id"], (
        f"the top suggestion is {top}, not the contact {person['contact_id']}"
    )
    print(f"    request {rid}: top suggestion {top['contact_id']} (score {top['score']}, {top['reasons']})")
    seen = set(outbox.files())
    matched = api.post(
        f"/v1/registration-requests/{rid}/match",
        {"account_id": top["account_id"], "contact_id": top["contact_id"]},
    )
    assert matched["campaign"], f"matching sent no portal key email: {matched}"
    assert matched["request"]["status"] == "key_sent", matched["request"]
    key = api.get(f"/v1/accounts/{top['account_id']}/portal-key")["portal_key"]
    mail = outbox.wait_new(seen, addr, "portal key email")
    assert key in mail.text and key in mail.html, f"{mail.path.name} does not carry the key {key}"
    assert top["account_number"] in mail.text, f"{mail.path.name} lacks {top['account_number']}"
    key_link = mail.link("/register/key")
    print(f"    portal key email {mail.path.name}: {key_link}, key {key}")

    step("f. the portal key email's link: sign up, then confirm the address")
    b.goto(key_link, 200, "Sign up with your portal key")
    prefilled = b.page.input_value("#account_number")
    assert prefilled == top["account_number"], f"account number prefilled {prefilled!r}"
    b.page.fill("#portal_key", key)
    b.page.fill("#name", person["contact_name"])
    b.page.fill("#email", addr)
    b.page.fill("#password", KEY_PASSWORD)
    b.shot("key-form")
    seen = set(outbox.files())
    b.submit(200, "Check your email")
    assert mask(addr) in b.text(), b.text()
    b.shot("check-your-email")
    confirm_mail = outbox.wait_new(seen, addr, "confirmation email")
    confirm_link = confirm_mail.link("/register/confirm")
    assert confirm_link.startswith(base), confirm_link
    print(f"    confirmation email {confirm_mail.path.name}")
    b.goto(confirm_link, 200, "Confirm your email")
    b.shot("confirm")
    b.submit(200, "Your email is confirmed")
    b.shot("confirmed")
    closed = api.get(f"/v1/registration-requests/{rid}")
    assert closed["status"] == "closed" and closed.get("reason") == "registered", (
        f"request {rid} after the confirmation: {closed['status']} {closed.get('reason')}"
    )
    assert contact_status(api, division_id, addr) == "accepted"

    step("g. the same address cannot register twice")
    b.goto(key_link, 200, "Sign up with your portal key")
    b.page.fill("#portal_key", key)
    b.page.fill("#name", person["contact_name"])
    b.page.fill("#email", addr)
    b.page.fill("#password", "another good passphrase 7")
    seen = set(outbox.files())
    b.submit(200, "You already have a login")
    b.shot("already-registered")
    # The resident who registered through the invitation link, with their welcome email's
    # account number and portal key: the same answer.
    number = urllib.parse.quote(invitee["account_number"])
    b.goto(f"{base}/register/key?tenant={TENANT}&account={number}", 200, "Sign up with your portal key")
    b.page.fill("#portal_key", invitee["portal_key"])
    b.page.fill("#name", invitee["name"])
    b.page.fill("#email", invitee["email"])
    b.page.fill("#password", "yet another passphrase 5")
    b.submit(200, "You already have a login")
    time.sleep(0.5)
    sent = [outbox.mail(p).to for p in outbox.files() if p not in seen]
    assert not sent, f"a second sign-up of a registered address sent mail to {sent}"


if __name__ == "__main__":
    try:
        sys.exit(main())
    except AssertionError as e:
        print(f"FAIL: {e}", file=sys.stderr)
        sys.exit(1)
