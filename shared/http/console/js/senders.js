// senders.js — the tenant's sender settings (#/senders): the domains and addresses emails may
// come from, edited by a manager with settings:manage (read-only for anyone else), and each
// division's default sender with whether it may be used.
(() => {
  const { h, api, put, field, fieldError, busy, spinner, when } = C;

  const STATUS = {
    allowed: ["ok", "Allowed"],
    not_allowed: ["bad", "Not allowed"],
    no_settings: ["bad", "Not allowed (no settings yet)"],
  };
  // One entry per line (commas and spaces also separate), blanks dropped.
  const lines = (text) => text.split(/[\s,;]+/).map((x) => x.trim()).filter(Boolean);

  async function sendersPage(main, _params, _query, isCurrent) {
    const heading = h("h1", {}, "Senders");
    put(main, heading, spinner());
    const [settings, divisions] = await Promise.all([api("GET", "/v1/settings/senders"), C.all("/v1/divisions")]);
    if (!isCurrent()) return;
    const editable = C.can("settings:manage");
    const domains = h("textarea", { rows: 4, spellcheck: "false", autocomplete: "off", readonly: editable ? null : "readonly" });
    domains.value = settings.domains.join("\n");
    const addresses = h("textarea", { rows: 4, spellcheck: "false", autocomplete: "off", readonly: editable ? null : "readonly" });
    addresses.value = settings.addresses.join("\n");
    const displayName = h("input", { type: "text", maxlength: 100, autocomplete: "off", placeholder: "[DivisionName]", readonly: editable ? null : "readonly" });
    displayName.value = settings.display_name || "";
    const example = h("p", { class: "muted", "aria-live": "polite" });
    const showExample = () => {
      const first = divisions[0] ? divisions[0].name : "Oak Hills HOA";
      const name = (displayName.value.trim() || "[DivisionName]").split("[DivisionName]").join(first).trim();
      put(example, "Inboxes show: ", h("strong", {}, name || "(the address only)"), ` <${divisions[0] ? divisions[0].email_from : "board@example.org"}>`);
    };
    displayName.addEventListener("input", showExample);
    const errors = h("div", {});
    const saved = h("p", { class: "muted", role: "status" }, settings.updated_at ? `Last saved ${when(settings.updated_at)} by ${settings.updated_by}.` : "Never saved: no email can be sent until a domain or address is added.");
    const save = h("button", { class: "primary", type: "submit" }, "Save senders");
    const divisionList = h("div", {});
    const showDivisions = (list) =>
      put(
        divisionList,
        C.table(
          [
            { title: "Division", get: (d) => d.name },
            { title: "Default sender", get: (d) => h("span", { class: "break" }, d.email_from) },
            { title: "Sender", get: (d) => h("span", { class: `pill ${STATUS[d.sender_status][0]}` }, STATUS[d.sender_status][1]) },
          ],
          list,
          { caption: "Each division's default sender", empty: "No divisions yet." },
        ),
      );
    showDivisions(divisions);
    showExample();
    const form = h(
      "form",
      { "aria-label": "Sender settings" },
      h("p", {}, "Invitations, reminders and sign-up confirmations are sent only from these; a division whose default sender is not allowed cannot be sent from by default. A domain allows every address at exactly that domain (not its subdomains); an address allows only itself. Your company's mail administrator must also have verified them for sending."),
      field("Domains", domains, "One per line, e.g. oakhills.example.com."),
      field("Single addresses", addresses, "One per line, e.g. board@example.org."),
      field("Sender name", displayName, "The name inboxes show next to the address. [DivisionName] stands for the recipient's division; leave empty to show the division's name, or write e.g. “[DivisionName] via Acme Property”."),
      example,
      editable ? h("div", { class: "actions" }, save) : h("p", { class: "muted" }, "Changing these needs the “settings:manage” permission."),
      saved,
      errors,
    );
    form.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      C.say(null);
      fieldError(domains, null);
      fieldError(addresses, null);
      fieldError(displayName, null);
      const body = { domains: lines(domains.value), addresses: lines(addresses.value), display_name: displayName.value.trim() || null };
      if (!body.domains.length && !body.addresses.length) {
        fieldError(domains, "Add at least one domain or address.");
        domains.focus();
        return;
      }
      await busy(
        save,
        async () => {
          try {
            const s = await api("PUT", "/v1/settings/senders", { body });
            domains.value = s.domains.join("\n");
            addresses.value = s.addresses.join("\n");
            displayName.value = s.display_name || "";
            showExample();
            put(saved, `Saved ${when(s.updated_at)}.`);
            C.say("Sender settings saved.", "ok");
            showDivisions(await C.all("/v1/divisions"));
          } catch (e) {
            if (e.status === 422) {
              const target = /display_name/.test(e.message) ? displayName : /addresses/.test(e.message) ? addresses : domains;
              fieldError(target, e.message);
              target.focus();
              return;
            }
            throw e;
          }
        },
        errors,
      );
    });
    put(main, heading, form, h("h2", {}, "Divisions"), divisionList);
  }

  C.page("senders", sendersPage, { nav: "Senders", title: "Senders", permission: "invitations:read" });
})();
