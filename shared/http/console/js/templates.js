// templates.js — the email templates: the reusable editor (fields, merge-tag buttons, live
// preview of the unsaved draft as a chosen contact would receive it, the server's 422 shown
// at the field), the preview frame, and the Templates pages (list, one template, new).
//
// For other pages:
//   C.templateEditor(opts) → {el, value(), validate(): Promise<bool>, dirty(),
//                             save(): Promise<template|undefined>, setContact(recipient|null), refresh()}
//     opts.template   {template_id?, kind, name, subject, html, text} (a saved one: Save/Undo act on it)
//     opts.kind       fixes the kind ("invitation" | "portal_key"); without it a "Used for" choice
//     opts.readOnly   default !C.can("settings:manage"): fields read-only, no tag buttons, no Save
//     opts.onChange(value)  on every edit; value() = {template_id?, kind, name, subject, html, text}
//     opts.save       false hides the built-in Save/Undo (shown when editable and the template
//                     has an id, or opts.newId(value) → id names a new one); opts.onSaved(template)
//     opts.primarySave  the Save button is the page's primary one
//     opts.contact / opts.contactId  preview as this contact (a Recipient row, or an id); default:
//                     the server's sample contact
//     opts.level      heading level of "Preview" (default 2)
//     validate() renders the draft now: false (and the error at its field, focused, the bad tag
//     selected) when the name is empty or the server refuses it.
//   C.previewFrame(preview) → element showing From, Subject, the HTML in a sandboxed frame, the text.
//   C.templates = {list(): Promise<array>, get(id): Promise<template>}

(() => {
  const { h, put, api, busy, field, fieldError, problem, can, link } = C;

  // The merge tags the server knows (shared/core/src/domain/template.rs, MergeTag), in the
  // order a writer reaches for them, with what each becomes.
  const TAGS = [
    ["PortalLink", "The link to sign up on the portal (a portal key email: the portal-key sign-up page)."],
    ["ContactName", "The contact's name."],
    ["AccountNumber", "The account number."],
    ["AccountName", "The account's name."],
    ["DivisionName", "The division's name."],
    ["PortalKey", "The account's portal key (a preview shows XXXX-XXXX-XXXX-XXXX)."],
    ["UnsubscribeLink", "The link that unsubscribes the contact."],
  ];
  // The tags both the HTML and the text body must carry, per kind (TemplateKind::required_tags).
  const REQUIRED = { invitation: ["PortalLink"], portal_key: ["AccountNumber", "PortalKey"] };
  const KINDS = [
    ["invitation", "Invitations", "Invitations (bulk, individual and recurring)"],
    ["portal_key", "Portal key emails", "Portal key email (sent when a sign-up request is matched)"],
  ];
  const kindName = (k) => (KINDS.find(([v]) => v === k) || [k, k])[1];
  const PART_NAMES = { name: "Name", subject: "Subject", html: "HTML body", text: "Text body" };

  // What a new template starts with, per kind: valid, so the preview shows at once.
  const STARTERS = {
    invitation: {
      subject: "[DivisionName]: your resident portal is ready",
      html: "<p>Hello [ContactName],</p>\n<p>[DivisionName] now has a resident portal: pay, see your account [AccountNumber] and reach the office online.</p>\n<p><a href=\"[PortalLink]\">Create your login</a></p>\n<p><a href=\"[UnsubscribeLink]\">Unsubscribe</a></p>\n",
      text: "Hello [ContactName],\n\n[DivisionName] now has a resident portal: pay, see your account [AccountNumber] and reach the office online.\n\nCreate your login: [PortalLink]\n\nUnsubscribe: [UnsubscribeLink]\n",
    },
    portal_key: {
      subject: "[DivisionName]: your portal key",
      html: "<p>Hello [ContactName],</p>\n<p>Sign up on the resident portal with your account number <strong>[AccountNumber]</strong> and your portal key <strong>[PortalKey]</strong>.</p>\n<p><a href=\"[PortalLink]\">Sign up now</a></p>\n",
      text: "Hello [ContactName],\n\nSign up on the resident portal with your account number [AccountNumber] and your portal key [PortalKey].\n\nSign up now: [PortalLink]\n",
    },
  };

  const templatePath = (id) => `/v1/templates/${encodeURIComponent(id)}`;
  C.templates = {
    list: () => C.all("/v1/templates"),
    get: (id) => api("GET", templatePath(id)),
  };

  // ---------- the preview frame ----------

  // The HTML as this console can show it: the console's Content-Security-Policy also governs
  // the frame, so styles written inside the email and pictures from other sites would be
  // refused (and reported as violations). They are taken out here, on an inert copy
  // (DOMParser runs no script and loads nothing), and the hint says so.
  function displayable(html) {
    const doc = new DOMParser().parseFromString(html || "", "text/html");
    let removed = 0;
    for (const el of doc.querySelectorAll("style, link, script, base, meta[http-equiv]")) {
      el.remove();
      removed++;
    }
    for (const el of doc.querySelectorAll("[style]")) {
      el.removeAttribute("style");
      removed++;
    }
    for (const img of doc.querySelectorAll("img[src], img[srcset], source")) {
      const src = img.getAttribute("src") || "";
      if (!src.startsWith("data:") || img.hasAttribute("srcset")) {
        img.removeAttribute("src");
        img.removeAttribute("srcset");
        removed++;
      }
    }
    return { html: "<!doctype html>" + doc.documentElement.outerHTML, removed };
  }

  // previewFrame({subject, html, text, from}) → element: From and Subject, the HTML body in a
  // sandboxed frame, the text body under a disclosure.
  C.previewFrame = (p) => {
    const shown = displayable(p.html);
    return h(
      "div",
      { class: "tpl-preview" },
      h("dl", { class: "kv" }, h("dt", {}, "From"), h("dd", { class: "break" }, p.from || "–"), h("dt", {}, "Subject"), h("dd", { class: "break" }, p.subject || "–")),
      h("iframe", { sandbox: "", class: "preview", title: "Email preview", srcdoc: shown.html, referrerpolicy: "no-referrer" }),
      h(
        "p",
        { class: "hint muted" },
        shown.removed
          ? `Styles written inside this email (style attributes, <style>) and pictures from other sites are not shown here (${shown.removed} left out): this console does not run them. Mail programs show them. Links carry a placeholder token, not a real one.`
          : "Shown without styles written inside the email (style attributes, <style>) or pictures from other sites: this console does not run them; mail programs do. Links carry a placeholder token, not a real one.",
      ),
      h("details", { class: "tpl-text" }, h("summary", {}, "Text version"), h("pre", { class: "break" }, p.text || "")),
    );
  };

  // ---------- helpers ----------

  // A character offset (Unicode scalar values, as the server counts) → a JS string index.
  const indexOf = (s, chars) => Array.from(s).slice(0, chars).join("").length;

  // The 422 of a template, in words for the field it names.
  function fieldMessage(p) {
    const tag = p.tag;
    if (tag && p.position !== undefined && p.position !== null) {
      return `${tag} is not a merge tag. Use a tag button, or correct the spelling (tags are case-sensitive).`;
    }
    if (tag) {
      return `Add ${tag} here: the HTML body and the text body must each carry it.`;
    }
    const d = String(p.detail || "This is not accepted.");
    return d.charAt(0).toUpperCase() + d.slice(1) + (/[.!]$/.test(d) ? "" : ".");
  }

  // "Welcome letter (2)" → "welcome-letter-2"; never empty, at most 56 characters (room for "-99").
  function slug(name) {
    const s = String(name || "")
      .normalize("NFKD")
      .replace(/[\u0300-\u036f]/g, "")
      .toLowerCase()
      .replace(/[^a-z0-9]+/g, "-")
      .replace(/^-+|-+$/g, "")
      .slice(0, 56)
      .replace(/-+$/, "");
    return s || "template";
  }
  function uniqueId(name, taken) {
    const base = slug(name);
    if (!taken.has(base)) return base;
    for (let i = 2; ; i++) if (!taken.has(`${base}-${i}`)) return `${base}-${i}`;
  }

  // ---------- the editor ----------

  C.templateEditor = (opts = {}) => {
    const tpl = opts.template || null;
    const readOnly = opts.readOnly === undefined ? !can("settings:manage") : !!opts.readOnly;
    const fixedKind = opts.kind || null;
    const level = opts.level || 2;
    const startKind = fixedKind || (tpl && tpl.kind) || "invitation";
    const start = tpl || Object.assign({ name: "" }, STARTERS[startKind]);
    const canSave = !readOnly && opts.save !== false && !!((tpl && tpl.template_id) || opts.newId);

    const ro = (attrs) => Object.assign(attrs, readOnly ? { readonly: "" } : {});
    const name = h("input", ro({ type: "text", value: start.name || "", maxlength: "200", autocomplete: "off", spellcheck: "true" }));
    const subject = h("input", ro({ type: "text", value: start.subject || "", maxlength: "200", autocomplete: "off" }));
    const html = h("textarea", ro({ rows: "12", spellcheck: "false", class: "tpl-body" }));
    html.value = start.html || "";
    const text = h("textarea", ro({ rows: "10", spellcheck: "false", class: "tpl-body" }));
    text.value = start.text || "";
    const controls = { name, subject, html, text };
    const kindSelect = fixedKind || readOnly ? null : h("select", {}, KINDS.map(([v, , long]) => h("option", { value: v, selected: v === startKind }, long)));
    const kind = () => (kindSelect ? kindSelect.value : startKind);

    // Where a tag button inserts: the last focused of subject, html, text.
    let target = html;
    const targetNote = h("span", { class: "muted" });
    const showTarget = () => put(targetNote, `Inserts at the cursor in: ${target === subject ? "Subject" : target === html ? "HTML body" : "Text body"}.`);
    for (const c of [subject, html, text]) {
      c.addEventListener("focus", () => {
        target = c;
        showTarget();
      });
    }
    showTarget();

    const tagButtons = TAGS.map(([t, what]) => {
      const b = h("button", { type: "button", title: what, "aria-label": `Insert [${t}]`, "data-tag": t }, `[${t}]`);
      b.addEventListener("click", () => insertTag(`[${t}]`));
      return b;
    });
    function markRequired() {
      const need = REQUIRED[kind()] || [];
      for (const b of tagButtons) b.classList.toggle("required", need.includes(b.dataset.tag));
      put(requiredNote, `Required in both bodies: ${need.map((t) => `[${t}]`).join(" and ")}.`);
    }
    const requiredNote = h("span", { class: "muted" });
    function insertTag(tag) {
      const c = target;
      const s = c.selectionStart ?? c.value.length;
      const e = c.selectionEnd ?? s;
      c.focus();
      c.setRangeText(tag, s, e, "end");
      c.dispatchEvent(new Event("input", { bubbles: true }));
    }

    // ----- errors at the fields -----
    const shownErrors = {}; // field → message currently shown
    function setError(f, message) {
      if ((shownErrors[f] || null) === (message || null)) return;
      shownErrors[f] = message || null;
      fieldError(controls[f], message || null);
    }
    const clearErrors = (except) => Object.keys(controls).forEach((f) => f !== except && setError(f, null));
    // Shows a refusal at its field; true when it named one. `point` moves the focus there and
    // selects the tag at fault.
    function showFieldProblem(err, point) {
      const p = (err && err.problem) || {};
      if (!err || err.status !== 422 || !controls[p.field]) return false;
      clearErrors(p.field);
      setError(p.field, fieldMessage(p));
      if (point) {
        const c = controls[p.field];
        c.focus();
        if (p.tag && p.position !== undefined && p.position !== null) {
          const at = indexOf(c.value, p.position);
          c.setSelectionRange(at, at + p.tag.length);
        }
      }
      return true;
    }

    // ----- the live preview -----
    let contact = opts.contact || (opts.contactId ? { contact_id: opts.contactId } : null);
    const frameBox = h("div", { class: "tpl-frame" });
    const previewNote = h("div", {});
    const previewBusy = h("span", { class: "muted tpl-busy", hidden: true }, h("span", { class: "spinner", "aria-hidden": "true" }), "Updating…");
    let seq = 0;
    let timer = null;
    let lastGood = null;
    const draft = () => ({ kind: kind(), subject: subject.value, html: html.value, text: text.value });

    // Renders the draft now; resolves true when the server accepted it.
    async function renderNow(point) {
      clearTimeout(timer);
      const mine = ++seq;
      previewBusy.hidden = false;
      frameBox.setAttribute("aria-busy", "true");
      try {
        const body = { template: draft() };
        if (contact) body.contact_id = contact.contact_id;
        const p = await api("POST", "/v1/invitations/preview", { body });
        if (mine !== seq) return true;
        clearErrors(name.value.trim() ? null : "name");
        lastGood = p;
        put(previewNote);
        put(frameBox, C.previewFrame(p));
        return true;
      } catch (e) {
        if (mine !== seq) return false;
        if (showFieldProblem(e, point)) {
          put(previewNote, h("p", { class: "msg warn" }, lastGood ? "The preview shows the last version without errors: correct the marked field to update it." : "Correct the marked field to see the preview."));
        } else {
          put(previewNote, problem(e));
        }
        return false;
      } finally {
        if (mine === seq) {
          previewBusy.hidden = true;
          frameBox.removeAttribute("aria-busy");
        }
      }
    }
    function schedule() {
      clearTimeout(timer);
      timer = setTimeout(() => renderNow(false), 400);
    }

    // ----- "Preview as" -----
    const asNow = h("p", { class: "tpl-as" });
    const search = h("input", { type: "search", autocomplete: "off", placeholder: "Name, email or account number" });
    const findBtn = h("button", { type: "button" }, "Find contacts");
    const sampleBtn = h("button", { type: "button", class: "link" }, "Use the sample contact");
    const results = h("div", { class: "tpl-results" });
    function showContact() {
      if (contact) {
        const who = contact.contact_name ? `${contact.contact_name}${contact.account_number ? ` (account ${contact.account_number})` : ""}` : contact.contact_id;
        put(asNow, "Previewing as ", h("strong", {}, who), ". ");
        asNow.append(sampleBtn);
      } else {
        put(asNow, "Previewing as the ", h("strong", {}, "sample contact"), " (Alex Sample, in your first division).");
      }
    }
    function setContact(c) {
      contact = c ? Object.assign({}, c) : null;
      showContact();
      return renderNow(false);
    }
    sampleBtn.addEventListener("click", () => {
      setContact(null);
      search.focus();
    });
    async function find() {
      const q = search.value.trim();
      if (!q) {
        put(results, h("p", { class: "muted", role: "status" }, "Type a name, email or account number, then Find contacts."));
        return;
      }
      await busy(
        findBtn,
        async () => {
          const ask = (cursor) => api("POST", "/v1/invitations/recipients", { body: { q, group: "all", limit_to_uninvited: false, limit: 8, cursor } });
          // Each request examines a bounded part of the contacts: follow empty pages a little.
          let page = await ask(undefined);
          for (let hops = 0; !(page.items || []).length && page.next_cursor && hops < 20; hops++) page = await ask(page.next_cursor);
          const items = page.items || [];
          put(
            results,
            h("p", { class: "muted", role: "status" }, items.length ? `${items.length}${page.next_cursor ? "+" : ""} found: pick one.` : page.next_cursor ? `No contact matches “${q}” among the first 40,000 searched: try a longer search.` : `No contact matches “${q}”.`),
            items.length &&
              h(
                "ul",
                { class: "tpl-found" },
                items.map((r) => {
                  const b = h("button", { type: "button", class: "link" }, `${r.contact_name || r.contact_id}`);
                  b.addEventListener("click", () => {
                    put(results);
                    setContact(r);
                    asNow.focus();
                  });
                  return h("li", {}, b, h("span", { class: "muted" }, ` · account ${r.account_number}${r.email ? ` · ${r.email}` : " · no email"}`));
                }),
              ),
          );
        },
        results,
      );
    }
    findBtn.addEventListener("click", find);
    search.addEventListener("keydown", (e) => {
      if (e.key === "Enter") {
        e.preventDefault();
        find();
      }
    });
    asNow.tabIndex = -1;

    // ----- change tracking -----
    let baseline = JSON.stringify(valueOf());
    function valueOf() {
      const v = { kind: kind(), name: name.value, subject: subject.value, html: html.value, text: text.value };
      if (tpl && tpl.template_id) v.template_id = tpl.template_id;
      return v;
    }
    const dirty = () => JSON.stringify(valueOf()) !== baseline;
    const saveNote = h("span", { class: "muted", role: "status" });
    function changed() {
      const note = canSave && dirty() ? "Unsaved changes." : "";
      if (saveNote.textContent !== note) put(saveNote, note);
      if (undoBtn) undoBtn.disabled = !dirty();
      if (opts.onChange) opts.onChange(valueOf());
    }
    for (const c of [subject, html, text]) {
      c.addEventListener("input", () => {
        schedule();
        changed();
      });
    }
    name.addEventListener("input", () => {
      if (name.value.trim()) setError("name", null);
      if (nameHint) put(nameHint, idHint());
      changed();
    });
    // Enter in a one-line field must not submit a form the editor sits in (a send).
    for (const c of [name, subject]) c.addEventListener("keydown", (e) => e.key === "Enter" && e.preventDefault());
    if (kindSelect) {
      kindSelect.addEventListener("change", () => {
        // A new template still holding the other kind's starter text gets this kind's.
        const other = STARTERS[kind() === "invitation" ? "portal_key" : "invitation"];
        if (!(tpl && tpl.template_id) && subject.value === other.subject && html.value === other.html && text.value === other.text) {
          subject.value = STARTERS[kind()].subject;
          html.value = STARTERS[kind()].html;
          text.value = STARTERS[kind()].text;
        }
        markRequired();
        renderNow(false);
        changed();
      });
    }

    async function validate() {
      let ok = true;
      if (!name.value.trim()) {
        setError("name", "Give the template a name (managers pick it by its name).");
        ok = false;
      }
      const rendered = await renderNow(ok);
      if (!ok) name.focus();
      return ok && rendered;
    }

    // ----- save / undo -----
    const saveBox = h("div", {});
    const saveBtn = canSave ? h("button", { type: "button", class: opts.primarySave ? "primary" : null }, "Save template") : null;
    const undoBtn = canSave && tpl && tpl.template_id ? h("button", { type: "button", disabled: true }, "Undo changes") : null;
    async function save() {
      if (!canSave) return undefined;
      if (!name.value.trim()) {
        setError("name", "Give the template a name (managers pick it by its name).");
        name.focus();
        return undefined;
      }
      return busy(
        saveBtn,
        async () => {
          const v = valueOf();
          const id = (tpl && tpl.template_id) || opts.newId(v);
          try {
            const saved = await api("PUT", templatePath(id), { body: { kind: v.kind, name: v.name, subject: v.subject, html: v.html, text: v.text } });
            baseline = JSON.stringify(valueOf());
            clearErrors();
            put(saveNote, `Saved at ${new Date().toLocaleTimeString(undefined, { timeStyle: "short" })}.`);
            if (undoBtn) undoBtn.disabled = true;
            if (opts.onSaved) opts.onSaved(saved);
            return saved;
          } catch (e) {
            if (showFieldProblem(e, true)) {
              put(saveBox, h("p", { class: "msg bad" }, `Not saved: correct the ${PART_NAMES[e.problem.field]} field.`));
              return undefined;
            }
            throw e;
          }
        },
        saveBox,
      );
    }
    if (saveBtn) saveBtn.addEventListener("click", save);
    if (undoBtn) {
      undoBtn.addEventListener("click", () => {
        const b = JSON.parse(baseline);
        name.value = b.name;
        subject.value = b.subject;
        html.value = b.html;
        text.value = b.text;
        if (kindSelect) kindSelect.value = b.kind;
        clearErrors();
        markRequired();
        put(saveBox);
        renderNow(false);
        changed();
        put(saveNote, "Changes undone.");
      });
    }

    // ----- layout -----
    const idHint = () => {
      if (tpl && tpl.template_id) return `Id: ${tpl.template_id}.`;
      return opts.newId ? `Will be saved as “${opts.newId(valueOf())}” (made from the name).` : "";
    };
    let nameHint = null;
    const nameField = field("Name", name, idHint() || null);
    nameHint = nameField.querySelector(".hint");
    const tagbar = readOnly
      ? null
      : h(
          "div",
          { class: "tpl-tags" },
          h("div", { class: "tagbar", role: "group", "aria-label": "Merge tags" }, tagButtons),
          h("p", { class: "hint muted" }, targetNote, " ", requiredNote),
        );
    markRequired();
    const headId = C.id("tpl-preview");
    const hd = (t) => h(`h${level}`, { id: headId }, t);
    const el = h(
      "div",
      { class: "tpl-editor" },
      h(
        "div",
        { class: "tpl-fields" },
        readOnly && h("p", { class: "msg" }, "You can read this template and preview it. Changing it needs the “settings:manage” permission."),
        nameField,
        kindSelect ? field("Used for", kindSelect) : h("p", {}, h("strong", {}, "Used for: "), kindName(startKind)),
        field("Subject", subject, readOnly ? null : "One line. Merge tags are filled in for each contact."),
        tagbar,
        field("HTML body", html, readOnly ? null : "The email as HTML. Values are escaped when filled in."),
        field("Text body", text, readOnly ? null : "For mail programs that do not show HTML."),
        canSave && h("div", { class: "actions" }, saveBtn, undoBtn, saveNote),
        saveBox,
      ),
      h(
        "section",
        { class: "tpl-side", "aria-labelledby": headId },
        h("div", { class: "tpl-side-head" }, hd("Preview"), previewBusy),
        asNow,
        h("div", { class: "tpl-as-find" }, field("Preview as", search, "Search a contact by name, email or account number."), findBtn),
        results,
        previewNote,
        frameBox,
      ),
    );
    showContact();
    put(frameBox, C.spinner("Rendering the preview…"));
    renderNow(false);

    return { el, value: valueOf, validate, dirty, save, setContact, refresh: () => renderNow(false) };
  };

  // ---------- pages ----------

  let flash = null; // a message for the next page (set before navigating)
  function showFlash() {
    if (flash) C.say(flash, "ok");
    flash = null;
  }

  C.page(
    "templates",
    async (main, _params, _query, isCurrent) => {
      put(main, h("h1", {}, "Templates"), C.spinner("Loading templates…"));
      const list = await C.templates.list();
      if (!isCurrent()) return;
      const manage = can("settings:manage");
      const columns = [
        { title: "Name", get: (t) => h("a", { href: link("templates", t.template_id) }, t.name) },
        { title: "Used for", get: (t) => kindName(t.kind) },
        { title: "Subject", get: (t) => h("span", { class: "break" }, t.subject) },
      ];
      if (manage) columns.push({ title: h("span", { class: "sr" }, "Actions"), get: (t) => h("a", { href: link("templates", t.template_id), "aria-label": `Edit ${t.name}` }, "Edit") });
      put(
        main,
        h("h1", {}, "Templates"),
        h("p", { class: "muted" }, "The emails invitations and portal keys are sent with. Merge tags such as [ContactName] are filled in for each contact."),
        manage ? h("div", { class: "actions" }, h("a", { class: "button primary", href: link("templates", "new") }, "New template")) : h("p", { class: "muted" }, "Creating and changing templates needs the “settings:manage” permission."),
        C.table(columns, list, { caption: "Templates", empty: manage ? "No template yet: create one with New template." : "No template yet." }),
      );
      showFlash();
    },
    { nav: "Templates", title: "Templates", permission: "invitations:read" },
  );

  const back = () => h("p", {}, h("a", { href: link("templates") }, "← All templates"));

  C.page(
    "templates/new",
    async (main, _params, query, isCurrent) => {
      put(main, back(), h("h1", {}, "New template"));
      if (!can("settings:manage")) {
        main.append(problem({ status: 403, problem: { detail: "needs settings:manage" } }));
        return;
      }
      const taken = new Set((await C.templates.list()).map((t) => t.template_id));
      if (!isCurrent()) return;
      const kind = query.get("kind") === "portal_key" ? "portal_key" : "invitation";
      const editor = C.templateEditor({
        template: Object.assign({ kind, name: "" }, STARTERS[kind]),
        primarySave: true,
        newId: (v) => uniqueId(v.name, taken),
        onSaved: (t) => {
          flash = `Template “${t.name}” saved.`;
          C.guardLeave(null);
          C.go("templates", t.template_id);
        },
      });
      main.append(editor.el);
      C.guardLeave(() => editor.dirty());
    },
    { title: "New template", permission: "invitations:read" },
  );

  C.page(
    "templates/:id",
    async (main, params, _query, isCurrent) => {
      put(main, back(), h("h1", {}, "Template"), C.spinner("Loading the template…"));
      let t;
      try {
        t = await C.templates.get(params.id);
      } catch (e) {
        if (!isCurrent()) return;
        put(main, back(), h("h1", {}, "Template"), problem(e));
        return;
      }
      if (!isCurrent()) return;
      const title = h("h1", {}, t.name);
      document.title = `${t.name} · Templates · Portal Invitations`;
      const editor = C.templateEditor({
        template: t,
        primarySave: true,
        onSaved: (s) => {
          put(title, s.name);
          document.title = `${s.name} · Templates · Portal Invitations`;
        },
      });
      C.guardLeave(() => editor.dirty());
      const deleteBox = h("div", {});
      let del = null;
      if (can("settings:manage")) {
        del = h("button", { type: "button", class: "danger" }, "Delete template");
        del.addEventListener("click", async () => {
          const ok = await C.confirmDialog("Delete this template?", h("p", {}, `“${t.name}” (${t.template_id}) will be deleted. Campaigns already sent keep their results. This cannot be undone.`), "Delete template");
          if (!ok) return del.focus();
          await busy(
            del,
            async () => {
              await api("DELETE", templatePath(t.template_id));
              C.guardLeave(null);
              flash = `Template “${t.name}” deleted.`;
              C.go("templates");
            },
            deleteBox,
          );
        });
      }
      put(main, back(), title, editor.el, del && h("div", { class: "actions tpl-danger" }, del), deleteBox);
      showFlash();
    },
    { title: "Template", permission: "invitations:read" },
  );
})();
