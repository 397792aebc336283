// registrations.js — staff's registration-request queue (permission registrations:manage):
// the open requests (#/requests), one request with its suggested matches (#/requests/<id>),
// match → the server sends the portal key email, reject with a reason, and the matched
// account's portal key (show, replace).
(() => {
  const { h, api, put, clear, field, problem, busy, spinner, link, when, ago, num } = C;

  // The API's status names, in the words staff use.
  const STATUSES = [
    ["open", "Open"],
    ["matched", "Matched, key not sent"],
    ["key_sent", "Portal key sent"],
    ["closed", "Closed"],
    ["", "Any status"],
  ];
  const CLOSE_REASONS = {
    registered: "the resident registered",
    already_registered: "this email address already has a portal login",
    rejected: "rejected",
    expired: "expired",
  };
  // Why a suggestion ranks where it does (the API scores email 40, account number 25, name up
  // to 20, phone 10, address 5).
  const REASONS = {
    email: "Email",
    account_number: "Account number",
    name: "Name",
    phone: "Phone",
    address: "Address",
  };

  // The queue's address with the filters last used, for the "back" links.
  let queueLink = link("requests");

  // "#/requests" with its filters; the default status (open) is left out, "any status" kept
  // as an empty value so a reload shows the same list.
  function queueHref(status, division) {
    const q = new URLSearchParams();
    if (status !== "open") q.set("status", status);
    if (division) q.set("division_id", division);
    const s = q.toString();
    return s ? `${link("requests")}?${s}` : link("requests");
  }

  function statusText(r) {
    if (r.status === "closed") return `Closed: ${CLOSE_REASONS[r.reason] || r.reason || "closed"}`;
    const s = STATUSES.find(([v]) => v === r.status);
    return s ? s[1] : C.label(r.status);
  }
  function statusPill(r) {
    const kind = { open: "warn", matched: "warn", key_sent: "ok" }[r.status] || (r.reason === "registered" ? "ok" : "");
    return h("span", { class: `pill ${kind}` }, statusText(r));
  }

  // Divisions by id (the list needs invitations:read; without it ids are shown as they are).
  async function divisionNames() {
    if (!C.can("invitations:read")) return { list: null, name: (id) => id };
    try {
      const list = await C.all("/v1/divisions");
      return { list, name: (id) => (list.find((d) => d.division_id === id) || {}).name || id };
    } catch (_) {
      return { list: null, name: (id) => id };
    }
  }

  // ---------- the queue ----------

  async function queuePage(main, params, query, isCurrent) {
    const status = query.has("status") ? query.get("status") : "open";
    const division = query.get("division_id") || "";
    const heading = h("h1", {}, "Registration requests");
    put(main, heading, spinner());
    const divs = await divisionNames();
    if (!isCurrent()) return;

    const statusSel = h("select", { name: "status" }, STATUSES.map(([v, t]) => h("option", { value: v, selected: v === status }, t)));
    let divisionCtl;
    if (divs.list) {
      divisionCtl = h(
        "select",
        { name: "division_id" },
        h("option", { value: "" }, "All divisions"),
        divs.list.map((d) => h("option", { value: d.division_id, selected: d.division_id === division }, d.name))
      );
    } else {
      divisionCtl = h("input", { name: "division_id", value: division, placeholder: "e.g. oak-hills", autocomplete: "off" });
    }

    const list = C.pagedList({
      caption: "Registration requests, newest first",
      load: (cursor) =>
        api("GET", "/v1/registration-requests", {
          query: { status: statusSel.value, division_id: divisionCtl.value.trim(), cursor, limit: 25 },
        }),
      columns: [
        { title: "Name", get: (r) => [h("a", { href: link("requests", r.request_id) }, r.name || "(no name)"), h("br", {}), h("span", { class: "muted" }, r.email)] },
        { title: "Status", get: statusPill },
        { title: "Received", get: (r) => [when(r.created_at), h("br", {}), h("span", { class: "muted" }, ago(r.created_at))] },
        { title: "Division", get: (r) => divs.name(r.division_id) },
        { title: "Account number", get: (r) => r.account_number || h("span", { class: "muted" }, "not given") },
      ],
      get empty() {
        return statusSel.value === "open" && !divisionCtl.value.trim()
          ? "No open requests. A resident who asks for a login without a portal key appears here."
          : "No request matches these filters.";
      },
    });

    function apply() {
      queueLink = queueHref(statusSel.value, divisionCtl.value.trim());
      history.replaceState(null, "", queueLink);
      list.reload();
    }
    statusSel.addEventListener("change", apply);
    divisionCtl.addEventListener("change", apply);

    list.el.classList.add("reg-queue");
    put(
      main,
      heading,
      h("p", {}, "Residents who asked for a portal login without a portal key. Open a request, match it to the right account, and the resident is emailed the account number and portal key."),
      h("div", { class: "row", role: "search", "aria-label": "Filter requests" }, field("Status", statusSel), field("Division", divisionCtl)),
      list.el
    );
    queueLink = location.hash || link("requests");
    list.reload();
  }

  // ---------- one request ----------

  async function requestPage(main, params, query, isCurrent) {
    const id = params.id;
    put(main, h("p", {}, h("a", { href: queueLink }, "← Registration requests")), h("h1", {}, "Registration request"), spinner());
    const [req, divs, templates] = await Promise.all([
      api("GET", `/v1/registration-requests/${encodeURIComponent(id)}`),
      divisionNames(),
      C.can("invitations:read") ? C.all("/v1/templates").catch(() => null) : null,
    ]);
    if (!isCurrent()) return;
    draw(main, req, divs, templates, null);
  }

  // Draws the request; `note` = {node, focus} shown at the top (the outcome of the last action).
  function draw(main, req, divs, templates, note) {
    const closed = req.status === "closed";
    const top = h("div", {});
    if (note) top.append(note.node);

    const facts = h(
      "dl",
      { class: "kv" },
      h("dt", {}, "Status"), h("dd", {}, statusPill(req)),
      h("dt", {}, "Received"), h("dd", {}, `${when(req.created_at)} (${ago(req.created_at)})`),
      h("dt", {}, "Name"), h("dd", {}, req.name),
      h("dt", {}, "Email"), h("dd", {}, req.email),
      h("dt", {}, "Phone"), h("dd", {}, req.phone || h("span", { class: "muted" }, "not given")),
      h("dt", {}, "Address"), h("dd", {}, req.address),
      h("dt", {}, "Division"), h("dd", {}, divs.name(req.division_id)),
      h("dt", {}, "Account number"), h("dd", {}, req.account_number || h("span", { class: "muted" }, "not given")),
      req.note && [h("dt", {}, "Reason for rejecting"), h("dd", {}, req.note)],
      req.updated_at !== req.created_at && [h("dt", {}, "Last change"), h("dd", {}, when(req.updated_at))]
    );

    const suggestions = (req.suggestions || []).slice().sort((a, b) => b.score - a.score);
    const sections = [];
    const portalKeyTemplates = (templates || []).filter((t) => t.kind === "portal_key");
    const tplSel =
      !closed && portalKeyTemplates.length
        ? h("select", { class: "reg-narrow" }, h("option", { value: "" }, "The default portal key email"), portalKeyTemplates.map((t) => h("option", { value: t.template_id }, t.name)))
        : null;
    const matchBox = h("div", {});
    const ctx = { main, req, divs, templates, tplSel, matchBox };

    if (req.matched_account_id) sections.push(matchedSection(ctx, suggestions));

    if (!closed) {
      const cards = suggestions.length
        ? h("ol", { class: "reg-matches", "aria-labelledby": "suggested" }, suggestions.map((s) => suggestionCard(ctx, s)))
        : h("p", { class: "msg warn" }, "No account looks like this request. Check the details with the resident (account number, the email we have on file), or reject the request if they are not a customer.");
      if (req.status === "open") {
        sections.push(
          h("h2", { id: "suggested" }, "Suggested matches"),
          h("p", {}, "Accounts and contacts that look like this request, best first (score out of 100: email 40, account number 25, name up to 20, phone 10, address 5). Pick the one the resident belongs to: their account number and portal key are then emailed to ", h("strong", {}, req.email), "."),
          tplSel && field("Portal key email template", tplSel, "The email with the account number and portal key."),
          matchBox,
          cards
        );
      } else {
        sections.push(
          h("details", { class: "reg-other" },
            h("summary", {}, h("h2", { id: "suggested" }, "Match a different account")),
            h("p", {}, "Wrong account? Match the right one: the portal key email then goes to ", h("strong", {}, req.email), " with that account's number and key."),
            cards)
        );
      }
      sections.push(rejectSection(main, req, divs, templates));
    }

    put(
      main,
      h("p", {}, h("a", { href: queueLink }, "← Registration requests")),
      h("h1", {}, `Registration request from ${req.name}`),
      top,
      h("div", { class: `msg ${closed ? "" : req.status === "key_sent" ? "ok" : "warn"}` }, h("p", {}, h("strong", {}, statusText(req)), " — ", explain(req))),
      h("section", { "aria-labelledby": "sent-h" }, h("h2", { id: "sent-h" }, "What the resident sent"), facts),
      sections
    );
    if (note && note.focus) note.focus.focus();
  }

  function explain(req) {
    switch (req.status) {
      case "open":
        return "Waiting for a match: pick the account this resident belongs to below, or reject the request.";
      case "matched":
        return "Matched to an account, but the portal key email has not gone out yet (for example it was held by the 24-hour rule). Send it again below.";
      case "key_sent":
        return `The portal key email went to ${req.email} (${when(req.updated_at)}). The request closes by itself when the resident registers.`;
      default:
        if (req.reason === "already_registered") return "The request closed by itself: no portal key email was sent.";
        if (req.reason === "registered") return "The resident has a portal login now.";
        if (req.reason === "rejected") return "Nothing was emailed to the resident.";
        if (req.reason === "expired") return "Nobody handled it in time.";
        return "Nothing more to do.";
    }
  }

  function suggestionCard(ctx, s) {
    const reasons = s.reasons || [];
    const fill = h("span", { class: "fill" });
    fill.style.width = `${Math.max(0, Math.min(100, s.score))}%`;
    const same = (what) => (reasons.includes(what) ? h("span", { class: "pill ok" }, "matches") : null);
    const who = `${s.contact_name || "(no name)"}, account ${s.account_number}`;
    const btn = h("button", { type: "button", class: "primary", "aria-label": `Match with ${who}` }, "Match");
    btn.addEventListener("click", () => doMatch(ctx, s, btn));
    return h(
      "li",
      { class: "panel reg-match" },
      h("div", { class: "reg-head" },
        h("h3", {}, s.contact_name || "(no name)", " ", h("span", { class: "muted" }, `· account ${s.account_number}`)),
        h("div", { class: "reg-score" },
          h("span", { class: "reg-n" }, `Score ${num(s.score)}`, h("span", { class: "sr" }, " of 100")),
          h("span", { class: "track", "aria-hidden": "true" }, fill))),
      h("div", { class: "chips" }, h("span", {}, "Matches on:"),
        reasons.length ? reasons.map((r) => h("span", { class: "pill ok" }, REASONS[r] || C.label(r))) : h("span", { class: "muted" }, "weak match")),
      h("dl", { class: "kv" },
        h("dt", {}, "Email"), h("dd", {}, s.email || h("span", { class: "muted" }, "none on file"), " ", same("email")),
        h("dt", {}, "Phone"), h("dd", {}, s.phone || h("span", { class: "muted" }, "none"), " ", same("phone")),
        h("dt", {}, "Account"), h("dd", {}, `${s.account_number} · ${s.account_name}`, " ", same("account_number")),
        h("dt", {}, "Division"), h("dd", {}, ctx.divs.name(s.division_id))),
      h("div", { class: "actions" }, btn)
    );
  }

  async function doMatch(ctx, s, btn) {
    const { main, req, divs, templates, tplSel, matchBox } = ctx;
    const differs = !s.email || s.email.toLowerCase() !== req.email.toLowerCase();
    const resend = req.status !== "open" && s.account_id === req.matched_account_id && (!req.matched_contact_id || s.contact_id === req.matched_contact_id);
    const ok = resend
      ? await C.confirmDialog(
          "Send the portal key email again?",
          h("p", {}, "The portal key email — with the account number and portal key — is sent again to ", h("strong", {}, req.email), ". A contact invited less than 24 hours ago cannot be sent another email yet."),
          "Send portal key email"
        )
      : await C.confirmDialog(
          "Match and send the portal key?",
          [
            h("p", {}, "Match the request from ", h("strong", {}, req.name), ` (${req.email}) to `, h("strong", {}, s.contact_name), `, account ${s.account_number} (${s.account_name}), ${divs.name(s.division_id)}.`),
            differs && h("p", {}, `${req.email} will be added to this contact as its other email.`),
            h("p", {}, "The portal key email — with the account number and portal key — is then sent to ", h("strong", {}, req.email), ". If this address already has a portal login, nothing is sent and the request closes by itself."),
          ],
          "Match and send portal key"
        );
    if (!ok) return;
    const body = { account_id: s.account_id, contact_id: s.contact_id };
    if (tplSel && tplSel.value) body.template_id = tplSel.value;
    let failure = null;
    const res = await busy(btn, async () => {
      try {
        return await api("POST", `/v1/registration-requests/${encodeURIComponent(req.request_id)}/match`, { body });
      } catch (e) {
        failure = e;
        throw e;
      }
    }, matchBox);
    if (res) {
      const r = res.request;
      const title = h("h2", { tabindex: "-1" }, res.campaign ? (resend ? "Portal key email sent again" : "Matched: portal key email sent") : "Closed: already registered");
      const msg = h(
        "div",
        { class: "msg ok reg-done" },
        title,
        res.campaign
          ? h("p", {}, `Matched to ${s.contact_name}, account ${s.account_number}. The portal key email is on its way to ${r.email}.`)
          : h("p", {}, `${r.email} already has a portal login, so nothing was sent and the request closed by itself.`),
        h("p", { class: "actions" },
          res.campaign && h("a", { href: link("campaigns", res.campaign.campaign_id) }, "Follow the email's delivery"),
          h("a", { href: queueLink }, "Back to the open requests"))
      );
      await redraw(main, r.request_id, divs, templates, { node: msg, focus: title });
    } else if (failure) {
      // The request may have moved (a match is recorded before the email is sent): show
      // where it stands now, with the refusal on top.
      const p = failure.problem || {};
      const refusal =
        failure.status === 409 && p.retry_after
          ? h("div", { class: "msg bad", role: "alert" },
              h("p", {}, h("strong", {}, "Held by the 24-hour rule: the portal key email was not sent")),
              h("p", {}, `${s.contact_name} was emailed less than 24 hours ago. The request is matched to account ${s.account_number}; send the portal key email again after ${when(p.retry_after)}.`))
          : problem(failure);
      const box = h("div", { tabindex: "-1", class: "reg-done" }, refusal, h("p", {}, h("a", { href: queueLink }, "Back to the open requests")));
      await redraw(main, req.request_id, divs, templates, { node: box, focus: box });
    }
  }

  async function redraw(main, id, divs, templates, note) {
    const { isCurrent } = currentGuard();
    try {
      const req = await api("GET", `/v1/registration-requests/${encodeURIComponent(id)}`);
      if (!isCurrent()) return;
      draw(main, req, divs, templates, note);
    } catch (e) {
      if (!isCurrent()) return;
      put(main, h("p", {}, h("a", { href: queueLink }, "← Registration requests")), h("h1", {}, "Registration request"), note.node, problem(e));
      note.focus.focus();
    }
  }
  // True while the address is still the one the action started on.
  function currentGuard() {
    const at = location.hash;
    return { isCurrent: () => location.hash === at };
  }

  function rejectSection(main, req, divs, templates) {
    const btn = h("button", { type: "button", class: "danger" }, "Reject request");
    const box = h("div", {});
    btn.addEventListener("click", async () => {
      const reason = h("textarea", { required: true, maxlength: "200", rows: "3", class: "reg-reason" });
      const ok = await C.confirmDialog(
        "Reject this request?",
        [
          h("p", {}, `The request from ${req.name} closes as rejected. Nothing is emailed to the resident.`),
          field("Reason for rejecting", reason, "Required, up to 200 characters. Other staff see it on the request."),
        ],
        "Confirm rejection"
      );
      if (!ok) return;
      const text = reason.value.trim();
      if (!text) return;
      const r = await busy(btn, () => api("POST", `/v1/registration-requests/${encodeURIComponent(req.request_id)}/reject`, { body: { reason: text } }), box);
      if (r) {
        const title = h("h2", { tabindex: "-1" }, "Request rejected");
        const msg = h("div", { class: "msg ok reg-done" }, title, h("p", {}, `The request from ${r.name} is closed. Nothing was emailed to the resident.`), h("p", {}, h("a", { href: queueLink }, "Back to the open requests")));
        draw(main, Object.assign({ suggestions: [] }, r), divs, templates, { node: msg, focus: title });
      }
    });
    return h("section", { "aria-labelledby": "reject-h" }, h("h2", { id: "reject-h" }, "Not a customer?"), h("p", {}, "Reject the request when it belongs to no account. You give a reason; the resident is not emailed."), box, h("div", { class: "actions" }, btn));
  }

  // The matched account's portal key (for a welcome letter or a phone call), and replacing it.
  function matchedSection(ctx, suggestions) {
    const req = ctx.req;
    const found = suggestions.find((x) => x.account_id === req.matched_account_id && (!req.matched_contact_id || x.contact_id === req.matched_contact_id));
    const acct = req.matched_account_id;
    const keyOut = h("div", { role: "status" });
    const box = h("div", {});
    const show = h("button", { type: "button" }, "Show portal key");
    const rotate = h("button", { type: "button", class: "danger" }, "Replace portal key");
    const path = `/v1/accounts/${encodeURIComponent(acct)}/portal-key`;
    const showKey = (k, fresh) => put(keyOut, h("p", {}, fresh ? "New portal key: " : "Portal key: ", h("code", { class: "reg-key" }, k.portal_key), fresh ? " — the old key no longer works." : ""));
    show.addEventListener("click", async () => {
      await busy(show, async () => showKey(await api("GET", path), false), box);
      refocus(show);
    });
    rotate.addEventListener("click", async () => {
      const ok = await C.confirmDialog("Replace the portal key?", h("p", {}, "The account gets a new portal key and the old one stops working at once: a letter or email with the old key can no longer be used to sign up."), "Replace portal key");
      if (ok) await busy(rotate, async () => showKey(await api("POST", path), true), box);
      refocus(rotate);
    });
    // Sending again goes through the same match (the API's way to resend the portal key).
    let again = null;
    if (req.status !== "closed") {
      const target = found || {
        account_id: acct,
        contact_id: req.matched_contact_id || undefined,
        contact_name: req.matched_contact_id || acct,
        account_number: acct,
        account_name: acct,
        division_id: req.division_id,
        email: null,
      };
      again = h("button", { type: "button", class: req.status === "matched" ? "primary" : null }, "Send the portal key email again");
      again.addEventListener("click", () => doMatch(ctx, target, again));
    }
    return h(
      "section",
      { "aria-labelledby": "matched-h" },
      h("h2", { id: "matched-h" }, "Matched account"),
      h("dl", { class: "kv" },
        h("dt", {}, "Account"), h("dd", {}, found ? `${found.account_number} · ${found.account_name}` : acct),
        h("dt", {}, "Contact"), h("dd", {}, found ? `${found.contact_name}${found.email ? ` (${found.email})` : ""}` : req.matched_contact_id || "–")),
      ctx.tplSel && req.status !== "closed" && field("Portal key email template", ctx.tplSel, "The email with the account number and portal key."),
      ctx.matchBox,
      box,
      keyOut,
      h("div", { class: "actions" }, again, show, rotate)
    );
  }

  // C.busy disables the button while it works, which drops the keyboard focus: give it back.
  function refocus(btn) {
    if (btn.isConnected && (!document.activeElement || document.activeElement === document.body)) btn.focus();
  }

  C.page("requests", queuePage, { nav: "Registration requests", title: "Registration requests", permission: "registrations:manage" });
  C.page("requests/:id", requestPage, { title: "Registration request", permission: "registrations:manage" });
})();
