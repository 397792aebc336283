// core.js — what every page of the console uses: the DOM builder, sign-in (OpenID Connect
// authorization code + PKCE), the API client, the hash router, and the shared widgets.
// Pages register themselves with C.page(...) in their own file; main.js starts the app.
// Nothing here builds HTML from strings: every text goes in as a text node.
//
// For page authors: build elements with C.h(tag, attrs, ...children); replace an element's
// children with C.put(el, ...children) (never the DOM's own el.append with a maybe-null
// child: it prints "null"); call the API with C.api(method, path, {body, query}); show a
// refusal with C.problem(err); run a button's work with C.busy(button, async () => …, box).

const C = (() => {
  const meta = document.querySelector('meta[name="portal-console"]');
  const cfg = meta ? JSON.parse(meta.content) : {};
  const TOKEN_KEY = "portal.console.token";
  const PKCE_KEY = "portal.console.pkce";
  const AUTO_KEY = "portal.console.auto";

  // ---------- DOM ----------

  // h("a", {href: "#/x", class: "button", onclick: fn}, "text", child, [more])
  function h(tag, attrs, ...children) {
    const el = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === null || v === undefined || v === false) continue;
      if (k.startsWith("on") && typeof v === "function") el.addEventListener(k.slice(2), v);
      else if (k === "class") el.className = v;
      else if (k === "value") el.value = v;
      else if (k === "checked" || k === "disabled" || k === "selected" || k === "hidden" || k === "required" || k === "multiple") el[k] = !!v;
      else el.setAttribute(k, v === true ? "" : String(v));
    }
    append(el, children);
    return el;
  }
  function append(el, children) {
    for (const c of children.flat(Infinity)) {
      if (c === null || c === undefined || c === false) continue;
      el.append(c instanceof Node ? c : document.createTextNode(String(c)));
    }
    return el;
  }
  function clear(el) {
    while (el.firstChild) el.firstChild.remove();
    return el;
  }
  // Replaces el's children (null/false children are skipped — the DOM's own append would
  // print them as "null").
  const put = (el, ...children) => append(clear(el), children);
  let uid = 0;
  const id = (prefix) => `${prefix || "f"}-${++uid}`;

  // ---------- formatting ----------

  const nf = new Intl.NumberFormat();
  const num = (n) => (n === null || n === undefined ? "–" : nf.format(n));
  const pct = (x) => (x === null || x === undefined ? "–" : `${(x * 100).toFixed(1)}%`);
  function when(iso) {
    if (!iso) return "–";
    const d = new Date(iso);
    return Number.isNaN(d.getTime()) ? iso : d.toLocaleString(undefined, { dateStyle: "medium", timeStyle: "short" });
  }
  function ago(iso) {
    const s = (Date.now() - new Date(iso).getTime()) / 1000;
    if (!Number.isFinite(s)) return "";
    if (s < 60) return "just now";
    if (s < 3600) return `${Math.round(s / 60)} min ago`;
    if (s < 86400) return `${Math.round(s / 3600)} h ago`;
    return `${Math.round(s / 86400)} days ago`;
  }
  const label = (s) => String(s).replace(/_/g, " ").replace(/^./, (c) => c.toUpperCase());

  // ---------- the selection's filters, in the reference products' words ----------

  // The filters whose values come from the data (sets of accepted values)…
  const VALUE_FILTERS = [
    ["account_class", "Account class"],
    ["bill_group", "Bill group"],
    ["account_source", "Account source"],
    ["site_source", "Site source"],
  ];
  // …and the four switches (true restricts).
  const SWITCHES = [
    ["active_services", "Accounts with active services"],
    ["balance_due", "Accounts with balance due"],
    ["billing_contacts_only", "Restrict to billing contacts"],
    ["without_autopay", "Accounts without automatic payment"],
  ];

  // ---------- sign-in ----------

  const b64url = (bytes) => btoa(String.fromCharCode(...new Uint8Array(bytes))).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  const randomString = () => b64url(crypto.getRandomValues(new Uint8Array(32)));
  const redirectUri = () => `${location.origin}/console`;

  function decodeClaims(token) {
    try {
      const part = token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
      const json = decodeURIComponent(atob(part).split("").map((c) => "%" + c.charCodeAt(0).toString(16).padStart(2, "0")).join(""));
      return JSON.parse(json);
    } catch (_) {
      return null;
    }
  }

  let session = null; // {token, claims}
  function loadSession() {
    const token = sessionStorage.getItem(TOKEN_KEY);
    const claims = token && decodeClaims(token);
    if (!claims || (claims.exp && claims.exp * 1000 < Date.now())) {
      sessionStorage.removeItem(TOKEN_KEY);
      session = null;
    } else {
      session = { token, claims };
    }
    return session;
  }

  // SHA-256 of bytes. WebCrypto exists only on secure origins (https, localhost); a phone
  // reaching the local server at http://192.168.x.y gets this plain implementation.
  async function sha256(bytes) {
    if (window.crypto && crypto.subtle) return crypto.subtle.digest("SHA-256", bytes);
    return sha256Plain(bytes);
  }
  function sha256Plain(bytes) {
    const K = [];
    for (let n = 2, found = 0; found < 64; n++) {
      let prime = true;
      for (let d = 2; d * d <= n; d++) if (n % d === 0) { prime = false; break; }
      if (prime) K[found++] = (Math.cbrt(n) % 1) * 2 ** 32 | 0;
    }
    const H = [0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19];
    const len = bytes.length;
    const total = Math.ceil((len + 9) / 64) * 64;
    const m = new Uint8Array(total);
    m.set(bytes);
    m[len] = 0x80;
    new DataView(m.buffer).setUint32(total - 4, len * 8);
    const w = new Int32Array(64);
    const rotr = (x, n) => (x >>> n) | (x << (32 - n));
    for (let o = 0; o < total; o += 64) {
      const v = new DataView(m.buffer, o, 64);
      for (let i = 0; i < 16; i++) w[i] = v.getInt32(i * 4);
      for (let i = 16; i < 64; i++) {
        const s0 = rotr(w[i - 15], 7) ^ rotr(w[i - 15], 18) ^ (w[i - 15] >>> 3);
        const s1 = rotr(w[i - 2], 17) ^ rotr(w[i - 2], 19) ^ (w[i - 2] >>> 10);
        w[i] = (w[i - 16] + s0 + w[i - 7] + s1) | 0;
      }
      let [a, b, c, d, e, f, g, hh] = H;
      for (let i = 0; i < 64; i++) {
        const t1 = (hh + (rotr(e, 6) ^ rotr(e, 11) ^ rotr(e, 25)) + ((e & f) ^ (~e & g)) + K[i] + w[i]) | 0;
        const t2 = ((rotr(a, 2) ^ rotr(a, 13) ^ rotr(a, 22)) + ((a & b) ^ (a & c) ^ (b & c))) | 0;
        [hh, g, f, e, d, c, b, a] = [g, f, e, (d + t1) | 0, c, b, a, (t1 + t2) | 0];
      }
      [a, b, c, d, e, f, g, hh].forEach((x, i) => (H[i] = (H[i] + x) | 0));
    }
    const out = new DataView(new ArrayBuffer(32));
    H.forEach((x, i) => out.setUint32(i * 4, x >>> 0));
    return out.buffer;
  }

  async function signIn() {
    const verifier = randomString();
    const state = randomString();
    const digest = await sha256(new TextEncoder().encode(verifier));
    sessionStorage.setItem(PKCE_KEY, JSON.stringify({ verifier, state, back: location.hash || "#/invitations" }));
    const q = new URLSearchParams({
      response_type: "code",
      client_id: cfg.client_id,
      redirect_uri: redirectUri(),
      scope: cfg.scope || "openid",
      state,
      code_challenge: b64url(digest),
      code_challenge_method: "S256",
    });
    location.assign(`${cfg.authorize_url}${cfg.authorize_url.includes("?") ? "&" : "?"}${q}`);
  }

  // Finishes a sign-in when the identity provider has sent the browser back with a code.
  // Returns true when the URL carried an answer (signed in, or an error was shown).
  async function completeSignIn() {
    const q = new URLSearchParams(location.search);
    if (!q.has("code") && !q.has("error")) return false;
    const saved = JSON.parse(sessionStorage.getItem(PKCE_KEY) || "null");
    sessionStorage.removeItem(PKCE_KEY);
    const back = (saved && saved.back) || "#/invitations";
    history.replaceState(null, "", `/console${back}`);
    if (q.has("error")) {
      throw new SignInError(`The identity provider refused the sign-in: ${q.get("error_description") || q.get("error")}.`);
    }
    if (!saved || saved.state !== q.get("state")) {
      throw new SignInError("This sign-in answer does not belong to this tab (it may be an old link). Sign in again.");
    }
    const res = await fetch(cfg.token_url, {
      method: "POST",
      headers: { "Content-Type": "application/x-www-form-urlencoded" },
      body: new URLSearchParams({
        grant_type: "authorization_code",
        code: q.get("code"),
        redirect_uri: redirectUri(),
        client_id: cfg.client_id,
        code_verifier: saved.verifier,
      }),
    });
    const body = await res.json().catch(() => ({}));
    const token = body.access_token;
    if (!res.ok || !token) {
      throw new SignInError(`The sign-in could not be completed (${body.error_description || body.error || res.status}). Sign in again.`);
    }
    sessionStorage.setItem(TOKEN_KEY, token);
    loadSession();
    return true;
  }
  class SignInError extends Error {}

  function signOut() {
    sessionStorage.removeItem(TOKEN_KEY);
    session = null;
    if (cfg.sign_out_url) {
      const q = new URLSearchParams({ client_id: cfg.client_id, logout_uri: redirectUri() });
      location.assign(`${cfg.sign_out_url}${cfg.sign_out_url.includes("?") ? "&" : "?"}${q}`);
    } else {
      location.assign("/console");
    }
  }

  const can = (permission) => !!(session && (session.claims.permissions || []).includes(permission));
  const tenant = () => session && session.claims.tenant_id;

  // ---------- API ----------

  // A refusal from the API, with its problem+json body.
  class ApiError extends Error {
    constructor(status, problem) {
      super((problem && (problem.detail || problem.title)) || `HTTP ${status}`);
      this.status = status;
      this.problem = problem || {};
    }
  }

  // api("POST", "/v1/invitations/counts", {body: {...}}) → parsed JSON (null for 204).
  // opts.query: object → query string (arrays repeat the key); opts.headers; opts.raw: the Response.
  async function api(method, path, opts = {}) {
    if (!session) throw new ApiError(401, { title: "Not signed in", detail: "Sign in to continue." });
    let url = path;
    if (opts.query) {
      const q = new URLSearchParams();
      for (const [k, v] of Object.entries(opts.query)) {
        if (v === null || v === undefined || v === "") continue;
        for (const one of Array.isArray(v) ? v : [v]) q.append(k, one);
      }
      const s = q.toString();
      if (s) url += `?${s}`;
    }
    const headers = Object.assign({ Authorization: `Bearer ${session.token}`, Accept: "application/json" }, opts.headers || {});
    const init = { method, headers };
    if (opts.body !== undefined) {
      headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(opts.body);
    }
    let res;
    try {
      res = await fetch(url, init);
    } catch (e) {
      throw new ApiError(0, { title: "No connection", detail: "The server could not be reached. Check your connection and try again." });
    }
    if (opts.raw && res.ok) return res;
    if (res.status === 204) return null;
    const text = await res.text();
    let body = null;
    try {
      body = text ? JSON.parse(text) : null;
    } catch (_) {
      body = { detail: text.slice(0, 300) };
    }
    if (!res.ok) {
      const err = new ApiError(res.status, body);
      err.retryAfter = res.headers.get("Retry-After");
      if (res.status === 401) sessionEnded();
      throw err;
    }
    return body;
  }

  // Fetches a CSV (or any file) with the token and hands it to the browser as a download.
  // Every item of a cursor-paged GET list (divisions, templates), page after page.
  async function all(path, query = {}) {
    const items = [];
    let cursor = null;
    do {
      const page = await api("GET", path, { query: Object.assign({}, query, { limit: 500, cursor }) });
      items.push(...(page.items || []));
      cursor = page.next_cursor;
    } while (cursor);
    return items;
  }

  async function download(method, path, body, filename, query) {
    const res = await api(method, path, { body, query, headers: { Accept: "text/csv" }, raw: true });
    const blob = await res.blob();
    const a = h("a", { href: URL.createObjectURL(blob), download: filename, class: "sr" }, "download");
    document.body.append(a);
    a.click();
    setTimeout(() => {
      URL.revokeObjectURL(a.href);
      a.remove();
    }, 1000);
  }

  // ---------- messages ----------

  const PERMISSION_HELP = {
    "invitations:read": "see counts, lists and statistics",
    "invitations:send": "send invitations",
    "registrations:manage": "handle registration requests and portal keys",
    "settings:manage": "change templates, recurring invitations and sender settings",
    "sync:write": "change divisions and accounts",
  };

  // An element explaining an error in words a manager can act on.
  function problem(err) {
    const p = (err && err.problem) || {};
    const status = err && err.status;
    let title = p.title || "Something went wrong";
    let what = p.detail || (err && err.message) || "";
    let todo = "Try again. If it keeps happening, tell your administrator what you were doing.";
    if (status === 403) {
      title = "You do not have permission for this";
      const need = (p.detail || "").match(/[a-z]+:[a-z]+/);
      what = need ? `This needs the “${need[0]}” permission (to ${PERMISSION_HELP[need[0]] || "do this"}), which your sign-in does not have.` : what;
      todo = "Ask an administrator of your company for the permission, then sign in again.";
    } else if (status === 401) {
      title = "Your session has ended";
      todo = "Sign in again to continue.";
    } else if (status === 404) {
      todo = "It may have been deleted, or the link is out of date. Go back and pick it again.";
    } else if (status === 409) {
      todo = err.retryAfter || p.retry_after ? `It can be done again ${p.retry_after ? "after " + when(p.retry_after) : "in " + err.retryAfter + " seconds"}.` : "Wait and try again.";
    } else if (status === 422 || status === 400) {
      todo = "Correct the highlighted input and try again.";
    } else if (status === 429) {
      todo = "Too many attempts: wait a moment and try again.";
    } else if (status === 0) {
      todo = "Check the connection, then try again.";
    } else if (status >= 500) {
      todo = "The server failed. Try again in a minute; if it keeps failing, tell your administrator (the error has been logged).";
    }
    return h("div", { class: "msg bad", role: "alert" }, h("p", {}, h("strong", {}, title)), what && h("p", {}, what), h("p", {}, todo));
  }

  // A short message in the live region at the top (read out by screen readers).
  function say(text, kind) {
    const box = document.getElementById("status");
    clear(box);
    if (text) box.append(h("div", { class: `msg ${kind || ""}` }, text));
  }

  // ---------- busy ----------

  // Runs `work` (a promise-returning function) with `button` disabled and a spinner shown;
  // an error is shown in `errorBox` (or the status region) and rethrown to no one.
  async function busy(button, work, errorBox) {
    const old = button ? Array.from(button.childNodes) : null;
    if (button) {
      button.disabled = true;
      button.setAttribute("aria-busy", "true");
      button.prepend(h("span", { class: "spinner", "aria-hidden": "true" }));
    }
    if (errorBox) clear(errorBox);
    try {
      return await work();
    } catch (e) {
      if (errorBox) errorBox.append(problem(e));
      else {
        const box = document.getElementById("status");
        clear(box).append(problem(e));
      }
      return undefined;
    } finally {
      if (button) {
        const hadFocus = document.activeElement === button || document.activeElement === document.body;
        button.disabled = false;
        button.removeAttribute("aria-busy");
        clear(button).append(...old);
        // Disabling a focused button drops the focus to <body>: give it back.
        if (hadFocus && button.isConnected && document.activeElement === document.body) button.focus();
      }
    }
  }

  const spinner = (text) => h("p", { class: "muted", role: "status" }, h("span", { class: "spinner", "aria-hidden": "true" }), text || "Loading…");

  // ---------- form pieces ----------

  // A labelled control: field("Search", h("input", {...}), "hint") → wrapper; the control gets an id.
  function field(text, control, hint) {
    if (!control.id) control.id = id("f");
    const wrap = h("div", { class: "field" }, h("label", { for: control.id }, text));
    if (hint) {
      const hid = id("h");
      control.setAttribute("aria-describedby", hid);
      wrap.append(h("span", { class: "hint", id: hid }, hint));
    }
    wrap.append(control);
    return wrap;
  }
  // Shows an error under a field's control (or clears it with null).
  function fieldError(control, message) {
    const wrap = control.closest(".field") || control.parentElement;
    const old = wrap.querySelector(".error");
    if (old) old.remove();
    if (!message) {
      control.removeAttribute("aria-invalid");
      return;
    }
    const eid = id("e");
    control.setAttribute("aria-invalid", "true");
    const described = (control.getAttribute("aria-describedby") || "").split(" ").filter((x) => x && !x.startsWith("e-"));
    control.setAttribute("aria-describedby", [...described, eid].join(" "));
    wrap.append(h("span", { class: "error", id: eid, role: "alert" }, message));
  }
  const check = (text, attrs) => {
    const box = h("input", Object.assign({ type: "checkbox" }, attrs || {}));
    return { box, el: h("label", { class: "check" }, box, text) };
  };

  // A modal confirmation: resolves true when the manager confirms.
  function confirmDialog(title, body, okText) {
    return new Promise((resolve) => {
      const ok = h("button", { class: "primary", value: "ok" }, okText || "Confirm");
      const cancel = h("button", { value: "cancel", type: "button" }, "Cancel");
      const d = h("dialog", { "aria-labelledby": "dlg-title" }, h("form", { method: "dialog" }, h("h2", { id: "dlg-title" }, title), h("div", {}, body), h("div", { class: "actions" }, ok, cancel)));
      cancel.addEventListener("click", () => d.close("cancel"));
      d.addEventListener("close", () => {
        resolve(d.returnValue === "ok");
        d.remove();
      });
      document.body.append(d);
      d.showModal();
      cancel.focus();
    });
  }

  // ---------- tables and paged lists ----------

  // table(columns, rows, {select}) — columns: [{title, get(row) → text|Node, num}]. With
  // select: {key(row), selected: Set, onchange()} a checkbox column is added.
  function table(columns, rows, opts = {}) {
    const sel = opts.select;
    const head = h("tr", {}, sel && h("th", { scope: "col" }, h("span", { class: "sr" }, "Select")), columns.map((c) => h("th", { scope: "col", class: c.num ? "num" : null }, c.title)));
    const body = rows.map((r) => {
      const cells = columns.map((c) => h("td", { class: c.num ? "num" : null }, c.get(r)));
      if (sel) {
        const k = sel.key(r);
        const box = h("input", { type: "checkbox", checked: sel.selected.has(k), "aria-label": `Select ${sel.name ? sel.name(r) : k}` });
        box.addEventListener("change", () => {
          if (box.checked) sel.selected.add(k);
          else sel.selected.delete(k);
          if (sel.onchange) sel.onchange();
        });
        cells.unshift(h("td", {}, box));
      }
      return h("tr", {}, cells);
    });
    const empty = rows.length ? null : h("tr", {}, h("td", { colspan: columns.length + (sel ? 1 : 0) }, opts.empty || "Nothing to show."));
    // A table wider than a phone scrolls sideways: keyboard users reach it (focusable, named).
    const wrap = opts.caption ? { class: "table-wrap", tabindex: "0", role: "region", "aria-label": opts.caption } : { class: "table-wrap" };
    return h("div", wrap, h("table", {}, opts.caption && h("caption", { class: "sr" }, opts.caption), h("thead", {}, head), h("tbody", {}, body, empty)));
  }

  // A cursor-paged list: load(cursor) → {items, next_cursor}; shows a table and
  // "Previous"/"Next" buttons; returns {el, reload()}. A search that matches little comes
  // back as short or empty pages that still have a cursor (the server examines a bounded
  // number of items per request): empty ones are followed, a few at a time.
  function pagedList(opts) {
    const el = h("div", {});
    const stack = []; // cursors of pages before this one
    let cursor = null;
    async function show() {
      clear(el).append(spinner());
      try {
        let page = await opts.load(cursor);
        for (let hops = 0; !(page.items || []).length && page.next_cursor && hops < 10; hops++) {
          cursor = page.next_cursor;
          page = await opts.load(cursor);
        }
        const items = page.items || [];
        const prev = h("button", { type: "button", disabled: !stack.length }, "Previous page");
        const next = h("button", { type: "button", disabled: !page.next_cursor }, "Next page");
        prev.addEventListener("click", () => {
          cursor = stack.pop() || null;
          show();
        });
        next.addEventListener("click", () => {
          stack.push(cursor);
          cursor = page.next_cursor;
          show();
        });
        // Still nothing after a few hops: say the search goes on, and let "Next" continue it.
        const empty = !items.length && page.next_cursor ? "No matches yet: only part of the list has been searched. Choose “Next page” to search further." : opts.empty;
        clear(el).append(table(opts.columns, items, { select: opts.select, empty, caption: opts.caption }), h("div", { class: "actions" }, prev, next, h("span", { class: "muted" }, `Page ${stack.length + 1}`)));
        if (opts.onpage) opts.onpage(items);
      } catch (e) {
        clear(el).append(problem(e));
      }
    }
    return {
      el,
      reload() {
        stack.length = 0;
        cursor = null;
        return show();
      },
    };
  }

  // ---------- routing ----------

  const pages = []; // {pattern: ["campaigns", ":id"], render, title, nav, permission}
  // page("campaigns/:id", render(main, params, query), {title, nav: "Campaigns", permission})
  function page(pattern, render, opts = {}) {
    pages.push(Object.assign({ pattern: pattern.split("/"), render }, opts));
  }
  function parseHash() {
    const raw = location.hash.replace(/^#\/?/, "");
    const [path, qs] = raw.split("?");
    return { parts: path ? path.split("/").map(decodeURIComponent) : [], query: new URLSearchParams(qs || "") };
  }
  // link("campaigns", id) → "#/campaigns/<id>"; link with query: link("x", {q: 1})
  function link(...parts) {
    let q = "";
    if (parts.length && typeof parts[parts.length - 1] === "object") {
      const o = parts.pop();
      const s = new URLSearchParams(Object.entries(o).filter(([, v]) => v !== null && v !== undefined && v !== "")).toString();
      if (s) q = `?${s}`;
    }
    return `#/${parts.map(encodeURIComponent).join("/")}${q}`;
  }
  function go(...parts) {
    location.hash = link(...parts);
  }

  function renderNav(current) {
    const nav = clear(document.getElementById("nav"));
    for (const p of pages.filter((p) => p.nav)) {
      if (p.permission && !can(p.permission)) continue;
      const here = current && current.pattern[0] === p.pattern[0];
      nav.append(h("a", { href: link(...p.pattern), "aria-current": here ? "page" : null }, p.nav));
    }
    const who = clear(document.getElementById("who"));
    if (session) {
      const out = h("button", { type: "button" }, "Sign out");
      out.addEventListener("click", signOut);
      who.append(h("span", {}, `${session.claims.sub} · ${session.claims.tenant_id}`), out);
    }
  }

  // A page with unsaved changes registers a check with C.guardLeave(() => bool); leaving it
  // (another page, reload, closing the tab) then asks first. Every new page starts unguarded.
  let leaveGuard = null;
  let shownHash = location.hash;
  let reverting = false;
  const guardLeave = (check) => {
    leaveGuard = check;
  };
  const unsaved = () => !!(leaveGuard && leaveGuard());
  window.addEventListener("beforeunload", (ev) => {
    if (unsaved()) {
      ev.preventDefault();
      ev.returnValue = "";
    }
  });

  let renderSeq = 0;
  async function route() {
    if (reverting) {
      reverting = false;
      return;
    }
    if (location.hash !== shownHash && unsaved() && !window.confirm("Leave this page? Your unsaved changes will be lost.")) {
      reverting = true;
      location.hash = shownHash;
      return;
    }
    shownHash = location.hash;
    leaveGuard = null;
    const main = document.getElementById("main");
    const { parts, query } = parseHash();
    if (!session) return signInPage(main);
    let match = null;
    let params = {};
    for (const p of pages) {
      if (p.pattern.length !== parts.length) continue;
      const got = {};
      if (p.pattern.every((seg, i) => (seg.startsWith(":") ? ((got[seg.slice(1)] = parts[i]), true) : seg === parts[i]))) {
        match = p;
        params = got;
        break;
      }
    }
    if (!match) {
      const first = pages.find((p) => p.nav && (!p.permission || can(p.permission)));
      if (first && parts.length === 0) return go(...first.pattern);
      renderNav(null);
      put(main, h("h1", {}, "Page not found"), h("p", {}, "This address is not a page of the console. "), h("a", { href: "#/invitations" }, "Go to Invitations"));
      return;
    }
    const seq = ++renderSeq;
    renderNav(match);
    say("");
    clear(main);
    document.title = `${match.title || match.nav || "Console"} · Portal Invitations`;
    if (match.permission && !can(match.permission)) {
      main.append(h("h1", {}, match.title || match.nav), problem({ status: 403, problem: { detail: `needs ${match.permission}` } }));
      return;
    }
    try {
      await match.render(main, params, query, () => seq === renderSeq);
    } catch (e) {
      if (seq === renderSeq) main.append(problem(e));
    }
    if (seq === renderSeq && !main.contains(document.activeElement)) main.focus({ preventScroll: true });
  }

  function signInPage(main, message) {
    renderNav(null);
    // Without a token the console goes straight to the identity provider — unless it just
    // did (a refusal must not loop) or it has something to say.
    const last = Number(sessionStorage.getItem(AUTO_KEY) || 0);
    if (!message && Date.now() - last > 30000) {
      sessionStorage.setItem(AUTO_KEY, String(Date.now()));
      put(main, spinner("Signing in…"));
      signIn();
      return;
    }
    const btn = h("button", { class: "primary", type: "button" }, "Sign in");
    btn.addEventListener("click", () => busy(btn, signIn));
    put(main, h("h1", {}, "Sign in"), message && h("div", { class: "msg bad", role: "alert" }, message), h("p", {}, "Sign in with your company account to load counts, send invitations and read their results."), btn);
  }

  function sessionEnded() {
    sessionStorage.removeItem(TOKEN_KEY);
    session = null;
  }

  async function start() {
    try {
      await completeSignIn();
    } catch (e) {
      loadSession();
      return signInPage(document.getElementById("main"), e.message);
    }
    loadSession();
    window.addEventListener("hashchange", route);
    route();
  }

  return {
    cfg, h, append, clear, put, id, VALUE_FILTERS, SWITCHES, num, pct, when, ago, label,
    api, all, ApiError, download, problem, say, busy, spinner,
    field, fieldError, check, confirmDialog, table, pagedList,
    page, link, go, route, parseHash, can, tenant, start, sha256, sha256Plain, guardLeave,
    session: () => session,
  };
})();
