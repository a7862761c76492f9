// Deployment (admins): the effective, non-secret LYKTA_* settings. Read-only on purpose: they
// belong to whoever runs the servers (docs/staff.md, "Deployment settings").
import { h, problemText } from "../core.js";

// The API's names for the values that are derived from a variable rather than equal to it.
const VARIABLES = {
  database: "LYKTA_DATABASE_URL (kind)",
  broker: "LYKTA_REDIS_URL (redis; memory when unset)",
  kek_ids: "LYKTA_KEKS (key ids only)",
};

export function mount(root, ctx) {
  const t = ctx.t;
  let alive = true;
  const body = h("div", { id: "deployment-body" }, h("p", { class: "muted", text: t("common.loading") }));
  root.append(
    h("h1", { id: "view-deployment-title", text: t("nav.deployment") }),
    h("p", { class: "notice", text: t("deployment.help") }),
    body,
  );
  ctx.api("GET", "/api/admin/deployment").then((result) => {
    if (!alive) return;
    if (!result.ok) {
      body.replaceChildren(h("p", { class: "notice warn", role: "alert", text: problemText(result) }));
      return;
    }
    body.replaceChildren(
      h("div", { class: "table-wrap" },
        h("table", {},
          h("caption", { class: "visually-hidden", text: t("nav.deployment") }),
          h("thead", {}, h("tr", {}, h("th", { scope: "col", text: t("deployment.setting") }), h("th", { scope: "col", text: t("deployment.value") }))),
          h("tbody", {}, Object.entries(result.data).map(([name, value]) =>
            h("tr", {},
              h("th", { scope: "row" }, h("code", { text: VARIABLES[name] ?? `LYKTA_${name.toUpperCase()}` })),
              h("td", { text: Array.isArray(value) ? value.join(", ") || "—" : String(value) })))))),
    );
  });
  return () => {
    alive = false;
  };
}
