// invitations.js — placeholder
(() => {
  const { h, api, put } = C;
  C.page("invitations", async (main) => {
    const d = await api("GET", "/v1/divisions");
    put(main, h("h1", {}, "Invitations"), h("pre", {}, JSON.stringify(d, null, 1).slice(0, 800)));
  }, { nav: "Invitations", permission: "invitations:read" });
})();
