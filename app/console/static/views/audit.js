// Audit log: newest first, filtered by action, staff, line, chat and time. Filters go in the
// body of POST /api/audit/search so that a chat id never lands in a URL (or a proxy log).
import { h, field, showErrors, clearErrors, formatDateTime, parseDate, parseTime } from "../core.js";

const ACTIONS = [
  "sign_in", "sign_out", "access.denied", "enrolment.completed", "staff", "line", "chat", "roster.changed", "interpreter",
  "mailbox",
];
const PAGE = 50;

export function mount(root, ctx) {
  const t = ctx.t;
  // An action in words (the raw name stays in the cell's title for searching and support).
  const actionText = (action) => {
    const key = `audit.action.${action}`;
    return t(key) === key ? action : t(key);
  };
  let alive = true;
  let offset = 0;
  let staff = [];
  // Line keys to names; a line taken out since keeps its key.
  let lineNames = new Map();
  const action = h("select", { name: "action" }, h("option", { value: "", text: t("audit.any") }), ACTIONS.map((a) => h("option", { value: a, text: actionText(a) })));
  const who = h("select", { name: "staff_id" }, h("option", { value: "", text: t("audit.anyone") }));
  const line = h("select", { name: "line" }, h("option", { value: "", text: t("audit.any_line") }));
  const chat = h("input", { name: "chat_id", autocomplete: "off", spellcheck: "false", "data-error-words": "chat" });
  // A date, or a date and a time, written as the console's language writes them (a native
  // datetime input would follow the browser's locale instead).
  const moments = { type: "text", autocomplete: "off", spellcheck: "false", placeholder: `${t("date.placeholder")} ${t("time.placeholder")}` };
  const since = h("input", { ...moments, name: "since" });
  const until = h("input", { ...moments, name: "until" });
  const form = h("form", { class: "filters card", novalidate: true, "aria-labelledby": "audit-filters-title" },
    h("h2", { id: "audit-filters-title", class: "visually-hidden", text: t("audit.filters") }),
    h("div", { class: "form-error" }),
    h("div", { class: "field-row" },
      field(t("audit.action"), action),
      field(t("audit.staff"), who),
      field(t("common.line"), line),
      field(t("audit.chat"), chat, t("audit.chat_hint"))),
    h("div", { class: "field-row" },
      field(t("audit.since"), since),
      field(t("audit.until"), until)),
    h("div", { class: "actions" },
      h("button", { type: "submit", class: "primary", text: t("audit.filter") }),
      h("button", { type: "button", text: t("audit.clear"), onclick: () => { form.reset(); offset = 0; load(); } })));
  const results = h("div", { id: "audit-results", class: "table-wrap" });
  const pager = h("div", { class: "actions pager" });
  root.append(h("h1", { id: "view-audit-title", text: t("nav.audit") }), form, results, pager);
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    offset = 0;
    load();
  });

  async function start() {
    const [people, lines] = await Promise.all([ctx.api("GET", "/api/staff"), ctx.api("GET", "/api/roster/lines")]);
    if (!alive) return;
    staff = people.ok ? people.data : [];
    who.append(...[...staff].sort((a, b) => a.username.localeCompare(b.username)).map((s) => h("option", { value: s.id, text: `${s.alias} (${s.username})` })));
    if (lines.ok) {
      lineNames = new Map(lines.data.map((l) => [l.key, l.name]));
      line.append(...lines.data.map((l) => h("option", { value: l.key, text: l.name })));
    }
    await load();
  }

  // The coordinator's own local time; an "until" day without a time runs to its end. What is
  // no date goes to the server as typed, whose refusal then appears next to the field.
  function moment(input, endOfDay = false) {
    const text = input.value.trim();
    if (!text) return null;
    const [dayText, timeText] = text.split(/\s+/);
    const day = parseDate(dayText);
    const time = timeText === undefined ? null : parseTime(timeText);
    if (!day || (timeText !== undefined && !time) || text.split(/\s+/).length > 2) return text;
    const [y, m, d] = day.split("-").map(Number);
    if (time) {
      const [hours, minutes] = time.split(":").map(Number);
      return new Date(y, m - 1, d, hours, minutes).toISOString();
    }
    return new Date(y, m - 1, d + (endOfDay ? 1 : 0)).toISOString();
  }

  let latest = 0;
  async function load() {
    latest += 1;
    const mine = latest;
    clearErrors(form);
    const body = { limit: PAGE, offset };
    if (action.value) body.action = action.value;
    if (who.value) body.staff_id = who.value;
    if (line.value) body.line = line.value;
    if (chat.value.trim()) body.chat_id = chat.value.trim();
    if (since.value.trim()) body.since = moment(since);
    if (until.value.trim()) body.until = moment(until, true);
    const result = await ctx.api("POST", "/api/audit/search", body);
    if (!alive || mine !== latest) return;
    if (!result.ok) {
      showErrors(form, result);
      return;
    }
    const entries = result.data.entries;
    results.replaceChildren(
      h("table", { class: "audit-table" },
        h("caption", { text: t("audit.caption", { from: offset + 1, to: offset + entries.length }) }),
        h("thead", {}, h("tr", {}, ...["audit.when", "audit.action", "audit.actor", "audit.target", "common.line", "audit.chat", "audit.detail"].map((k) => h("th", { scope: "col", text: t(k) })))),
        h("tbody", {}, entries.length
          ? entries.map((e) => h("tr", { dataset: { action: e.action } },
              h("td", { text: formatDateTime(e.at, { dateStyle: "short", timeStyle: "medium" }) }),
              h("td", { title: e.action, text: actionText(e.action) }),
              h("td", { text: e.actor ?? "—" }),
              h("td", { text: e.target ?? "—" }),
              h("td", { title: e.line_key, text: e.line_key ? (lineNames.get(e.line_key) ?? e.line_key) : "—" }),
              h("td", { class: "mono", text: e.chat_id ?? "—" }),
              h("td", { class: "detail", text: Object.entries(e.detail || {}).map(([k, v]) => `${k}: ${typeof v === "object" ? JSON.stringify(v) : v}`).join("; ") || "—" })))
          : h("tr", {}, h("td", { colspan: 7, text: t("audit.none") })))),
    );
    pager.replaceChildren(
      h("button", { type: "button", text: t("audit.newer"), disabled: offset === 0, onclick: () => { offset = Math.max(0, offset - PAGE); load(); } }),
      h("button", { type: "button", text: t("audit.older"), disabled: entries.length < PAGE, onclick: () => { offset += PAGE; load(); } }),
    );
  }

  start();
  return () => {
    alive = false;
  };
}
