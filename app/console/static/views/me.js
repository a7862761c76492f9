// Me: one's own account; for counsellors their shifts, open places to sign up for, drop
// requests, and the private calendar feed (app/roster/endpoints.py /api/roster/me/*).
import { h, field, showErrors, formatDay, problemText, spanIn } from "../core.js";

export function mount(root, ctx) {
  const t = ctx.t;
  let alive = true;
  const me = ctx.me;
  const notice = h("div", { id: "me-notice" });
  const shifts = h("section", { class: "card", "aria-labelledby": "me-shifts-title" });
  const open = h("section", { class: "card", "aria-labelledby": "me-open-title" });
  const calendar = h("section", { class: "card", "aria-labelledby": "me-calendar-title" });
  const title = ctx.can("own_shifts") ? t("nav.me") : t("nav.account");
  root.append(
    h("h1", { id: "view-me-title", text: title }),
    h("section", { class: "card", "aria-labelledby": "me-account-title" },
      h("h2", { id: "me-account-title", text: t("me.account") }),
      h("dl", { class: "facts" },
        h("dt", { text: t("staff.alias") }), h("dd", { text: me.alias }),
        h("dt", { text: t("staff.username") }), h("dd", { text: me.username }),
        h("dt", { text: t("staff.role") }), h("dd", { text: t(`role.${me.role}`) }),
        me.qualification ? [h("dt", { text: t("staff.qualification") }), h("dd", { text: t(`qualification.${me.qualification}`) })] : null,
        me.role === "counsellor" ? [h("dt", { text: t("staff.capacity") }), h("dd", { text: String(me.capacity) })] : null,
        me.languages.length ? [h("dt", { text: t("staff.languages") }), h("dd", { text: me.languages.join(", ") })] : null,
        me.lines.length ? [h("dt", { text: t("staff.lines") }), h("dd", { id: "me-lines", text: me.lines.map((l) => l.key).join(", ") })] : null),
      h("p", { class: "muted", text: t("me.account_help") })),
    notice,
  );
  if (ctx.can("own_shifts")) root.append(shifts, open, calendar);

  // Drop requests made here, by shift: they can be withdrawn until a coordinator decides.
  const myDrops = new Map();
  // As the roster has it: the line's date and clock, with the line's zone when this browser
  // is in another (a shift of 18:00–21:00 in Stockholm is not 17:00–20:00 anywhere).
  const when = (item) => `${formatDay(item.date, { weekday: "short", day: "numeric", month: "short" })} ${spanIn(item.start, item.end, item.time_zone, item.starts_at)}`;

  async function loadShifts() {
    const result = await ctx.api("GET", "/api/roster/me/shifts");
    if (!alive) return;
    const rows = result.ok ? result.data : [];
    shifts.replaceChildren(
      h("h2", { id: "me-shifts-title", text: t("me.shifts") }),
      ...(result.ok ? [] : [h("p", { class: "notice warn", text: problemText(result) })]),
      rows.length
        ? h("ul", { class: "shift-list" }, rows.map((item) => shiftItem(item)))
        : h("p", { class: "muted", text: t("me.no_shifts") }),
    );
  }

  function shiftItem(item) {
    const li = h("li", { class: "shift-item", dataset: { key: item.key } },
      h("span", { class: "shift-when", text: when(item) }),
      h("span", { class: "tag", text: item.line_name }),
      item.kind === "ad_hoc" ? h("span", { class: "tag", text: t("me.ad_hoc") }) : null,
      item.drop_requested ? h("span", { class: "tag gap", text: t("roster.drop_requested") }) : null);
    if (item.kind === "shift" && !item.drop_requested && item.assignment_id && new Date(item.starts_at) > new Date()) {
      const button = h("button", { type: "button", class: "small", text: t("me.ask_drop"), "aria-label": t("me.ask_drop_for", { when: when(item) }) });
      button.addEventListener("click", () => {
        const note = h("input", { name: "note", maxlength: 500 });
        const form = h("form", { class: "inline-form", novalidate: true },
          h("div", { class: "form-error" }),
          field(t("me.drop_note"), note, t("me.drop_note_hint")),
          h("div", { class: "actions" },
            h("button", { type: "submit", class: "small primary", text: t("me.send_drop") }),
            h("button", { type: "button", class: "small", text: t("common.cancel"), onclick: () => { form.remove(); button.hidden = false; button.focus(); } })));
        form.addEventListener("submit", async (event) => {
          event.preventDefault();
          const result = await ctx.api("POST", "/api/roster/me/drop-requests", { assignment_id: item.assignment_id, date: item.date, note: note.value });
          if (!result.ok) return showErrors(form, result);
          myDrops.set(item.key, result.data.id);
          notice.replaceChildren(h("p", { class: "notice ok", role: "status", text: t("me.drop_sent") }));
          await loadShifts();
        });
        button.hidden = true;
        li.append(form);
        note.focus();
      });
      li.append(" ", button);
    }
    if (item.drop_requested && myDrops.has(item.key)) {
      li.append(" ", h("button", { type: "button", class: "small", text: t("me.withdraw_drop"), onclick: async () => {
        const result = await ctx.api("DELETE", `/api/roster/me/drop-requests/${myDrops.get(item.key)}`);
        if (result.ok) myDrops.delete(item.key);
        notice.replaceChildren(h("p", { class: result.ok ? "notice ok" : "notice warn", role: "status", text: result.ok ? t("me.drop_withdrawn") : problemText(result) }));
        await loadShifts();
      } }));
    }
    return li;
  }

  async function loadOpen() {
    const result = await ctx.api("GET", "/api/roster/me/open-shifts");
    if (!alive) return;
    const rows = result.ok ? result.data : [];
    open.replaceChildren(
      h("h2", { id: "me-open-title", text: t("me.open") }),
      h("p", { class: "hint", text: t("me.open_help") }),
      rows.length
        ? h("ul", { class: "shift-list" }, rows.map((item) => h("li", { class: "shift-item", dataset: { key: item.key } },
            h("span", { class: "shift-when", text: when(item) }),
            h("span", { class: "tag", text: item.line_name }),
            h("span", { text: t("me.places", { n: item.open_places }) }), " ",
            h("button", { type: "button", class: "small primary", text: t("me.sign_up"), "aria-label": t("me.sign_up_for", { when: when(item) }), onclick: async () => {
              const body = item.extra_shift_id ? { extra_shift_id: item.extra_shift_id } : { pattern_id: item.pattern_id, date: item.date };
              const signed = await ctx.api("POST", "/api/roster/me/signups", body);
              notice.replaceChildren(h("p", { class: signed.ok ? "notice ok" : "notice warn", role: "status", text: signed.ok ? t("me.signed_up", { when: when(item) }) : problemText(signed) }));
              await Promise.all([loadShifts(), loadOpen()]);
            } }))))
        : h("p", { class: "muted", text: t("me.no_open") }),
    );
  }

  function renderCalendar(url) {
    const parts = [h("h2", { id: "me-calendar-title", text: t("me.calendar") }), h("p", { class: "hint", text: t("me.calendar_help") })];
    if (url) {
      const input = h("input", { id: "calendar-url", readonly: true, value: url, class: "link-field" });
      parts.push(h("div", { class: "field" }, h("label", { for: input.id, text: t("me.calendar_url") }), input), h("p", { class: "muted", text: t("me.calendar_once") }));
    }
    parts.push(h("div", { class: "actions" },
      h("button", { type: "button", class: "primary", id: "calendar-create", text: t("me.calendar_create"), onclick: async () => {
        const result = await ctx.api("POST", "/api/roster/me/calendar");
        if (!result.ok) return notice.replaceChildren(h("p", { class: "notice warn", role: "alert", text: problemText(result) }));
        renderCalendar(result.data.url);
        calendar.querySelector("#calendar-url")?.select();
      } }),
      h("button", { type: "button", class: "danger", id: "calendar-revoke", text: t("me.calendar_revoke"), onclick: async () => {
        const result = await ctx.api("DELETE", "/api/roster/me/calendar");
        renderCalendar(null);
        notice.replaceChildren(h("p", { class: result.ok ? "notice ok" : "notice warn", role: "status", text: result.ok ? t("me.calendar_revoked") : problemText(result) }));
      } })));
    calendar.replaceChildren(...parts);
  }

  if (me.lines.length) {
    // The lines' names from the public list (the profile carries only their keys).
    ctx.api("GET", "/api/lines").then((result) => {
      const target = root.querySelector("#me-lines");
      if (!alive || !result.ok || !target) return;
      const names = new Map(result.data.map((line) => [line.key, line.name]));
      target.textContent = me.lines.map((l) => names.get(l.key) ?? l.key).join(", ");
    });
  }
  if (ctx.can("own_shifts")) {
    loadShifts();
    loadOpen();
    renderCalendar(null);
  }
  return () => {
    alive = false;
  };
}
