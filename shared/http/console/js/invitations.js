// invitations.js — the Invitations page (divisions, filters, Load counts, the tiles), each
// count's list (search, pages, CSV, invite one or the ticked rows), and Compose and send.
// The selection lives in sessionStorage so the list and send pages see what was counted.

(() => {
  const { h, put, api, busy, field, check, num } = C;
  const SEL_KEY = "portal.console.selection";
  const PICK_KEY = "portal.console.picked";

  const FILTERS = C.VALUE_FILTERS;
  const SWITCHES = C.SWITCHES;
  // The tiles, in the words of the reference products; `key` tiles are what a send targets.
  const TILES = [
    ["total", "Total contacts", "Every contact that passes the filters."],
    ["active_services", "Active services", "Contacts on accounts with active services."],
    ["accepted", "Accepted", "Registered on the portal: never invited again."],
    ["pending", "Pending", "Invited, not registered yet."],
    ["not_sent", "Not sent", "Never invited."],
    ["eligible", "Eligible now", "A send now invites these.", true],
    ["held_24h", "Held 24 h", "Invited less than 24 hours ago: a send now skips them.", true],
    ["suppressed", "Suppressed", "Bounced, complained or unsubscribed: skipped.", true],
    ["no_email", "No email", "No address to send to: skipped.", true],
  ];
  const GROUP_NAMES = Object.fromEntries(TILES.map(([k, t]) => [k, t]));

  function emptySelection() {
    return { division_ids: [], filters: {}, limit_to_uninvited: true };
  }
  function loadSelection() {
    try {
      return Object.assign(emptySelection(), JSON.parse(sessionStorage.getItem(SEL_KEY) || "{}"));
    } catch (_) {
      return emptySelection();
    }
  }
  const saveSelection = (sel) => sessionStorage.setItem(SEL_KEY, JSON.stringify(sel));
  const loadPicked = () => JSON.parse(sessionStorage.getItem(PICK_KEY) || "[]");
  const savePicked = (ids) => sessionStorage.setItem(PICK_KEY, JSON.stringify(ids));

  let divisionsCache = null;
  async function divisions() {
    if (!divisionsCache) divisionsCache = await C.all("/v1/divisions");
    return Array.isArray(divisionsCache) ? divisionsCache : divisionsCache.items || [];
  }
  C.divisions = divisions;

  function describeSelection(sel, all) {
    const names = sel.division_ids.length ? sel.division_ids.map((id) => (all.find((d) => d.division_id === id) || { name: id }).name) : ["all divisions"];
    const parts = [names.join(", ")];
    for (const [k, label] of FILTERS) if ((sel.filters[k] || []).length) parts.push(`${label}: ${sel.filters[k].join(", ")}`);
    for (const [k, label] of SWITCHES) if (sel.filters[k]) parts.push(label.charAt(0).toLowerCase() + label.slice(1));
    parts.push(sel.limit_to_uninvited ? "contacts without an existing invitation" : "pending contacts invited again");
    return parts.join(" · ");
  }

  // ---------- the divisions picker: search, "All divisions", one box per division ----------

  function divisionPicker(all, sel, onchange) {
    const search = h("input", { type: "search", placeholder: "Type to filter divisions", autocomplete: "off" });
    const allBox = check("All divisions", { checked: sel.division_ids.length === 0 });
    const list = h("div", { class: "multi", role: "group", "aria-label": "Divisions" });
    const boxes = all.map((d) => {
      const c = check(`${d.name} (${d.division_id})`, { value: d.division_id, checked: sel.division_ids.includes(d.division_id) });
      c.el.dataset.text = `${d.name} ${d.division_id}`.toLowerCase();
      c.box.addEventListener("change", () => {
        sel.division_ids = boxes.filter((b) => b.box.checked).map((b) => b.box.value);
        allBox.box.checked = sel.division_ids.length === 0;
        onchange();
      });
      return c;
    });
    allBox.box.addEventListener("change", () => {
      if (allBox.box.checked) for (const b of boxes) b.box.checked = false;
      sel.division_ids = allBox.box.checked ? [] : sel.division_ids;
      if (!allBox.box.checked && !sel.division_ids.length) allBox.box.checked = true;
      onchange();
    });
    search.addEventListener("input", () => {
      const q = search.value.trim().toLowerCase();
      for (const b of boxes) b.el.hidden = !!q && !b.el.dataset.text.includes(q);
    });
    put(list, allBox.el, boxes.map((b) => b.el));
    return h("fieldset", {}, h("legend", {}, "Divisions"), field("Search divisions", search), list);
  }

  // ---------- filters whose choices come from the data ----------

  async function filterValues(sel) {
    try {
      return await api("GET", "/v1/divisions/filter-values", { query: { division_id: sel.division_ids } });
    } catch (e) {
      if (e.status === 404 || e.status === 405) return null;
      throw e;
    }
  }

  function filterChoices(values, sel) {
    const wrap = h("div", { class: "grid" });
    const pool = (values && (values.all || values)) || {};
    for (const [key, label] of FILTERS) {
      const chosen = new Set(sel.filters[key] || []);
      const opts = (pool[key] || []).map((v) => (typeof v === "string" ? { value: v } : v));
      for (const v of chosen) if (!opts.some((o) => o.value === v)) opts.push({ value: v, count: 0 });
      const group = h("div", { class: "multi", role: "group", "aria-label": label });
      if (!opts.length) group.append(h("p", { class: "muted" }, "No values in these divisions."));
      for (const o of opts) {
        const c = check(`${o.value || "(blank)"}${o.count !== undefined ? ` (${num(o.count)})` : ""}`, { value: o.value, checked: chosen.has(o.value) });
        c.box.addEventListener("change", () => {
          if (c.box.checked) chosen.add(o.value);
          else chosen.delete(o.value);
          sel.filters[key] = [...chosen];
          if (!sel.filters[key].length) delete sel.filters[key];
        });
        group.append(c.el);
      }
      wrap.append(h("fieldset", {}, h("legend", {}, label), h("p", { class: "hint muted" }, "None ticked = any."), group));
    }
    return wrap;
  }

  // ---------- the tiles ----------

  // What a send now emails: eligible contacts but those whose address another one shares
  // (one invitation per address per 24 hours).
  function emailed(counts) {
    return counts.eligible - (counts.duplicate_address || 0);
  }

  function tiles(counts) {
    const dup = counts.duplicate_address || 0;
    const t = (row) => {
      const [key, title, hint, target] = row;
      return h("a", { class: `tile${target ? " key" : ""}`, href: C.link("invitations", "list", key), "aria-describedby": `tile-${key}` }, h("span", { class: "n" }, num(counts[key])), h("span", { class: "t" }, title), h("span", { class: "sr", id: `tile-${key}` }, hint));
    };
    return [
      h("h2", {}, "Contacts"),
      h("div", { class: "tiles", "data-testid": "status-tiles" }, TILES.filter((r) => !r[3]).map(t)),
      h("h2", {}, "If you send now"),
      h("div", { class: "tiles", "data-testid": "send-tiles" }, TILES.filter((r) => r[3]).map(t)),
      dup ? h("p", { class: "muted", "data-testid": "duplicate-address" }, `${num(dup)} of the eligible share an address with another contact: one invitation per address, so a send now emails ${num(emailed(counts))}.`) : null,
    ];
  }

  // ---------- Invitations ----------

  C.page(
    "invitations",
    async (main, _params, _query, isCurrent) => {
      const sel = loadSelection();
      const all = await divisions();
      if (!isCurrent()) return;
      const filtersBox = h("div", {}, C.spinner("Loading filter choices…"));
      const switches = SWITCHES.map(([k, label]) => {
        const c = check(label, { checked: !!sel.filters[k] });
        c.box.addEventListener("change", () => {
          if (c.box.checked) sel.filters[k] = true;
          else delete sel.filters[k];
        });
        return c.el;
      });
      const uninvited = check("Limit to contacts without an existing invitation", { checked: sel.limit_to_uninvited });
      uninvited.box.addEventListener("change", () => (sel.limit_to_uninvited = uninvited.box.checked));
      const results = h("section", { "aria-live": "polite", "aria-label": "Counts" });
      const errors = h("div", {});
      const loadBtn = h("button", { class: "primary", type: "submit" }, "Load counts");

      async function refreshFilters() {
        const values = await filterValues(sel).catch((e) => {
          put(filtersBox, C.problem(e));
          return undefined;
        });
        if (values === undefined || !isCurrent()) return;
        put(filtersBox, values ? filterChoices(values, sel) : h("p", { class: "muted" }, "Filter choices are not available on this server."));
      }

      async function loadCounts() {
        saveSelection(sel);
        const started = performance.now();
        const counts = await api("POST", "/v1/invitations/counts", { body: sel });
        const ms = Math.round(performance.now() - started);
        sessionStorage.setItem("portal.console.counts", JSON.stringify({ sel, counts }));
        put(results, tiles(counts), h("p", { class: "muted" }, `For ${describeSelection(sel, all)}.`), sendBar(counts, sel, all));
        results.dataset.loadMs = String(ms);
      }

      const form = h(
        "form",
        { class: "panel", "aria-label": "Who to count" },
        h("div", { class: "cols" }, divisionPicker(all, sel, refreshFilters), h("fieldset", {}, h("legend", {}, "Accounts and contacts"), switches)),
        h("h2", {}, "Filters"),
        filtersBox,
        uninvited.el,
        h("div", { class: "actions" }, loadBtn),
        errors,
      );
      form.addEventListener("submit", (ev) => {
        ev.preventDefault();
        busy(loadBtn, loadCounts, errors);
      });
      put(main, h("h1", {}, "Invitations"), h("p", {}, "Pick divisions and filters, then load counts. Click a count to see its contacts."), form, results);
      refreshFilters();
      const last = JSON.parse(sessionStorage.getItem("portal.console.counts") || "null");
      if (last && JSON.stringify(last.sel) === JSON.stringify(sel)) put(results, tiles(last.counts), h("p", { class: "muted" }, `For ${describeSelection(sel, all)} (loaded earlier).`), sendBar(last.counts, sel, all));
    },
    { nav: "Invitations", title: "Invitations", permission: "invitations:read" },
  );

  function sendBar(counts, sel, all) {
    if (!C.can("invitations:send")) return h("p", { class: "muted" }, "Your sign-in can read counts but not send invitations.");
    const n = emailed(counts);
    const divs = sel.division_ids.length || all.length;
    return h(
      "div",
      { class: "panel" },
      h("h2", {}, "Send"),
      h("p", {}, n ? `${num(n)} contacts in ${num(divs)} division${divs === 1 ? "" : "s"} would be invited now.` : "No contact would be invited now."),
      h("a", { class: "button primary", href: C.link("invitations", "send"), "aria-disabled": n ? null : "true" }, "Compose and send"),
    );
  }

  // ---------- one count's list ----------

  C.page(
    "invitations/list/:group",
    async (main, { group }, query) => {
      const sel = loadSelection();
      const all = await divisions();
      const title = GROUP_NAMES[group] || C.label(group);
      const picked = new Set();
      const canSend = C.can("invitations:send");
      const search = h("input", { type: "search", value: query.get("q") || "", autocomplete: "off" });
      const selectedBar = h("div", { class: "actions" });
      const columns = [
        { title: "Contact", get: (r) => [h("div", {}, r.contact_name || "–"), h("div", { class: "muted" }, r.email || h("span", { class: "pill warn" }, "no email"))] },
        { title: "Account", get: (r) => [h("div", {}, r.account_number), h("div", { class: "muted" }, r.account_name)] },
        { title: "Portal status", get: (r) => h("span", { class: `pill ${r.portal_status === "accepted" ? "ok" : ""}` }, C.label(r.portal_status)) },
        { title: "Last invite sent", get: (r) => C.when(r.last_invite_sent) },
        { title: "Last login", get: (r) => C.when(r.last_login) },
        { title: "Autopay", get: (r) => (r.has_autopay ? "Yes" : "No") },
      ];
      if (canSend) {
        columns.push({
          title: "Invite",
          get: (r) => {
            if (r.portal_status === "accepted" || !r.email) return "";
            const b = h("button", { type: "button", "aria-label": `Invite ${r.contact_name || r.email}` }, "Invite");
            b.addEventListener("click", () => inviteOne(r));
            return b;
          },
        });
      }
      function renderBar() {
        put(selectedBar, h("span", {}, `${num(picked.size)} selected`), picked.size ? h("button", { type: "button", class: "primary", onclick: () => inviteSelected() }, "Invite selected") : null, picked.size ? h("button", { type: "button", onclick: () => { picked.clear(); list.reload(); renderBar(); } }, "Clear selection") : null);
      }
      function inviteSelected() {
        savePicked([...picked]);
        C.go("invitations", "send", { selection: "picked" });
      }
      const body = () => Object.assign({}, sel, { group, q: search.value.trim() || null });
      const list = C.pagedList({
        load: (cursor) => api("POST", "/v1/invitations/recipients", { body: Object.assign(body(), { cursor, limit: 50 }) }),
        columns,
        caption: `${title} contacts`,
        empty: search.value ? "No contact matches the search." : "No contacts in this count.",
        select: canSend ? { key: (r) => r.contact_id, name: (r) => r.contact_name || r.email, selected: picked, onchange: renderBar } : null,
      });
      const csv = h("button", { type: "button" }, "Download CSV");
      const errors = h("div", {});
      csv.addEventListener("click", () => busy(csv, () => C.download("POST", "/v1/invitations/recipients", body(), `${group}.csv`), errors));
      const searchForm = h("form", { class: "row", role: "search" }, field("Search contacts", search, "Email, name, account number or account name"), h("button", { type: "submit" }, "Search"));
      searchForm.addEventListener("submit", (ev) => {
        ev.preventDefault();
        list.reload();
      });
      put(
        main,
        h("p", {}, h("a", { href: C.link("invitations") }, "← Back to counts")),
        h("h1", {}, title),
        h("p", { class: "muted" }, countOf(sel, group) !== null ? `${num(countOf(sel, group))} contacts · ` : "", `${describeSelection(sel, all)}.`),
        searchForm,
        h("div", { class: "actions" }, csv, canSend ? selectedBar : null),
        errors,
        list.el,
      );
      renderBar();
      list.reload();
    },
    { title: "Contacts", permission: "invitations:read" },
  );

  // The count of a group for this selection, if it was loaded.
  function countOf(sel, group) {
    const last = JSON.parse(sessionStorage.getItem("portal.console.counts") || "null");
    return last && JSON.stringify(last.sel) === JSON.stringify(sel) && last.counts[group] !== undefined ? last.counts[group] : null;
  }

  // ---------- invite one contact ----------

  async function invitationTemplates() {
    const page = await C.all("/v1/templates");
    const items = Array.isArray(page) ? page : page.items || [];
    return items.filter((t) => (t.kind || "invitation") === "invitation");
  }

  async function inviteOne(r) {
    const templates = await invitationTemplates().catch(() => []);
    const select = h("select", {}, templates.map((t) => h("option", { value: t.template_id }, t.name)));
    const from = h("input", { type: "email", placeholder: "The division's address", autocomplete: "off" });
    const box = h("div", {});
    const body = h("div", {}, h("p", {}, `Send an invitation to ${r.contact_name || ""} <${r.email}> now.`), templates.length ? field("Template", select) : h("p", { class: "msg bad" }, "There is no invitation template yet: create one under Templates."), field("Email from", from, "Leave empty to use the division's address."), box);
    if (!templates.length) return C.confirmDialog("Invite a contact", body, "Close");
    if (!(await C.confirmDialog("Invite a contact", body, "Send invitation"))) return;
    try {
      const started = await api("POST", "/v1/invitations/individual", { body: { contact_id: r.contact_id, template_id: select.value, email_from: from.value.trim() || undefined } });
      C.say(h("span", {}, `Invitation sent to ${r.email}. `, h("a", { href: C.link("campaigns", started.campaign_id) }, "See how it fares")), "ok");
    } catch (e) {
      put(document.getElementById("status"), C.problem(e));
    }
  }

  // ---------- Compose and send ----------

  C.page(
    "invitations/send",
    async (main, _params, query, isCurrent) => {
      const picked = query.get("selection") === "picked" ? loadPicked() : null;
      const sel = loadSelection();
      const all = await divisions();
      const templates = await invitationTemplates();
      if (!isCurrent()) return;
      const errors = h("div", {});
      const summary = h("div", { class: "panel", "aria-live": "polite" }, C.spinner("Counting who would be invited…"));
      let target = { contacts: 0, divisions: 0 };
      const divisionIds = sel.division_ids.length ? sel.division_ids : all.map((d) => d.division_id);
      const defaultFrom = (all.find((d) => d.division_id === divisionIds[0]) || {}).email_from || "";

      if (picked) {
        target = { contacts: picked.length, divisions: null };
        put(summary, h("h2", {}, "Who"), h("p", {}, `${num(picked.length)} hand-picked contact${picked.length === 1 ? "" : "s"}. Contacts invited in the last 24 hours, suppressed addresses, contacts without email and registered contacts are skipped.`));
      } else {
        api("POST", "/v1/invitations/counts", { body: sel })
          .then((counts) => {
            target = { contacts: emailed(counts), divisions: divisionIds.length };
            put(summary, h("h2", {}, "Who"), h("p", {}, `${num(target.contacts)} contacts in ${num(divisionIds.length)} division${divisionIds.length === 1 ? "" : "s"}: ${describeSelection(sel, all)}.`), h("p", { class: "muted" }, `Skipped: ${num(counts.held_24h)} held 24 h, ${num(counts.suppressed)} suppressed, ${num(counts.no_email)} without email, ${num(counts.duplicate_address || 0)} sharing an address with another.`));
          })
          .catch((e) => put(summary, C.problem(e)));
      }

      const pick = h("select", {}, templates.map((t) => h("option", { value: t.template_id }, t.name)));
      const editorBox = h("div", {});
      let editor = null;
      async function showTemplate() {
        const t = templates.find((x) => x.template_id === pick.value);
        if (!t) return put(editorBox, h("p", { class: "msg warn" }, "There is no invitation template yet. ", h("a", { href: C.link("templates", "new") }, "Create one"), " first."));
        const full = await api("GET", `/v1/templates/${encodeURIComponent(t.template_id)}`);
        if (C.templateEditor) {
          editor = C.templateEditor({ template: full, kind: "invitation", readOnly: !C.can("settings:manage") });
          put(editorBox, editor.el);
          C.guardLeave(() => editor.dirty());
          // Preview as someone this send would invite, not the server's sample contact.
          if (!picked) {
            api("POST", "/v1/invitations/recipients", { body: Object.assign({}, sel, { group: "eligible", limit: 1 }) })
              .then((page) => page.items && page.items[0] && editor.setContact(page.items[0]))
              .catch(() => {});
          }
        } else {
          const p = await api("POST", "/v1/invitations/preview", { body: { template_id: t.template_id } });
          put(editorBox, C.previewFrame ? C.previewFrame(p) : h("pre", {}, p.text));
        }
      }
      pick.addEventListener("change", () => showTemplate().catch((e) => put(editorBox, C.problem(e))));

      // Only senders the tenant's sender settings allow are offered (and accepted by the API).
      const senders = await api("GET", "/v1/settings/senders");
      if (!isCurrent()) return;
      const allowed = (addr) => {
        const a = String(addr || "").trim().toLowerCase();
        const at = a.lastIndexOf("@");
        return at > 0 && (senders.addresses.some((x) => x.toLowerCase() === a) || senders.domains.includes(a.slice(at + 1)));
      };
      const offered = [...new Set([defaultFrom, ...senders.addresses].filter(allowed))];
      const listId = C.id("senders");
      const from = h("input", { type: "email", value: allowed(defaultFrom) ? defaultFrom : offered[0] || "", autocomplete: "off", required: true, list: listId });
      const choices = h("datalist", { id: listId }, offered.map((a) => h("option", { value: a })));
      const configured = senders.domains.length + senders.addresses.length > 0;
      const fromHint = configured
        ? `Allowed: ${[...senders.domains.map((d) => "any address at " + d), ...senders.addresses].join("; ")}.`
        : "No sender is allowed yet.";
      const senderNote = !configured
        ? h("div", { class: "msg warn", role: "alert" }, h("p", {}, h("strong", {}, "No sender settings yet: nothing can be sent.")), h("p", {}, "Someone with the settings permission must add the domains or addresses your company sends from under ", h("a", { href: C.link("senders") }, "Senders"), "."))
        : !allowed(defaultFrom) && defaultFrom
          ? h("p", { class: "msg warn" }, `The division's address ${defaultFrom} is not an allowed sender, so it is not offered.`)
          : null;
      const sendBtn = h("button", { class: "primary", type: "submit", disabled: configured ? null : true }, "Send invitations");
      const idempotencyKey = crypto.getRandomValues(new Uint32Array(4)).join("-");
      const form = h(
        "form",
        { "aria-label": "Compose and send" },
        summary,
        h("h2", {}, "Template"),
        field("Template", pick, "The invitation to send; edit it below (saving changes the template for every future send)."),
        editorBox,
        h("h2", {}, "Sender"),
        senderNote,
        field("Email from", from, `Defaults to the division's address when it is allowed. ${fromHint}`),
        choices,
        h("div", { class: "actions" }, sendBtn),
        errors,
      );
      form.addEventListener("submit", async (ev) => {
        ev.preventDefault();
        C.fieldError(from, null);
        if (!pick.value) return;
        if (!allowed(from.value)) {
          C.fieldError(from, configured ? `Send from an allowed sender. ${fromHint}` : "No sender is allowed yet: add one under Senders first.");
          from.focus();
          return;
        }
        if (editor && editor.dirty && editor.dirty()) {
          put(errors, h("div", { class: "msg warn", role: "alert" }, "Save the template changes (or undo them) before sending: a campaign sends the saved template."));
          return;
        }
        const who = picked ? `${num(target.contacts)} hand-picked contact${target.contacts === 1 ? "" : "s"}` : `${num(target.contacts)} contacts in ${num(target.divisions)} division${target.divisions === 1 ? "" : "s"}`;
        const tname = (templates.find((t) => t.template_id === pick.value) || {}).name;
        const ok = await C.confirmDialog("Send invitations?", h("div", {}, h("p", {}, `Send “${tname}” from ${from.value} to ${who}?`), h("p", { class: "muted" }, "Each contact gets at most one invitation in 24 hours; a division can be bulk-sent once every 24 hours.")), "Send now");
        if (!ok) return;
        await busy(
          sendBtn,
          async () => {
            const body = picked ? { contact_ids: picked, template_id: pick.value, email_from: from.value.trim() || undefined } : { division_ids: divisionIds, filters: sel.filters, limit_to_uninvited: sel.limit_to_uninvited, template_id: pick.value, email_from: from.value.trim() || undefined };
            try {
              const started = await api("POST", "/v1/campaigns", { body, headers: { "Idempotency-Key": idempotencyKey } });
              C.go("campaigns", started.campaign_id);
            } catch (e) {
              if (e.status === 409) {
                const d = all.find((x) => x.division_id === e.problem.division_id);
                const again = e.problem.retry_after ? C.when(e.problem.retry_after) : "in 24 hours";
                put(errors, h("div", { class: "msg bad", role: "alert" }, h("p", {}, h("strong", {}, `${d ? d.name : "A division"} was sent less than 24 hours ago.`)), h("p", {}, `It can be sent again ${e.problem.retry_after ? "after " : ""}${again}. Untick it, or hand-pick contacts from a list instead.`)));
                return;
              }
              if (e.status === 422 && /email_from|sender|from/i.test(e.message)) {
                C.fieldError(from, e.message);
                return;
              }
              throw e;
            }
          },
          errors,
        );
      });
      put(main, h("p", {}, h("a", { href: C.link("invitations") }, "← Back to counts")), h("h1", {}, "Compose and send"), form);
      showTemplate().catch((e) => put(editorBox, C.problem(e)));
    },
    { title: "Compose and send", permission: "invitations:send" },
  );
})();
