// recurring.js — recurring invitations (permission settings:manage): the list of settings
// (#/recurring), one setting's form (#/recurring/<id>, #/recurring/new) with who its next run
// would target (preview) and its past runs, each linking to its campaign.
(() => {
  const { h, api, put, clear, field, fieldError, problem, busy, spinner, link, when, num } = C;

  const SCOPES = [
    ["all", "All current and future divisions", "Every division, including divisions added later."],
    ["new_divisions_only", "New divisions only", "Only divisions first synced after this setting was first saved."],
    ["divisions", "Only the divisions I choose", null],
  ];
  const SWITCHES = C.SWITCHES;
  const VALUE_FILTERS = C.VALUE_FILTERS;
  // The preview's counts, in the order and words of the Invitations page.
  const COUNTS = [
    ["eligible", "Would be invited now", "Never invited, or pending and due again (cadence and maximum), with an email, not suppressed, not invited in the last 24 hours."],
    ["total", "Total contacts", "Every contact in the divisions and filters."],
    ["not_sent", "Not sent", "Never invited."],
    ["pending", "Pending", "Invited, not yet registered — including those not due again yet."],
    ["accepted", "Accepted", "Already registered: never invited again."],
    ["held_24h", "Held 24 h", "Invited less than 24 hours ago: the run skips them."],
    ["suppressed", "Suppressed", "Bounced, complained or unsubscribed."],
    ["no_email", "No email", "No address to send to."],
    ["active_services", "Active services", "On accounts with active services."],
  ];
  const FIELDS = ["recurring_id", "enabled", "scope", "division_ids", "filters", "template_id", "email_from", "cadence_days", "max_invitations_per_contact", "hour_of_day", "time_zone"];
  const ID_RE = /^[A-Za-z0-9._:-]{1,64}$/;

  // A message to show once on the next page drawn (survives C.go's re-render).
  let flash = null;

  const hourText = (hr) => new Date(2000, 0, 1, hr).toLocaleTimeString(undefined, { hour: "numeric", minute: "2-digit" });
  // An instant as the setting's own clock shows it: "Dec 1, 2026, 9:00 AM (America/Chicago)".
  function inZone(iso, tz) {
    if (!iso) return "–";
    try {
      return `${new Date(iso).toLocaleString(undefined, { dateStyle: "medium", timeStyle: "short", timeZone: tz })} (${tz.replace(/_/g, " ")})`;
    } catch (_) {
      return when(iso);
    }
  }
  function until(iso) {
    const s = (new Date(iso).getTime() - Date.now()) / 1000;
    if (!Number.isFinite(s)) return "";
    if (s < 60) return "in less than a minute";
    if (s < 3600) return `in ${Math.round(s / 60)} min`;
    if (s < 86400) return `in ${Math.round(s / 3600)} h`;
    return `in ${Math.round(s / 86400)} days`;
  }

  async function lookups() {
    // Both lists need invitations:read; without it the form takes ids as typed.
    const read = C.can("invitations:read");
    const [divisions, templates] = await Promise.all([
      read ? C.all("/v1/divisions").catch(() => null) : null,
      read ? C.all("/v1/templates").catch(() => null) : null,
    ]);
    return {
      divisions,
      templates: templates && templates.filter((t) => (t.kind || "invitation") === "invitation"),
      divName: (id) => ((divisions || []).find((d) => d.division_id === id) || {}).name || id,
      tplName: (id) => ((templates || []).find((t) => t.template_id === id) || {}).name || id,
    };
  }

  function scopeText(s, lk) {
    if (s.scope === "all") return "All current and future divisions";
    if (s.scope === "new_divisions_only") return "New divisions only";
    return s.division_ids.map(lk.divName).join(", ");
  }
  const scheduleText = (s) => `Every day at ${hourText(s.hour_of_day)} (${s.time_zone})`;
  const reminderText = (s) => `Pending contacts again every ${s.cadence_days} day${s.cadence_days === 1 ? "" : "s"}, at most ${s.max_invitations_per_contact} invitation${s.max_invitations_per_contact === 1 ? "" : "s"} each`;
  const onPill = (on) => h("span", { class: `pill ${on ? "ok" : ""}` }, on ? "On" : "Off");

  // Shows the pending message in `box` and returns it (to be focused once on the page).
  function showFlash(box) {
    if (!flash) return null;
    const m = h("div", { class: `msg ${flash.kind}`, tabindex: "-1" }, h("p", {}, flash.text));
    box.append(m);
    flash = null;
    return m;
  }

  // ---------- the list ----------

  async function listPage(main, params, query, isCurrent) {
    const heading = h("h1", {}, "Recurring invitations");
    const top = h("div", {});
    const said = showFlash(top);
    put(main, heading, top, spinner());
    const [settings, lk] = await Promise.all([api("GET", "/v1/recurring"), lookups()]);
    if (!isCurrent()) return;
    put(
      main,
      heading,
      top,
      h("p", {}, "Invite contacts automatically: once a day, each setting that is on invites the contacts never invited in its divisions and filters, and reminds pending ones on its cadence. Each run is a campaign with its own statistics."),
      h("div", { class: "actions" }, h("a", { href: link("recurring", "new"), class: "button primary" }, "New recurring invitation")),
      C.table(
        [
          { title: "Setting", get: (s) => h("a", { href: link("recurring", s.recurring_id) }, s.recurring_id) },
          { title: "On", get: (s) => onPill(s.enabled) },
          { title: "Divisions", get: (s) => scopeText(s, lk) },
          { title: "Template", get: (s) => lk.tplName(s.template_id) },
          { title: "Schedule", get: (s) => [scheduleText(s), h("br", {}), h("span", { class: "muted" }, reminderText(s))] },
          { title: "Next run", get: (s) => (s.enabled && s.next_run_at ? [inZone(s.next_run_at, s.time_zone), h("br", {}), h("span", { class: "muted" }, until(s.next_run_at))] : h("span", { class: "muted" }, "None: it is off")) },
        ],
        settings,
        { caption: "Recurring invitation settings", empty: "No recurring invitations yet. Create one to invite new contacts automatically every day." }
      )
    );
    if (said) said.focus();
  }

  // ---------- the form ----------

  function timeZones(current) {
    let zones = [];
    try {
      zones = Intl.supportedValuesOf("timeZone");
    } catch (_) {
      zones = ["America/New_York", "America/Chicago", "America/Denver", "America/Phoenix", "America/Los_Angeles", "America/Anchorage", "Pacific/Honolulu", "Europe/London", "Europe/Paris"];
    }
    zones = Array.from(new Set([...zones, "UTC", current].filter(Boolean))).sort();
    return zones;
  }
  const localZone = () => {
    try {
      return Intl.DateTimeFormat().resolvedOptions().timeZone || "UTC";
    } catch (_) {
      return "UTC";
    }
  };

  async function formPage(main, params, query, isCurrent) {
    const isNew = params.id === undefined;
    const id = isNew ? null : params.id;
    const back = h("p", {}, h("a", { href: link("recurring") }, "← Recurring invitations"));
    put(main, back, h("h1", {}, isNew ? "New recurring invitation" : `Recurring invitation ${id}`), spinner());
    const [setting, lk, existing] = await Promise.all([
      isNew ? null : api("GET", `/v1/recurring/${encodeURIComponent(id)}`),
      lookups(),
      isNew ? api("GET", "/v1/recurring").catch(() => []) : null,
    ]);
    if (!isCurrent()) return;
    drawForm(main, setting, lk, existing, isCurrent);
  }

  function drawForm(main, setting, lk, existing, isCurrent) {
    const isNew = !setting;
    const s = setting || {
      enabled: true,
      scope: "all",
      division_ids: [],
      filters: {},
      template_id: lk.templates && lk.templates.length ? lk.templates[0].template_id : "",
      email_from: null,
      cadence_days: 7,
      max_invitations_per_contact: 3,
      hour_of_day: 9,
      time_zone: localZone(),
    };
    const f = s.filters || {};
    const controls = {};
    let dirty = false;

    // Name (only when creating: it is the setting's id).
    let idInput = null;
    if (isNew) {
      const taken = new Set((existing || []).map((x) => x.recurring_id));
      let guess = "daily-invitations";
      for (let n = 2; taken.has(guess); n++) guess = `daily-invitations-${n}`;
      idInput = h("input", { name: "recurring_id", value: guess, required: true, maxlength: "64", autocomplete: "off", spellcheck: "false" });
      controls.recurring_id = idInput;
    }

    // On / off.
    const enabled = h("input", { type: "checkbox", role: "switch", checked: s.enabled, name: "enabled" });
    const enabledState = h("span", { class: "pill", "aria-hidden": "true" });
    const syncEnabled = () => {
      enabledState.textContent = enabled.checked ? "On" : "Off";
      enabledState.className = `pill ${enabled.checked ? "ok" : ""}`;
    };
    syncEnabled();
    enabled.addEventListener("change", syncEnabled);
    controls.enabled = enabled;

    // Scope and divisions.
    const radios = SCOPES.map(([v, t, hint]) => {
      const r = h("input", { type: "radio", name: "scope", value: v, checked: s.scope === v });
      const hid = hint ? C.id("h") : null;
      if (hid) r.setAttribute("aria-describedby", hid);
      return { r, el: h("div", { class: "rec-radio" }, h("label", { class: "check" }, r, t), hint && h("span", { class: "hint", id: hid }, hint)) };
    });
    controls.scope = radios[0].r;
    const divBoxes = [];
    let divPicker;
    if (lk.divisions) {
      const chosen = new Set(s.division_ids || []);
      const search = h("input", { type: "search", placeholder: "Search divisions", "aria-label": "Search divisions", autocomplete: "off" });
      const items = lk.divisions.map((d) => {
        const c = C.check(d.name, { value: d.division_id, checked: chosen.has(d.division_id) });
        divBoxes.push(c.box);
        return { d, el: c.el };
      });
      search.addEventListener("input", () => {
        const q = search.value.trim().toLowerCase();
        for (const it of items) it.el.hidden = !!q && !`${it.d.name} ${it.d.division_id}`.toLowerCase().includes(q);
      });
      const multi = h("div", { class: "multi", role: "group", "aria-labelledby": "rec-div-l", tabindex: "-1" }, items.map((i) => i.el));
      divPicker = h("div", { class: "field" }, h("span", { id: "rec-div-l", class: "rec-label" }, "Divisions"), lk.divisions.length > 8 ? search : null, multi);
      controls.division_ids = multi;
    } else {
      const input = h("input", { name: "division_ids", value: (s.division_ids || []).join(", "), autocomplete: "off" });
      divPicker = field("Division IDs", input, "Separated by commas (the list of divisions needs the invitations:read permission).");
      controls.division_ids = input;
      divBoxes.push(input);
    }
    const syncScope = () => {
      divPicker.hidden = !radios[2].r.checked;
    };
    radios.forEach(({ r }) => r.addEventListener("change", syncScope));
    syncScope();
    const chosenDivisions = () =>
      lk.divisions ? divBoxes.filter((b) => b.checked).map((b) => b.value) : divBoxes[0].value.split(",").map((x) => x.trim()).filter(Boolean);

    // Filters.
    const valueInputs = VALUE_FILTERS.map(([k, t]) => {
      const ta = h("textarea", { name: k, rows: "2", class: "rec-values", spellcheck: "false" });
      ta.value = (f[k] || []).join("\n");
      return { k, ta, el: field(t, ta, "One value per line; empty = any.") };
    });
    controls.filters = valueInputs[0].ta;
    // The values the tenant's contacts have today, as buttons that add one (typing stays
    // possible: a value can be meant for divisions synced later).
    if (lk.divisions) {
      C.api("GET", "/v1/divisions/filter-values")
        .then((fv) => {
          for (const { k, ta, el } of valueInputs) {
            const known = ((fv && fv.all && fv.all[k]) || []).filter((v) => v.value);
            if (!known.length) continue;
            const label = VALUE_FILTERS.find(([key]) => key === k)[1];
            const bar = h("div", { class: "tagbar", role: "group", "aria-label": `${label} values in your divisions` });
            for (const v of known.slice(0, 40)) {
              const b = h("button", { type: "button", "aria-label": `Add ${label.toLowerCase()} ${v.value}` }, `+ ${v.value}`);
              b.addEventListener("click", () => {
                const lines = ta.value.split("\n").map((x) => x.trim()).filter(Boolean);
                if (!lines.includes(v.value)) lines.push(v.value);
                ta.value = lines.join("\n");
                ta.dispatchEvent(new Event("input", { bubbles: true }));
              });
              bar.append(b);
            }
            el.append(bar);
          }
        })
        .catch(() => {});
    }
    const switches = SWITCHES.map(([k, t]) => ({ k, c: C.check(t, { name: k, checked: !!f[k] }) }));

    // Email.
    let template;
    if (lk.templates) {
      template = h("select", { name: "template_id", required: true }, lk.templates.map((t) => h("option", { value: t.template_id, selected: t.template_id === s.template_id }, t.name)));
      if (s.template_id && !lk.templates.some((t) => t.template_id === s.template_id)) {
        template.append(h("option", { value: s.template_id, selected: true }, `${s.template_id} (not found)`));
      }
    } else {
      template = h("input", { name: "template_id", value: s.template_id, required: true, autocomplete: "off" });
    }
    controls.template_id = template;
    const noTemplate = lk.templates && !lk.templates.length ? h("p", { class: "msg warn" }, "There is no invitation template yet: ", h("a", { href: link("templates") }, "create one"), " first.") : null;
    const emailFrom = h("input", { type: "email", name: "email_from", value: s.email_from || "", autocomplete: "off", placeholder: "office@example.com" });
    controls.email_from = emailFrom;

    // Reminders.
    const cadence = h("input", { type: "number", name: "cadence_days", min: "1", max: "365", step: "1", required: true, value: String(s.cadence_days), inputmode: "numeric", class: "rec-num" });
    const maxInv = h("input", { type: "number", name: "max_invitations_per_contact", min: "1", max: "50", step: "1", required: true, value: String(s.max_invitations_per_contact), inputmode: "numeric", class: "rec-num" });
    controls.cadence_days = cadence;
    controls.max_invitations_per_contact = maxInv;

    // Schedule.
    const hour = h("select", { name: "hour_of_day" }, Array.from({ length: 24 }, (_, i) => h("option", { value: String(i), selected: i === s.hour_of_day }, hourText(i))));
    const tz = h("select", { name: "time_zone" }, timeZones(s.time_zone).map((z) => h("option", { value: z, selected: z === s.time_zone }, z.replace(/_/g, " "))));
    controls.hour_of_day = hour;
    controls.time_zone = tz;

    const formError = h("div", {});
    const saved = h("div", {});
    const said = showFlash(saved);
    const save = h("button", { type: "submit", class: "primary" }, "Save recurring invitation");
    const del = isNew ? null : h("button", { type: "button", class: "danger" }, "Delete recurring invitation");

    const form = h(
      "form",
      { novalidate: true, class: "rec-form", "aria-labelledby": "rec-h1" },
      h("div", { class: "rec-grid" },
        h("fieldset", {},
          h("legend", {}, "Setting"),
          idInput && field("Name", idInput, "A short name, e.g. daily-invitations: letters, digits and . _ : - (no spaces). It cannot be changed later."),
          h("div", { class: "field" }, h("label", { class: "check rec-switch" }, enabled, "Send recurring invitations", enabledState), h("span", { class: "hint" }, "When off, nothing is sent; the setting is kept.")),
          !isNew && h("dl", { class: "kv" },
            h("dt", {}, "Next run"), h("dd", {}, s.enabled && s.next_run_at ? `${inZone(s.next_run_at, s.time_zone)} (${until(s.next_run_at)})` : "None: it is off"),
            h("dt", {}, "Last saved"), h("dd", {}, when(s.updated_at)))),
        h("fieldset", {},
          h("legend", {}, "Which divisions"),
          h("div", { class: "field" }, radios.map((x) => x.el)),
          divPicker),
        h("fieldset", {},
          h("legend", {}, "Email"),
          noTemplate,
          field("Notification template", template, lk.templates ? "The invitation every run sends." : "The template's ID (the list of templates needs the invitations:read permission)."),
          field("Email from", emailFrom, "Optional: empty sends from each division's own address.")),
        h("fieldset", {},
          h("legend", {}, "Reminders"),
          h("p", { class: "hint rec-p" }, "Contacts invited but not registered yet are invited again on this cadence, until they have had the maximum number of invitations (every invitation counts: bulk, individual and recurring)."),
          field("Invite pending contacts again after (days)", cadence, "1 to 365 days."),
          field("Maximum invitations per contact", maxInv, "1 to 50.")),
        h("fieldset", {},
          h("legend", {}, "Schedule"),
          h("p", { class: "hint rec-p" }, "One run a day, at this hour in this time zone."),
          field("Hour of day", hour),
          field("Time zone", tz)),
        h("fieldset", { class: "rec-filters" },
          h("legend", {}, "Filters"),
          h("div", { class: "rec-vals" }, valueInputs.map((v) => v.el)),
          h("div", {}, switches.map((x) => x.c.el)))),
      formError,
      h("div", { class: "actions" }, save, del, h("a", { href: link("recurring") }, "Back to recurring invitations"))
    );
    form.addEventListener("input", () => {
      dirty = true;
    });
    form.addEventListener("change", () => {
      dirty = true;
    });

    function body() {
      const filters = {};
      for (const { k, ta } of valueInputs) filters[k] = Array.from(new Set(ta.value.split("\n").map((x) => x.trim()).filter(Boolean)));
      for (const { k, c } of switches) filters[k] = c.box.checked;
      const scope = radios.find((x) => x.r.checked).r.value;
      const b = {
        enabled: enabled.checked,
        scope,
        filters,
        template_id: template.value.trim(),
        email_from: emailFrom.value.trim() || null,
        cadence_days: Number(cadence.value),
        max_invitations_per_contact: Number(maxInv.value),
        hour_of_day: Number(hour.value),
        time_zone: tz.value,
      };
      if (scope === "divisions") b.division_ids = chosenDivisions();
      return b;
    }

    // Checks in the browser what the server would refuse; returns [field, message] pairs.
    function check(b) {
      const bad = [];
      const int = (v, lo, hi) => Number.isInteger(v) && v >= lo && v <= hi;
      if (idInput) {
        const v = idInput.value.trim();
        if (!ID_RE.test(v)) bad.push(["recurring_id", "Use 1 to 64 letters, digits, dots, dashes, underscores or colons (no spaces)."]);
        else if (v === "new") bad.push(["recurring_id", "“new” is reserved: pick another name."]);
        else if ((existing || []).some((x) => x.recurring_id === v)) bad.push(["recurring_id", "A recurring invitation with this name already exists: pick another name (or open it from the list)."]);
      }
      if (b.scope === "divisions" && !b.division_ids.length) bad.push(["division_ids", "Choose at least one division, or another option above."]);
      if (!b.template_id) bad.push(["template_id", "Choose the template to send."]);
      if (b.email_from && !emailFrom.checkValidity()) bad.push(["email_from", "Enter an email address (name@example.com), or leave it empty."]);
      if (!int(b.cadence_days, 1, 365)) bad.push(["cadence_days", "Enter a whole number of days from 1 to 365."]);
      if (!int(b.max_invitations_per_contact, 1, 50)) bad.push(["max_invitations_per_contact", "Enter a whole number from 1 to 50."]);
      return bad;
    }

    function clearErrors() {
      for (const c of Object.values(controls)) fieldError(c, null);
      clear(formError);
    }
    function showErrors(bad) {
      for (const [k, msg] of bad) fieldError(controls[k], msg);
      const first = controls[bad[0][0]];
      if (first) first.focus();
    }

    form.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      clearErrors();
      clear(saved);
      const b = body();
      const bad = check(b);
      if (bad.length) {
        formError.append(h("div", { class: "msg bad", role: "alert" }, h("p", {}, h("strong", {}, "Not saved")), h("p", {}, "Correct the highlighted input and save again.")));
        return showErrors(bad);
      }
      const sid = isNew ? idInput.value.trim() : setting.recurring_id;
      let failure = null;
      const res = await busy(save, async () => {
        try {
          return await api("PUT", `/v1/recurring/${encodeURIComponent(sid)}`, { body: b });
        } catch (e) {
          failure = e;
          throw e;
        }
      }, formError);
      if (failure && failure.status === 422) {
        const at = problemField(failure.problem);
        if (at && controls[at]) showErrors([[at, friendly(failure.problem.detail, at)]]);
        return;
      }
      if (!res) return;
      dirty = false;
      const text = `Saved. ${res.enabled ? `Next run: ${inZone(res.next_run_at, res.time_zone)} (${until(res.next_run_at)}).` : "It is off: no run is scheduled."}`;
      if (isNew) {
        flash = { text, kind: "ok" };
        C.go("recurring", res.recurring_id);
        return;
      }
      flash = { text, kind: "ok" };
      drawForm(main, res, lk, null, isCurrent);
    });

    if (del) {
      del.addEventListener("click", async () => {
        const ok = await C.confirmDialog(
          "Delete this recurring invitation?",
          h("p", {}, `“${setting.recurring_id}” stops: no more runs. Its past runs stay in each division's campaign history.`),
          "Delete"
        );
        if (!ok) return;
        const r = await busy(del, async () => (await api("DELETE", `/v1/recurring/${encodeURIComponent(setting.recurring_id)}`), true), formError);
        if (r) {
          flash = { text: `Recurring invitation “${setting.recurring_id}” deleted.`, kind: "ok" };
          C.go("recurring");
        }
      });
    }

    const sections = [];
    if (!isNew) {
      sections.push(previewSection(setting, lk, () => dirty));
      sections.push(runsSection(setting));
    } else {
      sections.push(h("p", { class: "muted" }, "Once saved, this page shows who the next run would target and the past runs."));
    }

    put(
      main,
      h("p", {}, h("a", { href: link("recurring") }, "← Recurring invitations")),
      h("h1", { id: "rec-h1" }, isNew ? "New recurring invitation" : `Recurring invitation ${setting.recurring_id}`),
      saved,
      form,
      sections
    );
    if (said) said.focus();
  }

  // The field a 422 is about: the problem's `field` when the server names it, else the first
  // setting field its detail mentions ("invalid cadence_days: …", "email_from: …").
  function problemField(p) {
    if (!p) return null;
    if (p.field) {
      const top = String(p.field).split(/[.[]/)[0];
      if (FIELDS.includes(top)) return top;
    }
    const d = String(p.detail || "");
    let best = null;
    for (const k of FIELDS) {
      const m = d.search(new RegExp(`(^|[^a-z_])${k}([^a-z_]|$)`));
      if (m >= 0 && (best === null || m < best.at)) best = { k, at: m };
    }
    if (best) return best.k;
    // A filter value the server refused (e.g. an unknown filter name).
    if (/account_class|bill_group|account_source|site_source|active_services|balance_due|billing_contacts_only|without_autopay/.test(d)) return "filters";
    return null;
  }
  function friendly(detail, k) {
    const d = String(detail || "").replace(new RegExp(`^(invalid )?${k}:\\s*`), "");
    return d ? d.charAt(0).toUpperCase() + d.slice(1) + (/[.!?]$/.test(d) ? "" : ".") : "This value was refused.";
  }

  // ---------- preview ----------

  function previewSection(setting, lk, isDirty) {
    const out = h("div", { "aria-live": "polite" });
    const btn = h("button", { type: "button", class: "primary" }, "Preview next run");
    btn.addEventListener("click", async () => {
      await busy(btn, async () => {
        put(out, spinner("Counting…"));
        const p = await api("POST", `/v1/recurring/${encodeURIComponent(setting.recurring_id)}/preview`);
        const divs = p.division_ids || [];
        put(
          out,
          isDirty() && h("div", { class: "msg warn" }, "You have unsaved changes: this preview counts the saved setting. Save, then preview again."),
          !setting.enabled && h("div", { class: "msg warn" }, "This setting is off: no run happens until you turn it on and save."),
          h("p", {}, `Counted ${when(new Date().toISOString())} over `, divs.length ? `${divs.length} division${divs.length === 1 ? "" : "s"}: ${divs.map(lk.divName).join(", ")}.` : "no division.",
            !divs.length && setting.scope === "new_divisions_only" ? " No division was first synced after this setting was first saved, so a run now would invite nobody." : ""),
          h("div", { class: "tiles" }, COUNTS.map(([k, t]) => h("div", { class: `tile${k === "eligible" ? " key" : ""}` }, h("span", { class: "n" }, num(p[k])), h("span", { class: "t" }, t)))),
          C.table(
            [
              { title: "Contacts", get: (r) => r[1] },
              { title: "Count", num: true, get: (r) => num(p[r[0]]) },
              { title: "What it means", get: (r) => r[2] },
            ],
            COUNTS,
            { caption: "Who the next run would target, by category" }
          )
        );
      }, out);
      // C.busy disabled the button (dropping the focus): give it back.
      if (!document.activeElement || document.activeElement === document.body) btn.focus();
    });
    return h(
      "section",
      { "aria-labelledby": "rec-prev-h" },
      h("h2", { id: "rec-prev-h" }, "Who the next run would target"),
      h("p", {}, "Counts, as of now, the contacts the next run would invite and those it would skip. Nothing is sent."),
      h("div", { class: "actions" }, btn),
      out
    );
  }

  // ---------- past runs ----------

  function runsSection(setting) {
    const list = C.pagedList({
      caption: "Past runs, newest day first",
      load: (cursor) => api("GET", `/v1/recurring/${encodeURIComponent(setting.recurring_id)}/runs`, { query: { cursor, limit: 20 } }),
      columns: [
        { title: "Day", get: (r) => (r.campaign_id ? h("a", { href: link("campaigns", r.campaign_id) }, dayText(r.local_date)) : dayText(r.local_date)) },
        { title: "Invited", num: true, get: (r) => num(r.targeted) },
        { title: "State", get: (r) => (r.campaign_id ? (r.finished ? h("span", { class: "pill ok" }, "Finished") : h("span", { class: "pill warn" }, "Sending")) : h("span", { class: "pill" }, "Nobody due")) },
        { title: "Skipped", get: (r) => skippedText(r.skipped) },
        { title: "Started", get: (r) => when(r.started_at) },
      ],
      empty: "No runs yet. The first one happens at the next scheduled hour while the setting is on.",
    });
    list.reload();
    return h(
      "section",
      { "aria-labelledby": "rec-runs-h" },
      h("h2", { id: "rec-runs-h" }, "Past runs"),
      h("p", {}, "One line a day the setting ran, newest first. Open a day for its campaign: progress, statistics and recipients."),
      list.el
    );
  }
  // "2026-12-08" → "Tue, Dec 8, 2026" (a calendar day: no time zone shift).
  function dayText(d) {
    const t = new Date(`${d}T12:00:00Z`);
    return Number.isNaN(t.getTime()) ? d : t.toLocaleDateString(undefined, { timeZone: "UTC", weekday: "short", month: "short", day: "numeric", year: "numeric" });
  }
  function skippedText(sk) {
    if (!sk) return "–";
    const parts = [
      ["accepted", "accepted"],
      ["held_24h", "held 24 h"],
      ["suppressed", "suppressed"],
      ["no_email", "no email"],
    ].filter(([k]) => sk[k]).map(([k, t]) => `${num(sk[k])} ${t}`);
    return parts.length ? parts.join(", ") : "none";
  }

  C.page("recurring", listPage, { nav: "Recurring invitations", title: "Recurring invitations", permission: "settings:manage" });
  C.page("recurring/new", formPage, { title: "New recurring invitation", permission: "settings:manage" });
  C.page("recurring/:id", formPage, { title: "Recurring invitation", permission: "settings:manage" });
})();
