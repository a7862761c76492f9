// Roster: a week per line with needed against assigned, gaps highlighted; assign, unassign,
// drop requests, weekly patterns, extra shifts, closures and ad hoc duty (docs/roster.md).
import { h, field, showErrors, clearErrors, confirmAction, isoDate, addDays, formatDay, formatDateTime, problemText, dateInput, dateValue, parseDate, setDate, timeInput, timeValue, todayIn, zoneLabel } from "../core.js";

const WEEKDAYS = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

export function mount(root, ctx) {
  const t = ctx.t;
  const state = { lines: [], line: null, day: isoDate(new Date()), staff: [], week: null };
  const opened = state.day;
  let alive = true;

  const lineSelect = h("select", { id: "roster-line", name: "line" });
  const dayInput = dateInput({ id: "roster-day", name: "day", value: state.day });
  const heading = h("h1", { id: "view-roster-title", text: t("nav.roster") });
  const weekTitle = h("h2", { id: "roster-week-title", class: "week-title", tabindex: "-1" });
  const totals = h("p", { class: "week-totals", id: "roster-totals" });
  const zoneNote = h("p", { class: "hint zone-note", id: "roster-zone", hidden: true });
  const grid = h("div", { class: "week-grid", id: "roster-week" });
  const coverage = h("section", { class: "card", id: "roster-coverage", "aria-labelledby": "coverage-title" });
  const status = h("div", { class: "roster-status", role: "status" });
  const drops = h("section", { class: "card", "aria-labelledby": "drops-title" });
  const patterns = h("section", { class: "card", "aria-labelledby": "patterns-title" });
  const extras = h("section", { class: "card", "aria-labelledby": "extra-title" });
  const closures = h("section", { class: "card", "aria-labelledby": "closures-title" });
  const duty = h("section", { class: "card", "aria-labelledby": "duty-title" });

  const move = (days) => {
    state.day = addDays(state.day, days);
    setDate(dayInput, state.day);
    loadWeek(true);
  };
  root.append(
    heading,
    h("div", { class: "toolbar" },
      field(t("common.line"), lineSelect),
      field(t("roster.week_of"), dayInput),
      h("div", { class: "actions" },
        h("button", { type: "button", id: "roster-prev", text: t("roster.prev"), onclick: () => move(-7) }),
        h("button", { type: "button", id: "roster-this", text: t("roster.this_week"), onclick: () => { state.day = todayIn(state.line?.time_zone); setDate(dayInput, state.day); loadWeek(true); } }),
        h("button", { type: "button", id: "roster-next", text: t("roster.next"), onclick: () => move(7) }))),
    status,
    weekTitle,
    zoneNote,
    totals,
    grid,
    coverage,
    drops,
    patterns,
    extras,
    closures,
    duty,
  );
  lineSelect.addEventListener("change", () => {
    state.line = state.lines.find((l) => l.key === lineSelect.value);
    loadAll();
  });
  // A week as soon as a whole date is typed (the focus stays in the field).
  dayInput.addEventListener("input", () => {
    const day = parseDate(dayInput.value);
    if (day && day !== state.day) {
      state.day = day;
      loadWeek();
    }
  });

  function lineStaff() {
    // Who can be put on this line's shifts: active counsellors with its qualification.
    // Interpreters go on any line's shifts (they interpret there, answering nothing).
    return state.staff.filter((s) => s.role === "counsellor" && s.is_active && (s.qualification === state.line?.required_qualification || s.qualification === "interpreter"));
  }

  function staffName(id) {
    const person = state.staff.find((s) => s.id === id);
    return person ? `${person.alias} (${person.username})` : id;
  }

  async function start() {
    const [lines, staff] = await Promise.all([ctx.api("GET", "/api/roster/lines"), ctx.api("GET", "/api/staff")]);
    if (!alive) return;
    if (!lines.ok) {
      status.replaceChildren(h("p", { class: "notice warn", text: problemText(lines) }));
      return;
    }
    state.lines = lines.data;
    state.staff = staff.ok ? staff.data : [];
    lineSelect.replaceChildren(...state.lines.map((l) => h("option", { value: l.key, text: l.name })));
    state.line = state.lines[0] ?? null;
    if (!state.line) {
      status.replaceChildren(h("p", { class: "notice", text: t("roster.no_lines") }));
      return;
    }
    // This week is the line's: its times are its own zone's, whatever the browser's (unless
    // a day was chosen while the lines were on their way).
    if (state.day === opened) {
      state.day = todayIn(state.line.time_zone);
      setDate(dayInput, state.day);
    }
    await loadAll();
  }

  async function loadAll() {
    state.demand = null;
    if (ctx.can("read_statistics")) {
      // The last eight weeks' demand per hour of the week, to put next to the cover planned.
      ctx.api("GET", `/api/stats/lines/${encodeURIComponent(state.line.key)}/demand`).then((result) => {
        if (!alive || !result.ok || result.data.line !== state.line?.key) return;
        state.demand = result.data;
        if (state.week) renderCoverage();
      });
    }
    await Promise.all([loadWeek(), loadDrops(), loadPatterns(), renderExtraForm(), loadClosures(), loadDuty()]);
  }

  // Only the latest answer of each kind counts: a slow one for the line shown before (a
  // coordinator switching lines) must not be drawn under the new line's name.
  const requests = {};
  const latest = (kind) => {
    const mine = (requests[kind] = (requests[kind] ?? 0) + 1);
    return () => alive && requests[kind] === mine;
  };

  let weekRequest = 0;
  async function loadWeek(focus = false) {
    if (!state.line) return;
    // Only the latest request counts: a slow answer for the week before must not win.
    weekRequest += 1;
    const mine = weekRequest;
    const result = await ctx.api("GET", `/api/roster/lines/${encodeURIComponent(state.line.key)}/week?date=${state.day}`);
    if (!alive || mine !== weekRequest) return;
    if (!result.ok) {
      status.replaceChildren(h("p", { class: "notice warn", role: "alert", text: problemText(result) }));
      return;
    }
    status.replaceChildren();
    state.week = result.data;
    // The extra shift form suggests the day being looked at, unless someone typed a date.
    const extraDate = document.getElementById("extra-date");
    if (extraDate && !extraDate.dataset.touched) setDate(extraDate, state.day);
    renderWeek();
    renderCoverage();
    if (focus) weekTitle.focus();
  }

  function renderWeek() {
    const week = state.week;
    weekTitle.textContent = t("roster.week_title", {
      line: state.line.name,
      from: formatDay(week.week_start, { day: "numeric", month: "long" }),
      to: formatDay(week.week_end, { day: "numeric", month: "long", year: "numeric" }),
    });
    // The roster's times are the line's clock: said so when this browser's clock differs.
    const zone = zoneLabel(week.time_zone, `${week.week_start}T12:00:00Z`);
    zoneNote.hidden = !zone;
    zoneNote.textContent = zone ? t("roster.zone_note", { zone, name: week.time_zone }) : "";
    const tot = week.totals;
    totals.replaceChildren(
      h("span", { text: t("roster.totals", { shifts: t("roster.totals_shifts", { count: tot.occurrences }), places: t("roster.totals_places", { count: tot.needed, assigned: tot.assigned }) }) }),
      " ",
      tot.gaps ? h("span", { class: "tag gap", text: t("roster.gaps", { shifts: t("roster.gap_shifts", { count: tot.gaps }), people: t("roster.missing_people", { count: tot.missing }) }) }) : h("span", { class: "tag full", text: t("roster.no_gaps") }),
    );
    const days = [];
    for (let i = 0; i < 7; i += 1) {
      const day = addDays(week.week_start, i);
      const items = week.occurrences.filter((o) => o.date === day);
      const closure = week.closures.find((c) => c.first_day <= day && day <= c.last_day);
      days.push(
        h("section", { class: "day", "aria-labelledby": `day-${day}` },
          h("h3", { id: `day-${day}`, text: formatDay(day, { weekday: "long", day: "numeric", month: "short" }) }),
          closure ? h("p", { class: "tag off", text: t("roster.closed", { reason: closure.reason || t("roster.closure") }) }) : null,
          items.length ? h("ul", { class: "occurrences" }, items.map(occurrenceCard)) : h("p", { class: "muted", text: t("roster.no_shifts") })),
      );
    }
    grid.replaceChildren(...days);
  }

  function occurrenceCard(occ) {
    const label = occ.name || (occ.kind === "extra" ? t("roster.extra_shift") : t("roster.shift"));
    const statusText = {
      gap: t("roster.status.gap", { missing: occ.missing }),
      covered: t("roster.status.covered"),
      over: t("roster.status.over"),
      cancelled: t("roster.status.cancelled"),
    }[occ.status];
    const titleId = `occ-${occ.key.replace(/[^a-zA-Z0-9_-]/g, "_")}`;
    const card = h("li", { class: `occurrence ${occ.status}`, dataset: { key: occ.key, status: occ.status }, "aria-labelledby": titleId },
      h("p", { class: "occ-title", id: titleId },
        h("strong", { text: `${occ.start}–${occ.end}` }), " ", h("span", { text: label })),
      h("p", { class: "occ-count" },
        h("span", { class: `tag ${occ.status === "gap" ? "gap" : occ.status === "cancelled" ? "off" : "full"}`, text: statusText }),
        " ",
        h("span", { text: t("roster.assigned_of", { assigned: occ.assigned, needed: occ.needed }) })),
    );
    if (occ.staff.length) {
      card.append(h("ul", { class: "occ-staff" }, occ.staff.map((person) => staffRow(occ, person))));
    }
    if (occ.status !== "cancelled" && new Date(occ.ends_at) > new Date()) card.append(assignForm(occ));
    if (occ.kind === "extra") {
      if (new Date(occ.ends_at) > new Date()) card.append(extraEditor(occ));
      card.append(h("button", { type: "button", class: "small danger", text: t("roster.delete_extra"), onclick: () => deleteExtra(occ) }));
    }
    return card;
  }

  // Change an extra shift still to come; its counsellors stay on it (the server refuses a
  // move that would book one of them twice, and says whom).
  function extraEditor(occ) {
    const shift = shiftFields(`extra-${occ.extra_shift_id}`);
    const date = dateInput({ name: "date", required: true, value: occ.date });
    shift.name.value = occ.name || "";
    shift.start.value = occ.start;
    shift.end.value = occ.end;
    // An end at or before the start can only be the next morning (a shift is under 24 h).
    shift.next.checked = occ.end <= occ.start;
    shift.needed.value = occ.needed;
    const form = extraForm({}, date, shift, h("button", { type: "submit", class: "small primary", text: t("common.save") }));
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      const body = { ...shiftBody(shift), date: dateValue(date) };
      const result = await ctx.api("PATCH", `/api/roster/extra-shifts/${occ.extra_shift_id}`, body);
      if (!result.ok) return showErrors(form, result);
      ctx.announce(t("roster.extra_changed"));
      state.day = body.date;
      setDate(dayInput, state.day);
      await loadWeek();
    });
    return h("details", { class: "extra-edit" },
      h("summary", { text: t("roster.change_extra") }),
      form);
  }

  function staffRow(occ, person) {
    const row = h("li", {},
      h("span", { text: person.alias }),
      person.every_week ? h("span", { class: "tag", text: t("roster.every_week") }) : null,
      person.drop_requested ? h("span", { class: "tag gap", text: t("roster.drop_requested") }) : null,
      !person.active ? h("span", { class: "tag off", text: t("staff.inactive") }) : null);
    const remove = h("button", {
      type: "button",
      class: "small",
      text: t("roster.unassign"),
      "aria-label": t("roster.unassign_who", { who: person.alias, when: `${formatDay(occ.date)} ${occ.start}` }),
      onclick: async () => {
        let path = `/api/roster/assignments/${person.assignment_id}`;
        if (person.every_week) {
          const onlyThis = await confirmAction(t("roster.unassign_every_week", { who: person.alias }), { confirm: t("roster.only_this_date") });
          if (!onlyThis) return;
          path += `?date=${occ.date}`;
        }
        const result = await ctx.api("DELETE", path);
        if (!result.ok) {
          status.replaceChildren(h("p", { class: "notice warn", role: "alert", text: problemText(result) }));
          return;
        }
        ctx.announce(t("roster.unassigned", { who: person.alias }));
        await loadWeek();
      },
    });
    row.append(" ", remove);
    return row;
  }

  function assignForm(occ) {
    const taken = new Set(occ.staff.map((s) => s.staff_id));
    const options = lineStaff().filter((s) => !taken.has(s.id));
    const select = h("select", { name: "staff_id", "aria-label": t("roster.assign_who", { when: `${formatDay(occ.date)} ${occ.start}–${occ.end}` }), "data-error-words": "staff,counsellor,assigned,shift,booked,qualified" },
      h("option", { value: "", text: t("roster.choose_short") }),
      options.map((s) => h("option", { value: s.id, text: s.alias })));
    const everyWeek = occ.kind === "pattern" ? h("input", { type: "checkbox", name: "every_week" }) : null;
    const form = h("form", { class: "assign-form", novalidate: true },
      h("div", { class: "form-error" }),
      h("div", { class: "field" }, select),
      everyWeek ? h("label", { class: "check" }, everyWeek, t("roster.every_week_check")) : null,
      h("button", { type: "submit", class: "small primary", text: t("roster.assign") }));
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      clearErrors(form);
      if (!select.value) {
        showErrors(form, { status: 422, data: { detail: [{ loc: ["staff_id"], msg: t("roster.choose_first") }] } });
        return;
      }
      const body = { staff_id: select.value };
      if (occ.kind === "extra") body.extra_shift_id = occ.extra_shift_id;
      else {
        body.pattern_id = occ.pattern_id;
        if (everyWeek?.checked) body.starts_on = occ.date;
        else body.date = occ.date;
      }
      const result = await ctx.api("POST", "/api/roster/assignments", body);
      if (!result.ok) {
        showErrors(form, result);
        return;
      }
      ctx.announce(t("roster.assigned_done", { who: select.selectedOptions[0].text }));
      await loadWeek();
      document.querySelector(`[data-key="${CSS.escape(occ.key)}"] select[name=staff_id]`)?.focus();
    });
    return form;
  }

  async function deleteExtra(occ) {
    if (!(await confirmAction(t("roster.delete_extra_confirm"), { danger: true, confirm: t("common.delete") }))) return;
    const result = await ctx.api("DELETE", `/api/roster/extra-shifts/${occ.extra_shift_id}`);
    if (!result.ok) status.replaceChildren(h("p", { class: "notice warn", role: "alert", text: problemText(result) }));
    await loadWeek();
  }

  // Coverage against demand: each hour of the week, planned cover and recent demand.
  function renderCoverage() {
    const week = state.week;
    const demand = new Map((state.demand?.hours ?? []).map((x) => [x.hour_of_week, x.requested_per_week]));
    const cell = 26;
    const left = 44;
    const top = 20;
    const svg = document.createElementNS("http://www.w3.org/2000/svg", "svg");
    const make = (tag, attrs, text) => {
      const element = document.createElementNS("http://www.w3.org/2000/svg", tag);
      for (const [k, v] of Object.entries(attrs)) element.setAttribute(k, String(v));
      if (text !== undefined) element.append(text);
      return element;
    };
    svg.setAttribute("viewBox", `0 0 ${left + 24 * cell + 4} ${top + 7 * cell + 4}`);
    svg.setAttribute("role", "img");
    svg.setAttribute("aria-labelledby", "coverage-title coverage-desc");
    svg.setAttribute("class", "chart-svg coverage-svg");
    for (let hour = 0; hour < 24; hour += 3) svg.append(make("text", { x: left + hour * cell + 2, y: 14, class: "axis" }, String(hour).padStart(2, "0")));
    const problems = [];
    for (const item of week.hours) {
      const day = Math.floor(item.hour_of_week / 24);
      const hour = item.hour_of_week % 24;
      const asked = demand.get(item.hour_of_week) ?? 0;
      let kind = "none";
      if (item.needed > 0) kind = item.assigned >= item.needed ? "covered" : "gap";
      else if (item.assigned > 0) kind = "covered";
      else if (asked > 0) kind = "unplanned";
      const label = `${t(`weekday.${WEEKDAYS[day]}`)} ${String(hour).padStart(2, "0")}:00`;
      const words = t(`roster.coverage.${kind}`, { assigned: item.assigned, needed: item.needed });
      const rect = make("rect", { x: left + hour * cell + 1, y: top + day * cell + 1, width: cell - 2, height: cell - 2, rx: 3, class: `cover ${kind}` });
      rect.append(make("title", {}, `${label}: ${words}${asked ? ` · ${t("roster.coverage.demand", { n: asked.toFixed(1) })}` : ""}`));
      svg.append(rect);
      if (kind === "gap" || kind === "unplanned") problems.push(`${label} (${words})`);
    }
    WEEKDAYS.forEach((d, i) => svg.append(make("text", { x: 0, y: top + i * cell + cell * 0.65, class: "axis" }, t(`weekday.${d}`))));
    coverage.replaceChildren(
      h("h2", { id: "coverage-title", text: t("roster.coverage.title") }),
      h("p", { class: "hint", id: "coverage-desc", text: state.demand ? t("roster.coverage.desc") : t("roster.coverage.desc_no_demand") }),
      svg,
      h("p", { class: "legend" },
        ["covered", "gap", "unplanned", "none"].map((k) => [h("span", { class: `swatch cover-${k}` }), t(`roster.coverage.legend.${k}`), " "])),
      h("details", { class: "chart-table" },
        h("summary", { text: t("roster.coverage.problems", { n: problems.length }) }),
        problems.length ? h("ul", { class: "coverage-problems" }, problems.map((p) => h("li", { text: p }))) : h("p", { text: t("roster.no_gaps") })),
    );
  }

  // Drop requests ---------------------------------------------------------------------------
  async function loadDrops() {
    const current = latest("drops");
    const result = await ctx.api("GET", `/api/roster/drop-requests?line=${encodeURIComponent(state.line.key)}`);
    if (!current()) return;
    const rows = result.ok ? result.data : [];
    drops.replaceChildren(
      h("h2", { id: "drops-title", text: t("roster.drops") }),
      rows.length
        ? h("div", { class: "table-wrap" }, h("table", {},
            h("thead", {}, h("tr", {}, h("th", { text: t("roster.who") }), h("th", { text: t("roster.date") }), h("th", { text: t("roster.note") }), h("th", { text: t("common.actions") }))),
            h("tbody", {}, rows.map((drop) => h("tr", { dataset: { drop: drop.id } },
              h("td", { text: staffName(drop.staff_id) }),
              h("td", { text: drop.date ? formatDay(drop.date) : t("roster.extra_shift") }),
              h("td", { text: drop.note || "—" }),
              h("td", {},
                h("button", { type: "button", class: "small primary", text: t("roster.approve"), onclick: () => decide(drop, "approve") }), " ",
                h("button", { type: "button", class: "small", text: t("roster.reject"), onclick: () => decide(drop, "reject") })))))))
        : h("p", { class: "muted", text: t("roster.no_drops") }),
    );
  }

  async function decide(drop, how) {
    const result = await ctx.api("POST", `/api/roster/drop-requests/${drop.id}/${how}`);
    if (!result.ok) status.replaceChildren(h("p", { class: "notice warn", role: "alert", text: problemText(result) }));
    else ctx.announce(t(how === "approve" ? "roster.approved" : "roster.rejected"));
    await Promise.all([loadDrops(), loadWeek()]);
  }

  // Weekly patterns -------------------------------------------------------------------------
  async function loadPatterns() {
    const current = latest("patterns");
    const result = await ctx.api("GET", `/api/roster/lines/${encodeURIComponent(state.line.key)}/patterns`);
    if (!current()) return;
    const rows = result.ok ? result.data : [];
    patterns.replaceChildren(
      h("h2", { id: "patterns-title", text: t("roster.patterns") }),
      rows.length
        ? h("div", { class: "table-wrap" }, h("table", {},
            h("thead", {}, h("tr", {}, ...["roster.name", "roster.weekdays", "roster.time"].map((k) => h("th", { scope: "col", text: t(k) })), h("th", { scope: "col", colspan: 2, text: t("roster.valid") }), h("th", { scope: "col", text: t("common.actions") }))),
            h("tbody", {}, rows.map(patternRow))))
        : h("p", { class: "muted", text: t("roster.no_patterns") }),
      patternForm(),
    );
  }

  function patternRow(p) {
    const needed = h("input", { type: "number", name: "needed", min: 1, max: 50, value: p.needed, class: "narrow", "aria-label": t("roster.needed_for", { name: p.name || p.start }) });
    const until = dateInput({ name: "valid_until", value: p.valid_until || "", "aria-label": t("roster.valid_until_for", { name: p.name || p.start }) });
    const form = h("form", { class: "inline-form", novalidate: true }, h("div", { class: "form-error" }), needed, until,
      h("button", { type: "submit", class: "small", text: t("common.save") }));
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      const body = { needed: Number(needed.value), valid_until: dateValue(until) || null };
      const result = await ctx.api("PATCH", `/api/roster/patterns/${p.id}`, body);
      if (!result.ok) return showErrors(form, result);
      clearErrors(form);
      ctx.announce(t("common.saved"));
      await Promise.all([loadPatterns(), loadWeek()]);
    });
    return h("tr", {},
      h("td", { text: p.name || "—" }),
      h("td", { text: p.weekdays.map((d) => t(`weekday.${d}`)).join(", ") }),
      h("td", { text: `${p.start}–${p.end}${p.ends_next_day ? ` (${t("roster.next_day")})` : ""}` }),
      h("td", { colspan: 2 }, form),
      h("td", {}, h("button", { type: "button", class: "small danger", text: t("common.delete"), onclick: async () => {
        if (!(await confirmAction(t("roster.delete_pattern_confirm"), { danger: true, confirm: t("common.delete") }))) return;
        const result = await ctx.api("DELETE", `/api/roster/patterns/${p.id}`);
        if (!result.ok) status.replaceChildren(h("p", { class: "notice warn", role: "alert", text: problemText(result) }));
        await Promise.all([loadPatterns(), loadWeek()]);
      } })));
  }

  function shiftFields(prefix) {
    const start = timeInput({ name: "start", required: true, value: "18:00" });
    const end = timeInput({ name: "end", required: true, value: "21:00" });
    const next = h("input", { type: "checkbox", name: "ends_next_day", id: `${prefix}-next-day` });
    const needed = h("input", { type: "number", name: "needed", min: 1, max: 50, value: 1 });
    const name = h("input", { name: "name", maxlength: 100 });
    return {
      start, end, next, needed, name,
      nodes: [
        h("div", { class: "field-row" },
          field(t("roster.name"), name),
          field(t("roster.start"), start),
          field(t("roster.end"), end),
          field(t("roster.needed"), needed)),
        h("div", { class: "field", dataset: { field: "ends_next_day" } }, h("label", { class: "check", for: next.id }, next, t("roster.ends_next_day"))),
      ],
    };
  }

  function extraForm(attrs, date, shift, button) {
    return h("form", { class: "create-form", novalidate: true, ...attrs },
      h("div", { class: "form-error" }),
      field(t("roster.date"), date),
      ...shift.nodes,
      h("div", { class: "actions" }, button));
  }

  // The fields of shiftFields() as the API takes them.
  function shiftBody(shift) {
    return { name: shift.name.value, start: timeValue(shift.start), end: timeValue(shift.end), ends_next_day: shift.next.checked, needed: Number(shift.needed.value) };
  }

  function patternForm() {
    const shift = shiftFields("pattern");
    const days = WEEKDAYS.map((d) => h("input", { type: "checkbox", name: "weekdays", value: d, id: `pattern-day-${d}` }));
    const from = dateInput({ name: "valid_from" });
    const until = dateInput({ name: "valid_until" });
    const form = h("form", { class: "create-form", novalidate: true },
      h("h3", { text: t("roster.new_pattern") }),
      h("div", { class: "form-error" }),
      h("fieldset", { dataset: { field: "weekdays" } },
        h("legend", { text: t("roster.weekdays") }),
        h("div", { class: "checks" }, days.map((box) => h("label", { class: "check", for: box.id }, box, t(`weekday.${box.value}`))))),
      ...shift.nodes,
      h("div", { class: "field-row" }, field(t("roster.valid_from"), from), field(t("roster.valid_until"), until)),
      h("div", { class: "actions" }, h("button", { type: "submit", class: "primary", text: t("roster.add_pattern") })));
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      const body = { ...shiftBody(shift), weekdays: days.filter((d) => d.checked).map((d) => d.value) };
      if (from.value.trim()) body.valid_from = dateValue(from);
      if (until.value.trim()) body.valid_until = dateValue(until);
      const result = await ctx.api("POST", `/api/roster/lines/${encodeURIComponent(state.line.key)}/patterns`, body);
      if (!result.ok) return showErrors(form, result);
      ctx.announce(t("roster.pattern_added"));
      await Promise.all([loadPatterns(), loadWeek()]);
    });
    return form;
  }

  // Extra shifts ----------------------------------------------------------------------------
  function renderExtraForm() {
    const shift = shiftFields("extra");
    const date = dateInput({ name: "date", required: true, value: state.day, id: "extra-date" });
    // Once the person is in the field it is theirs: a week loading meanwhile does not overwrite it.
    for (const kind of ["focus", "input"]) {
      date.addEventListener(kind, () => {
        date.dataset.touched = "true";
      });
    }
    const form = extraForm({ id: "extra-form" }, date, shift, h("button", { type: "submit", class: "primary", text: t("roster.add_extra") }));
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      const body = { ...shiftBody(shift), date: dateValue(date) };
      const result = await ctx.api("POST", `/api/roster/lines/${encodeURIComponent(state.line.key)}/extra-shifts`, body);
      if (!result.ok) return showErrors(form, result);
      clearErrors(form);
      ctx.announce(t("roster.extra_added"));
      state.day = body.date;
      setDate(dayInput, state.day);
      await loadWeek();
    });
    extras.replaceChildren(h("h2", { id: "extra-title", text: t("roster.extra_shifts") }), h("p", { class: "muted", text: t("roster.extra_help") }), form);
  }

  // Closures --------------------------------------------------------------------------------
  async function loadClosures() {
    const current = latest("closures");
    const result = await ctx.api("GET", `/api/roster/lines/${encodeURIComponent(state.line.key)}/closures`);
    if (!current()) return;
    const rows = result.ok ? result.data : [];
    const first = dateInput({ name: "first_day", required: true });
    const last = dateInput({ name: "last_day", required: true });
    const reason = h("input", { name: "reason", maxlength: 200 });
    const form = h("form", { class: "create-form", novalidate: true },
      h("div", { class: "form-error" }),
      h("div", { class: "field-row" }, field(t("roster.first_day"), first), field(t("roster.last_day"), last), field(t("roster.reason"), reason)),
      h("div", { class: "actions" }, h("button", { type: "submit", class: "primary", text: t("roster.add_closure") })));
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      const result = await ctx.api("POST", `/api/roster/lines/${encodeURIComponent(state.line.key)}/closures`, { first_day: dateValue(first) || null, last_day: dateValue(last) || null, reason: reason.value });
      if (!result.ok) return showErrors(form, result);
      ctx.announce(t("roster.closure_added"));
      await Promise.all([loadClosures(), loadWeek()]);
    });
    closures.replaceChildren(
      h("h2", { id: "closures-title", text: t("roster.closures") }),
      rows.length
        ? h("ul", { class: "plain-list" }, rows.map((c) => h("li", {},
            h("span", { text: `${formatDay(c.first_day)} – ${formatDay(c.last_day)}${c.reason ? `: ${c.reason}` : ""}` }), " ",
            h("button", { type: "button", class: "small danger", text: t("common.delete"), "aria-label": t("roster.delete_closure", { from: c.first_day }), onclick: async () => {
              const result = await ctx.api("DELETE", `/api/roster/closures/${c.id}`);
              if (!result.ok) status.replaceChildren(h("p", { class: "notice warn", role: "alert", text: problemText(result) }));
              await Promise.all([loadClosures(), loadWeek()]);
            } }))))
        : h("p", { class: "muted", text: t("roster.no_closures") }),
      form,
    );
  }

  // Ad hoc duty -----------------------------------------------------------------------------
  // When it ends on the line's clock, like the roster above it.
  function untilIn(iso) {
    const zone = state.line?.time_zone;
    let text;
    try {
      text = formatDateTime(iso, { dateStyle: "medium", timeStyle: "short", timeZone: zone });
    } catch {
      text = formatDateTime(iso);
    }
    const label = zoneLabel(zone, iso);
    return label ? `${text} ${label}` : text;
  }

  async function loadDuty() {
    const current = latest("duty");
    const result = await ctx.api("GET", `/api/roster/lines/${encodeURIComponent(state.line.key)}/duty`);
    if (!current()) return;
    const rows = result.ok ? result.data : [];
    const who = h("select", { name: "staff_id" }, h("option", { value: "", text: t("roster.choose_counsellor") }), lineStaff().map((s) => h("option", { value: s.id, text: s.alias })));
    const hours = h("input", { type: "number", name: "until", min: 1, max: 168, value: 2, "data-error-words": "until,duty" });
    const form = h("form", { class: "create-form", novalidate: true },
      h("div", { class: "form-error" }),
      h("div", { class: "field-row" }, field(t("roster.who"), who), field(t("roster.duty_hours"), hours)),
      h("div", { class: "actions" }, h("button", { type: "submit", class: "primary", text: t("roster.add_duty") })));
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      if (!who.value) return showErrors(form, { status: 422, data: { detail: [{ loc: ["staff_id"], msg: t("roster.choose_first") }] } });
      const until = new Date(Date.now() + Number(hours.value) * 3600 * 1000).toISOString();
      const result = await ctx.api("POST", `/api/roster/lines/${encodeURIComponent(state.line.key)}/duty`, { staff_id: who.value, until });
      if (!result.ok) return showErrors(form, result);
      ctx.announce(t("roster.duty_added"));
      await Promise.all([loadDuty(), loadWeek()]);
    });
    duty.replaceChildren(
      h("h2", { id: "duty-title", text: t("roster.duty") }),
      h("p", { class: "muted", text: t("roster.duty_help") }),
      rows.length
        ? h("ul", { class: "plain-list" }, rows.map((d) => h("li", {},
            h("span", { text: t("roster.duty_row", { who: staffName(d.staff_id), until: untilIn(d.ends_at) }) }), " ",
            h("button", { type: "button", class: "small danger", text: t("roster.end_duty"), onclick: async () => {
              await ctx.api("DELETE", `/api/roster/duty/${d.id}`);
              await loadDuty();
            } }))))
        : h("p", { class: "muted", text: t("roster.no_duty") }),
      form,
    );
  }

  start();
  return () => {
    alive = false;
  };
}
