// Booked chats in the chats screen (docs/continuity.md, "Booked chats"): the counsellor's
// booked chats of today, and offering a visitor who holds a continuity code up to three times
// inside the counsellor's own shifts. Everything from the server goes in as text.

import { h, nextId, clockIn, formatDay, spanIn, zoneLabel } from "./core.js";

// The server takes at most this many times in one offer.
export const MAX_TIMES = 3;
// Offered times are steps of this many minutes from a shift's start.
const STEP_MINUTES = 30;
// A time this close to now is not offered (the visitor needs a moment to pick it).
const LEAD_MINUTES = 5;
// How often the list of today's booked chats is read again (visitors book at any time).
const REFRESH_MS = 60_000;

// Transcript entries this module draws.
export const BOOKING_ENTRIES = ["booking.offered", "booking.missed"];

// Entries after which the visitor holds a code of this chat (taken now, or brought back).
export const CODE_ENTRIES = ["continuity.accepted", "handover"];

// `zone`: the chat's line's time zone, so times read as the roster has them.
export function bookingEntry(ctx, entry, at, zone) {
  const t = (key, vars) => ctx.t(key, vars);
  if (entry.type === "booking.missed") {
    return h("li", { class: "entry system booking" }, h("p", {}, h("span", { text: t("booking.missed_entry") }), " ", at));
  }
  const times = Array.isArray(entry.times) ? entry.times : [];
  return h(
    "li",
    { class: "entry system booking" },
    h("p", {}, h("span", { text: t("booking.offered_entry", { count: times.length }) }), " ", at),
    h("ul", { class: "booking-times" }, ...times.map((iso) => h("li", { text: whenText(ctx, iso, zone) }))),
  );
}

// "Mon 7 Dec 18:30" on the line's clock, with the zone's name where the browser's differs.
function whenText(ctx, iso, zone) {
  const ms = Date.parse(iso);
  if (Number.isNaN(ms)) return String(iso ?? "");
  const day = new Intl.DateTimeFormat(ctx.lang === "sv" ? "sv-SE" : "en-GB", { weekday: "short", day: "numeric", month: "short", ...(zone ? { timeZone: zone } : {}) }).format(new Date(ms));
  const label = zoneLabel(zone, ms);
  return `${day} ${clockIn(ms, zone)}${label ? ` ${label}` : ""}`;
}

// The side block "Booked chats today", read from GET /api/bookings/today.
export function bookedToday(ctx) {
  const t = (key, vars) => ctx.t(key, vars);
  const list = h("ul", { class: "booked-list", "aria-labelledby": "booked-title" });
  const none = h("p", { class: "muted", text: t("booking.none_today") });
  const problem = h("p", { class: "notice warn", hidden: true });
  const section = h("section", { class: "side-block booked-today" }, h("h2", { id: "booked-title", text: t("booking.today") }), none, problem, list);
  let alive = true;

  async function refresh() {
    const result = await ctx.api("GET", "/api/bookings/today");
    if (!alive) return;
    problem.hidden = result.ok;
    if (!result.ok) {
      problem.textContent = t("booking.today_failed");
      return;
    }
    const rows = result.data?.bookings ?? [];
    none.hidden = rows.length > 0;
    list.replaceChildren(
      ...rows.map((row) => {
        const ms = Date.parse(row.starts_at);
        const label = zoneLabel(row.time_zone, ms);
        const passed = ms < Date.now();
        return h(
          "li",
          { class: "booked-item", dataset: { booking: row.id } },
          h("time", { class: "booked-at", datetime: row.starts_at, text: `${clockIn(ms, row.time_zone)}${label ? ` ${label}` : ""}` }),
          h("span", { class: "booked-line", text: row.line_name || row.line }),
          row.arrived ? h("span", { class: "tag returning", text: t("booking.arrived") }) : passed ? h("span", { class: "tag", text: t("booking.not_yet") }) : null,
        );
      }),
    );
  }

  refresh();
  const timer = setInterval(refresh, REFRESH_MS);
  return {
    element: section,
    refresh,
    stop() {
      alive = false;
      clearInterval(timer);
    },
  };
}

// The "Offer times" dialog of a chat whose visitor holds a code.
export function bookingTools(ctx, socket, state, { timesDialog }) {
  const t = (key, vars) => ctx.t(key, vars);

  async function offerTimes(chat) {
    const error = h("p", { class: "field-error", hidden: true, role: "alert" });
    const count = h("p", { class: "hint", role: "status" });
    const shiftsBox = h("div", { class: "booking-shifts" }, h("p", { class: "muted", text: t("booking.loading") }));
    const offer = h("button", { type: "submit", class: "primary", text: t("booking.offer_send") });
    const cancel = h("button", { type: "button", text: t("chats.cancel") });
    cancel.addEventListener("click", () => timesDialog.close());
    const form = h(
      "form",
      { novalidate: true, class: "booking-form" },
      h("h2", { id: "times-title", text: t("booking.offer_title") }),
      h("p", { text: t("booking.offer_text", { max: MAX_TIMES }) }),
      shiftsBox,
      count,
      error,
      h("div", { class: "actions" }, offer, cancel),
    );
    const boxes = () => [...shiftsBox.querySelectorAll("input[type=checkbox]")];
    function update() {
      const chosen = boxes().filter((box) => box.checked);
      // At most three: the rest wait until one is unticked.
      for (const box of boxes()) box.disabled = !box.checked && chosen.length >= MAX_TIMES;
      count.textContent = t("booking.chosen", { count: chosen.length, max: MAX_TIMES });
    }
    form.addEventListener("change", update);
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      const times = boxes().filter((box) => box.checked).map((box) => box.value);
      if (!times.length) {
        error.textContent = t("booking.choose_one");
        error.hidden = false;
        return;
      }
      error.hidden = true;
      state.lastAction["booking.offer"] = chat.id;
      socket.send({ type: "booking.offer", chat_id: chat.id, times });
    });
    timesDialog.replaceChildren(form);
    timesDialog.dataset.chat = chat.id;
    timesDialog.errorBox = error;
    timesDialog.showModal();
    cancel.focus();

    const result = await ctx.api("GET", "/api/roster/me/shifts");
    if (!timesDialog.open || timesDialog.dataset.chat !== chat.id) return;
    if (!result.ok) {
      shiftsBox.replaceChildren(h("p", { class: "notice warn", text: t("booking.shifts_failed") }));
      return;
    }
    // Only roster shifts on the chat's line count (the server checks the same).
    const shifts = (result.data ?? []).filter((s) => s.kind === "shift" && s.line === chat.line);
    const groups = shifts.map((s) => shiftGroup(s)).filter(Boolean);
    if (!groups.length) {
      shiftsBox.replaceChildren(h("p", { class: "muted", text: t("booking.no_shifts") }));
      offer.disabled = true;
      return;
    }
    shiftsBox.replaceChildren(...groups);
    update();
    boxes()[0]?.focus();
  }

  // One shift with its times, or null when none of them is still ahead.
  function shiftGroup(shift) {
    const start = Date.parse(shift.starts_at);
    const end = Date.parse(shift.ends_at);
    const earliest = Date.now() + LEAD_MINUTES * 60_000;
    const steps = [];
    for (let at = start; at < end; at += STEP_MINUTES * 60_000) if (at >= earliest) steps.push(at);
    if (!steps.length) return null;
    const legend = `${formatDay(shift.date)} ${spanIn(shift.start, shift.end, shift.time_zone, start)}`;
    return h(
      "fieldset",
      { class: "booking-shift", dataset: { shift: shift.key } },
      h("legend", { text: legend }),
      h(
        "div",
        { class: "booking-steps" },
        ...steps.map((at) => {
          const id = nextId("time");
          const iso = new Date(at).toISOString().replace(/\.\d{3}Z$/, "Z");
          const day = formatDay(shift.date);
          return h(
            "span",
            { class: "booking-step" },
            h("input", { type: "checkbox", id, name: "times", value: iso, "aria-label": `${day} ${clockIn(at, shift.time_zone)}` }),
            h("label", { for: id, text: clockIn(at, shift.time_zone) }),
          );
        }),
      ),
    );
  }

  // The times went to the visitor: the dialog's work is done.
  function offered(chat) {
    if (timesDialog.open && timesDialog.dataset.chat === chat.id) timesDialog.close();
  }

  function showError(ref, message) {
    if (ref !== "booking.offer" || !timesDialog.open) return false;
    timesDialog.errorBox.textContent = message;
    timesDialog.errorBox.hidden = false;
    return true;
  }

  return { offerTimes, offered, showError };
}
