// campaigns.js — what happened to the invitations sent: a campaign's live progress and its
// results chart, the recipients of one category, and a division's history of campaigns.
//
// Pages:
//   #/campaigns?division=<division_id>            a division's campaigns, newest first
//   #/campaigns/<campaign_id>                     one campaign: progress, results chart
//   #/campaigns/<campaign_id>/recipients?category=<category>&q=<search>
// For other pages: C.campaignLink(id), C.campaignRecipientsLink(id, category, q),
// C.campaignsLink(divisionId), C.campaignStatus(status) → a pill element.
(() => {
  const { h, api, put, clear, num, pct, when } = C;

  // The categories of an invitation (the Statistics schema), in the order a manager reads
  // them: on the way to registering, then the ones that went wrong.
  const CATEGORIES = [
    { key: "in_process", label: "In process", tone: "muted", hint: "Still being sent, or not yet confirmed delivered." },
    { key: "unopened", label: "Unopened", hint: "Delivered, but not opened yet." },
    { key: "opened", label: "Opened", hint: "Opened the email, but did not click the registration link." },
    { key: "clicked", label: "Clicked", hint: "Opened the email and clicked the registration link, but did not register." },
    { key: "registered", label: "Registered", tone: "good", hint: "Registered for the portal from this invitation." },
    { key: "unsubscribed", label: "Unsubscribed", tone: "warn", hint: "Unsubscribed from invitation emails, or marked the email as spam." },
    { key: "bounced", label: "Bounced", tone: "bad", hint: "The invitation bounced: the address does not take mail." },
    { key: "failed", label: "Failed", tone: "bad", hint: "The message could not be sent." },
  ];
  const CATEGORY = Object.fromEntries(CATEGORIES.map((c) => [c.key, c]));

  const STATUS = {
    queued: { label: "Waiting to start" },
    fanning_out: { label: "Finding contacts" },
    sending: { label: "Sending" },
    completed: { label: "Completed", tone: "ok" },
    paused: { label: "Paused", tone: "warn" },
    failed: { label: "Failed", tone: "bad" },
  };
  // While a campaign is in one of these, its page polls it.
  const ACTIVE = new Set(["queued", "fanning_out", "sending"]);
  const TRIGGER = { manual: "Bulk send", individual: "Individual invite", recurring: "Recurring invitations", portal_key: "Portal key" };
  const SEND_STATE = { pending: "Waiting", sent: "Sent", failed: "Failed" };
  const SKIPPED = [
    { key: "accepted", label: "Already accepted", hint: "Already registered: never invited again." },
    { key: "held_24h", label: "Held 24 h", hint: "Invited less than 24 hours before." },
    { key: "suppressed", label: "Suppressed", hint: "Unsubscribed, complained or bounced before." },
    { key: "no_email", label: "No email", hint: "The contact has no email address." },
    { key: "duplicate_address", label: "Same address", hint: "Another contact with this address was just invited: one email per person." },
  ];
  const FILTER_LISTS = C.VALUE_FILTERS;
  const FILTER_SWITCHES = C.SWITCHES;

  // ---------- links for other pages ----------

  C.campaignLink = (id) => C.link("campaigns", id);
  C.campaignRecipientsLink = (id, category, q) => C.link("campaigns", id, "recipients", { category: category || null, q: q || null });
  C.campaignsLink = (divisionId) => C.link("campaigns", { division: divisionId || null });
  C.campaignStatus = (status) => statusPill(status);

  function statusPill(status) {
    const s = STATUS[status] || { label: C.label(status || "unknown") };
    return h("span", { class: `pill${s.tone ? " " + s.tone : ""}` }, s.label);
  }

  // ---------- shared lookups (names for ids), kept a minute ----------

  const cache = new Map();
  async function lookup(path) {
    const key = `${C.tenant()} ${path}`;
    const hit = cache.get(key);
    if (hit && Date.now() - hit.at < 60000) return hit.value;
    try {
      const value = await C.all(path);
      cache.set(key, { at: Date.now(), value });
      return value;
    } catch (_) {
      return null; // names are a nicety: the ids are shown instead
    }
  }
  const templateName = (templates, id) => ((templates || []).find((t) => t.template_id === id) || {}).name || id;
  const divisionName = (divisions, id) => ((divisions || []).find((d) => d.division_id === id) || {}).name || id;

  const campaignPath = (id) => `/v1/campaigns/${encodeURIComponent(id)}`;
  const shortId = (id) => String(id).slice(0, 8);

  function downloadCsv(id, category, q) {
    const body = {};
    if (category) body.category = category;
    if (q) body.q = q;
    return C.download("POST", `${campaignPath(id)}/recipients`, body, `campaign-${shortId(id)}-${category || "all"}.csv`).then(() => C.say("The CSV was downloaded.", "ok"));
  }

  // A wide table scrolls sideways on a phone: its wrapper becomes a labelled region that
  // takes keyboard focus, so the scroll works without a mouse.
  function scrollable(container, label) {
    const wrap = container.querySelector(".table-wrap");
    if (!wrap) return;
    wrap.classList.add("wide");
    wrap.setAttribute("role", "region");
    wrap.setAttribute("aria-label", label || "Table");
    wrap.tabIndex = 0;
  }

  // Replaces the address's query without re-rendering the page (no hashchange event), so
  // the page can be bookmarked or shared as the manager sees it.
  function setAddress(...parts) {
    history.replaceState(null, "", C.link(...parts));
  }

  function selectionText(c) {
    if (c.trigger === "individual" || c.trigger === "portal_key") return "One contact";
    const f = c.filters || {};
    const parts = [];
    for (const [k, l] of FILTER_LISTS) if (f[k] && f[k].length) parts.push(`${l}: ${f[k].join(", ")}`);
    for (const [k, l] of FILTER_SWITCHES) if (f[k]) parts.push(l);
    if (!parts.length) parts.push("All contacts (no filters)");
    parts.push(c.limit_to_uninvited ? "limited to contacts without an existing invitation" : "contacts with a pending invitation invited again");
    return parts.join(" · ");
  }

  // ---------- the campaign page ----------

  // The <progress> bar and its words; update(c) as the campaign moves.
  function progressView() {
    const bar = h("progress", { "aria-label": "Invitations sent", max: 1 });
    const words = h("p", { class: "progress-words" });
    const note = h("div", {});
    // Read out politely: status changes and every tenth of the way, not every second.
    const live = h("p", { class: "sr", role: "status", "aria-live": "polite" });
    let said = { status: null, step: null };
    const el = h("section", { "aria-labelledby": "camp-progress" }, h("h2", { id: "camp-progress" }, "Sending"), bar, words, note, live);
    function update(c) {
      const s = c.sends || { pending: 0, sent: 0, failed: 0 };
      const total = Math.max(c.targeted || 0, s.pending + s.sent + s.failed);
      const done = s.sent + s.failed;
      if (ACTIVE.has(c.status) && !total) {
        bar.removeAttribute("value"); // indeterminate: nothing claimed yet
        bar.max = 1;
      } else {
        bar.max = Math.max(total, 1);
        bar.value = c.status === "completed" && !total ? 1 : done;
      }
      const parts = [ACTIVE.has(c.status) && !total ? "Nothing sent yet" : `${num(s.sent)} of ${num(total)} sent`];
      if (s.failed) parts.push(`${num(s.failed)} failed`);
      if (s.pending && c.status !== "queued") parts.push(`${num(s.pending)} waiting`);
      put(words, h("strong", {}, parts.join(" · ")), " ", statusPill(c.status));
      let msg = null;
      if (c.status === "queued") msg = h("p", { class: "muted" }, "Waiting for the sending to start…");
      else if (c.status === "fanning_out") msg = h("p", { class: "muted" }, "Finding the contacts to invite: the total grows until every one is found.");
      else if (c.status === "sending") msg = h("p", { class: "muted" }, "Handing the invitations to the mail service. This page updates by itself.");
      else if (c.status === "paused") msg = h("div", { class: "msg warn" }, h("p", {}, h("strong", {}, "Sending is paused. "), c.pause_reason || ""), h("p", {}, "Invitations not yet sent stay waiting; nothing is sent twice."));
      else if (c.status === "failed") msg = h("div", { class: "msg bad" }, h("p", {}, h("strong", {}, "The campaign stopped. "), c.pause_reason || ""), h("p", {}, "Contacts not invited by it can be invited again in a new send."));
      put(note, msg);
      const step = total ? Math.floor((done / total) * 10) : 0;
      if (said.status !== null && (said.status !== c.status || (ACTIVE.has(c.status) && step !== said.step))) {
        const label = (STATUS[c.status] || {}).label || c.status;
        put(live, c.status === "completed" ? `Sending finished: ${num(s.sent)} sent${s.failed ? `, ${num(s.failed)} failed` : ""}.` : `${label}: ${num(s.sent)} of ${num(total)} sent.`);
      }
      said = { status: c.status, step };
    }
    return { el, update };
  }

  // The results: success rate, the eight categories as bars, each a link and a CSV.
  function resultsView(id) {
    const rate = h("span", { class: "n" });
    const total = h("span", { class: "n" });
    const registered = h("span", { class: "n" });
    const errors = h("div", {});
    const top = h("div", {});
    const list = h("ul", { class: "bars cat-bars", "aria-label": "Invitations by category" });
    const rows = {};
    for (const cat of CATEGORIES) {
      const fill = h("span", { class: `fill${cat.tone ? " " + cat.tone : ""}` });
      const value = h("span", { class: "v" });
      const csv = h("button", { type: "button", class: "small csv", "aria-label": `Download CSV of ${cat.label}` }, "CSV");
      csv.addEventListener("click", () => C.busy(csv, () => downloadCsv(id, cat.key), errors));
      list.append(h("li", { class: "bar" }, h("a", { class: "l", href: C.campaignRecipientsLink(id, cat.key) }, cat.label), h("span", { class: "track", "aria-hidden": "true" }, fill), value, csv));
      rows[cat.key] = { fill, value };
    }
    const all = h("button", { type: "button" }, "Download CSV of all invitations");
    all.addEventListener("click", () => C.busy(all, () => downloadCsv(id, null), errors));
    const el = h(
      "section",
      { "aria-labelledby": "camp-results" },
      h("h2", { id: "camp-results" }, "Results"),
      top,
      h(
        "div",
        { class: "tiles" },
        h("div", { class: "tile key rate" }, rate, h("span", { class: "t" }, "Success rate"), h("span", { class: "hint" }, "registered ÷ (invitations − failed)")),
        h("div", { class: "tile" }, total, h("span", { class: "t" }, "Invitations")),
        h("div", { class: "tile" }, registered, h("span", { class: "t" }, "Registered"))
      ),
      list,
      errors,
      h("div", { class: "actions" }, all, h("a", { href: C.campaignRecipientsLink(id) }, "See every recipient")),
      h("details", { class: "legend" }, h("summary", {}, "What the categories mean"), h("dl", { class: "kv" }, CATEGORIES.map((c) => [h("dt", {}, c.label), h("dd", {}, c.hint)])))
    );
    function update(stats) {
      const t = stats.total || 0;
      put(rate, pct(stats.success_rate));
      put(total, num(t));
      put(registered, num(stats.registered));
      for (const cat of CATEGORIES) {
        const n = stats[cat.key] || 0;
        const share = t ? n / t : 0;
        rows[cat.key].fill.style.width = `${n ? Math.max(share * 100, 0.75).toFixed(2) : 0}%`;
        put(rows[cat.key].value, num(n), h("span", { class: "muted" }, ` · ${t ? pct(share) : "–"}`));
      }
    }
    return { el, update, top: (...nodes) => put(top, nodes) };
  }

  // Contacts matched but not invited, by reason.
  function skippedView() {
    const values = {};
    const el = h(
      "section",
      { "aria-labelledby": "camp-skipped" },
      h("h2", { id: "camp-skipped" }, "Not invited"),
      h("p", { class: "muted" }, "Contacts the selection matched but this campaign did not invite."),
      h(
        "div",
        { class: "tiles" },
        SKIPPED.map((s) => {
          values[s.key] = h("span", { class: "n" });
          return h("div", { class: "tile" }, values[s.key], h("span", { class: "t" }, s.label), h("span", { class: "hint" }, s.hint));
        })
      )
    );
    function update(c) {
      const sk = c.skipped || {};
      for (const s of SKIPPED) put(values[s.key], num(sk[s.key] || 0));
      const any = SKIPPED.some((s) => sk[s.key]);
      el.hidden = !any && c.trigger !== "manual" && c.trigger !== "recurring";
    }
    return { el, update };
  }

  async function campaignPage(main, params, _query, isCurrent) {
    const id = params.id;
    put(main, h("h1", {}, "Campaign"), C.spinner("Loading the campaign…"));
    let c;
    try {
      c = await api("GET", campaignPath(id));
    } catch (e) {
      if (!isCurrent()) return;
      put(main, h("p", {}, h("a", { href: C.link("campaigns") }, "← Campaigns")), h("h1", {}, "Campaign"), C.problem(e));
      return;
    }
    const [templates, divisions] = await Promise.all([lookup("/v1/templates"), lookup("/v1/divisions")]);
    if (!isCurrent()) return;

    const first = c.division_ids[0];
    const statusBox = h("span", {});
    const progress = progressView();
    const results = resultsView(id);
    const skipped = skippedView();
    const refreshed = h("span", { class: "muted" });
    const pollError = h("div", {});
    const refresh = h("button", { type: "button" }, "Refresh results");
    results.top(h("div", { class: "actions" }, refresh, refreshed), pollError);

    function update(next) {
      c = next;
      put(statusBox, statusPill(c.status));
      progress.update(c);
      results.update(c.statistics);
      skipped.update(c);
      refresh.hidden = ACTIVE.has(c.status);
      put(refreshed, ACTIVE.has(c.status) ? "Updating every second." : `Results as of ${new Date().toLocaleTimeString(undefined, { timeStyle: "short" })}; opens, clicks and registrations keep coming in for days.`);
    }
    let schedule = () => {};
    const load = async () => {
      update(await api("GET", campaignPath(id)));
      schedule(); // a resumed campaign is followed again
    };
    refresh.addEventListener("click", () => C.busy(refresh, load, pollError));

    put(
      main,
      h("p", { class: "crumbs" }, h("a", { href: C.campaignsLink(first) }, `← Campaigns of ${divisionName(divisions, first)}`)),
      h("h1", {}, `Campaign of ${when(c.created_at)}`),
      h(
        "dl",
        { class: "kv" },
        h("dt", {}, "Status"), h("dd", {}, statusBox),
        h("dt", {}, "Template"), h("dd", {}, templateName(templates, c.template_id)),
        h("dt", {}, "Email from"), h("dd", { class: "break" }, c.email_from),
        h("dt", {}, "Kind"), h("dd", {}, TRIGGER[c.trigger] || C.label(c.trigger)),
        h("dt", {}, "Started by"), h("dd", {}, c.created_by),
        c.recurring && [h("dt", {}, "Run for"), h("dd", {}, c.recurring.local_date)],
        h("dt", {}, c.division_ids.length === 1 ? "Division" : "Divisions"),
        h("dd", {}, c.division_ids.map((d, i) => [i ? ", " : "", h("a", { href: C.campaignsLink(d) }, divisionName(divisions, d))])),
        h("dt", {}, "Contacts"), h("dd", {}, selectionText(c)),
        h("dt", {}, "Created"), h("dd", {}, `${when(c.created_at)} (${C.ago(c.created_at)})`)
      ),
      progress.el,
      results.el,
      skipped.el
    );
    update(c);

    // Live progress: poll every second while the campaign is on its way; stop when it is
    // done or the manager leaves the page. Failures back off and say so.
    let failures = 0;
    let timer = null;
    const tick = async () => {
      timer = null;
      if (!isCurrent() || !ACTIVE.has(c.status)) return;
      try {
        const next = await api("GET", campaignPath(id));
        if (!isCurrent()) return;
        failures = 0;
        clear(pollError);
        update(next);
      } catch (e) {
        if (!isCurrent()) return;
        failures += 1;
        put(pollError, C.problem(e));
        if (e.status === 401 || e.status === 403 || e.status === 404) return;
      }
      schedule();
    };
    schedule = () => {
      if (timer || !isCurrent() || !ACTIVE.has(c.status)) return;
      const wait = failures ? Math.min(30000, 1000 * 2 ** failures) : document.hidden ? 5000 : 1000;
      timer = setTimeout(tick, wait);
    };
    schedule();
  }

  // ---------- the recipients of a campaign (one category or all) ----------

  async function recipientsPage(main, params, query, isCurrent) {
    const id = params.id;
    let category = CATEGORY[query.get("category")] ? query.get("category") : "";
    let q = query.get("q") || "";
    put(main, h("h1", {}, "Recipients"), C.spinner());
    let c;
    try {
      c = await api("GET", campaignPath(id));
    } catch (e) {
      if (!isCurrent()) return;
      put(main, h("p", {}, h("a", { href: C.link("campaigns") }, "← Campaigns")), h("h1", {}, "Recipients"), C.problem(e));
      return;
    }
    if (!isCurrent()) return;
    const stats = c.statistics || {};
    const heading = h("h1", {});
    const title = () => `${category ? CATEGORY[category].label : "All recipients"} · campaign of ${when(c.created_at)}`;

    const select = h(
      "select",
      { name: "category" },
      h("option", { value: "" }, `All categories (${num(stats.total)})`),
      CATEGORIES.map((cat) => h("option", { value: cat.key, selected: cat.key === category }, `${cat.label} (${num(stats[cat.key])})`))
    );
    const search = h("input", { type: "search", name: "q", value: q, maxlength: 200, autocomplete: "off" });
    const go = h("button", { type: "submit", class: "primary" }, "Search");
    const csv = h("button", { type: "button" }, "Download CSV");
    const errors = h("div", {});
    const about = h("p", { class: "muted" });

    const opts = {
      load: (cursor) => api("POST", `${campaignPath(id)}/recipients`, { body: { category: category || undefined, q: q || undefined, cursor: cursor || undefined, limit: 50 } }),
      columns: [
        { title: "Contact", get: (r) => [h("span", { class: "name" }, r.contact_name || "–"), h("span", { class: "muted email" }, r.email)] },
        { title: "Account", get: (r) => h("span", { class: "nowrap" }, r.account_number) },
        { title: "Category", get: (r) => (CATEGORY[r.category] ? CATEGORY[r.category].label : C.label(r.category)) },
        { title: "Send", get: (r) => h("span", { class: `pill${r.send_state === "failed" ? " bad" : r.send_state === "sent" ? " ok" : ""}` }, SEND_STATE[r.send_state] || r.send_state) },
        { title: "Reason", get: (r) => r.reason || "" },
        { title: "Invited", get: (r) => h("span", { class: "nowrap" }, when(r.invited_at)) },
      ],
      empty: "No recipient matches.",
      onpage: () => scrollable(list.el, opts.caption),
    };
    const list = C.pagedList(opts);
    function show() {
      put(heading, title());
      document.title = `${category ? CATEGORY[category].label : "Recipients"} · Portal Invitations`;
      opts.caption = title();
      put(about, category ? CATEGORY[category].hint : "Every invitation of the campaign.", q ? ` Matching “${q}”.` : "");
      setAddress("campaigns", id, "recipients", { category: category || null, q: q || null });
      return list.reload();
    }
    select.addEventListener("change", () => {
      category = select.value;
      show();
    });
    const form = h(
      "form",
      { class: "row", role: "search", "aria-label": "Recipients" },
      C.field("Category", select),
      C.field("Search", search, "Email, contact name or account number"),
      h("div", { class: "field" }, go)
    );
    form.addEventListener("submit", (ev) => {
      ev.preventDefault();
      q = search.value.trim();
      show();
    });
    csv.addEventListener("click", () => C.busy(csv, () => downloadCsv(id, category, q), errors));

    put(
      main,
      h("p", { class: "crumbs" }, h("a", { href: C.campaignLink(id) }, "← Campaign results")),
      heading,
      about,
      form,
      h("div", { class: "actions" }, csv),
      errors,
      list.el
    );
    await show();
  }

  // ---------- a division's history of campaigns ----------

  async function historyPage(main, _params, query, isCurrent) {
    put(main, h("h1", {}, "Campaigns"), C.spinner());
    const [divisions, templates] = await Promise.all([C.all("/v1/divisions"), lookup("/v1/templates")]);
    if (!isCurrent()) return;
    if (!divisions.length) {
      put(main, h("h1", {}, "Campaigns"), h("p", { class: "msg" }, "There are no divisions yet: campaigns appear here once divisions are synced and invitations sent."));
      return;
    }
    const asked = query.get("division");
    let division = divisions.some((d) => d.division_id === asked) ? asked : divisions[0].division_id;
    const notice = asked && asked !== division ? h("p", { class: "msg warn" }, `There is no division “${asked}”; showing ${divisions[0].name}.`) : null;

    const select = h(
      "select",
      { name: "division" },
      divisions.map((d) => h("option", { value: d.division_id, selected: d.division_id === division }, d.name))
    );
    const lastSent = h("p", { class: "muted" });
    const opts = {
      load: (cursor) => api("GET", "/v1/campaigns", { query: { division_id: division, cursor, limit: 25 } }),
      columns: [
        { title: "Created", get: (r) => h("a", { href: C.campaignLink(r.campaign_id) }, when(r.created_at)) },
        { title: "Trigger", get: (r) => TRIGGER[r.trigger] || C.label(r.trigger) },
        { title: "Template", get: (r) => templateName(templates, r.template_id) },
        { title: "Sent", num: true, get: (r) => num((r.sends || {}).sent) },
        { title: "Registered", num: true, get: (r) => num((r.statistics || {}).registered) },
        { title: "Success rate", num: true, get: (r) => pct((r.statistics || {}).success_rate) },
        { title: "Status", get: (r) => statusPill(r.status) },
      ],
      empty: "No invitations were sent to this division yet.",
      onpage: () => scrollable(list.el, opts.caption),
    };
    const list = C.pagedList(opts);
    function show() {
      const d = divisions.find((x) => x.division_id === division);
      opts.caption = `Campaigns of ${d.name}, newest first`;
      put(lastSent, d.last_bulk_sent_at ? `Last bulk send ${when(d.last_bulk_sent_at)} (${C.ago(d.last_bulk_sent_at)}).` : "No bulk send yet.");
      setAddress("campaigns", { division });
      return list.reload();
    }
    select.addEventListener("change", () => {
      division = select.value;
      show();
    });
    const refresh = h("button", { type: "button" }, "Refresh");
    refresh.addEventListener("click", () => C.busy(refresh, () => list.reload()));

    put(
      main,
      h("h1", {}, "Campaigns"),
      notice,
      h("p", {}, "Every invitation sent to a division — bulk, individual and recurring — newest first. Open one to see its results."),
      C.field("Division", select),
      lastSent,
      h("div", { class: "actions" }, refresh, C.can("invitations:send") && h("a", { href: C.link("invitations") }, "Send invitations")),
      list.el
    );
    await show();
  }

  C.page("campaigns", historyPage, { nav: "Campaigns", title: "Campaigns", permission: "invitations:read" });
  C.page("campaigns/:id", campaignPage, { title: "Campaign", permission: "invitations:read" });
  C.page("campaigns/:id/recipients", recipientsPage, { title: "Campaign recipients", permission: "invitations:read" });
})();
