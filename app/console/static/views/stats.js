// Statistics: demand by hour of the week, waits (median and 90th percentile), answered and
// abandoned, drawn as inline SVG from GET /api/stats/lines/{key}/demand, each chart with a
// table alternative; the mailbox's threads per week and median time to a first answer
// (GET /api/stats/lines/{key}/mailbox); and the CSV export. All of it anonymous aggregates.
import { h, field, showErrors, clearErrors, problemText, dateInput, dateValue } from "../core.js";

const SVG = "http://www.w3.org/2000/svg";
const DAYS = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

function s(tag, attrs, ...children) {
  const element = document.createElementNS(SVG, tag);
  for (const [name, value] of Object.entries(attrs ?? {})) {
    if (value !== null && value !== undefined) element.setAttribute(name, String(value));
  }
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined) continue;
    element.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return element;
}

export function mount(root, ctx) {
  const t = ctx.t;
  let alive = true;
  const lineSelect = h("select", { id: "stats-line", name: "line" });
  const from = dateInput({ name: "from", id: "stats-from" });
  const to = dateInput({ name: "to", id: "stats-to" });
  const exportLink = h("a", { class: "button", id: "stats-export", href: "/api/stats/export.csv", download: "lykta-statistics.csv", text: t("stats.export") });
  const bySelect = h("select", { id: "stats-by", name: "by" },
    h("option", { value: "week", text: t("stats.by_week") }),
    h("option", { value: "month", text: t("stats.by_month") }));
  const wrapupExport = h("a", { class: "button", id: "stats-wrapups-export", href: "/api/stats/wrapups.csv", download: "lykta-wrapups.csv", text: t("stats.export_wrapups") });
  const form = h("form", { class: "toolbar", novalidate: true },
    h("div", { class: "form-error" }),
    field(t("common.line"), lineSelect),
    field(t("stats.from"), from),
    field(t("stats.to"), to),
    field(t("stats.by"), bySelect),
    h("div", { class: "actions" }, h("button", { type: "submit", class: "primary", text: t("stats.show") }), exportLink, wrapupExport));
  const output = h("div", { id: "stats-output", "aria-live": "polite" });
  root.append(
    h("h1", { id: "view-stats-title", text: t("nav.stats") }),
    h("p", { class: "muted", text: t("stats.intro") }),
    form,
    output,
  );
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    load();
  });
  lineSelect.addEventListener("change", load);
  bySelect.addEventListener("change", load);

  // The period as `from`/`to` (demand, CSV) or `first`/`last` (the mailbox's weeks).
  function query(withLine) {
    const params = new URLSearchParams();
    if (dateValue(from)) params.set("from", dateValue(from));
    if (dateValue(to)) params.set("to", dateValue(to));
    if (withLine) params.set("line", lineSelect.value);
    const text = params.toString();
    return text ? `?${text}` : "";
  }

  async function start() {
    const result = await ctx.api("GET", "/api/roster/lines");
    if (!alive) return;
    if (!result.ok) {
      output.replaceChildren(h("p", { class: "notice warn", role: "alert", text: problemText(result) }));
      return;
    }
    // A practice line's chats count nowhere: it is not offered here.
    lineSelect.replaceChildren(...result.data.filter((l) => !l.practice).map((l) => h("option", { value: l.key, text: l.name })));
    await load();
  }

  let latest = 0;
  async function load() {
    if (!lineSelect.value) return;
    latest += 1;
    const mine = latest;
    clearErrors(form);
    exportLink.href = `/api/stats/export.csv${query(true)}`;
    const by = `${query(false) ? "&" : "?"}by=${bySelect.value}`;
    wrapupExport.href = `/api/stats/wrapups.csv${query(true)}&by=${bySelect.value}`;
    const key = encodeURIComponent(lineSelect.value);
    const [result, wrapups, mailbox] = await Promise.all([
      ctx.api("GET", `/api/stats/lines/${key}/demand${query(false)}`),
      ctx.api("GET", `/api/stats/lines/${key}/wrapups${query(false)}${by}`),
      ctx.api("GET", `/api/stats/lines/${key}/mailbox${query(false)}`),
    ]);
    if (!alive || mine !== latest) return;
    if (!result.ok || !wrapups.ok) {
      showErrors(form, result.ok ? wrapups : result);
      return;
    }
    render(result.data);
    output.append(...wrapupSections(wrapups.data));
    output.append(mailbox.ok ? mailboxChart(mailbox.data) : h("p", { class: "notice warn", role: "alert", text: problemText(mailbox) }));
  }

  // --- Wrap-ups read: topics, outcomes, risk and "in danger" per week or month ---------------

  // A count as shown: null is kept back (too few to show without pointing at someone, or
  // kept back beside such a count so that subtraction cannot give it away).
  function count(value) {
    return value === null || value === undefined ? t("stats.kept_back") : String(value);
  }

  function periodLabel(data, period) {
    return data.period === "month" ? period.start.slice(0, 7) : t("stats.week_of", { date: period.start });
  }

  // Bars per week or month, stacked (parts of one whole: outcomes) or side by side (counts
  // that overlap: topics, risk and "in danger"); a count kept back is left out of the chart
  // (the table says "not shown").
  function periodChart(id, title, description, data, series, grouped = false) {
    const width = 760;
    const height = 260;
    const left = 40;
    const bottom = 30;
    const plot = height - bottom - 10;
    const periods = data.periods;
    const band = (width - left) / Math.max(1, periods.length);
    const totals = periods.map((p) => (grouped ? Math.max(0, ...series.map((item) => item.value(p) ?? 0)) : series.reduce((sum, item) => sum + (item.value(p) ?? 0), 0)));
    const max = Math.max(1, ...totals);
    const svg = svgRoot(id, width, height, title);
    for (const fraction of [0, 0.5, 1]) {
      const y = 10 + plot - fraction * plot;
      const value = max * fraction;
      svg.append(s("line", { x1: left, x2: width, y1: y, y2: y, class: "grid" }), s("text", { x: 0, y: y + 4, class: "axis" }, Number.isInteger(value) ? String(value) : value.toFixed(1)));
    }
    const every = Math.max(1, Math.ceil(periods.length / 10));
    periods.forEach((period, index) => {
      let y = 10 + plot;
      const x = left + index * band + band * 0.15;
      const slot = (band * 0.7) / series.length;
      series.forEach((item, position) => {
        const value = item.value(period) ?? 0;
        const heightPx = (value / max) * plot;
        if (heightPx > 0) {
          y = grouped ? 10 + plot - heightPx : y - heightPx;
          const barX = grouped ? x + position * slot : x;
          svg.append(s("rect", { x: barX, y, width: grouped ? slot : band * 0.7, height: heightPx, class: `bar series-${position % 8}` },
            s("title", {}, `${periodLabel(data, period)}: ${item.label} ${value}`)));
        }
      });
      if (index % every === 0) svg.append(s("text", { x: x + band * 0.35, y: height - 8, class: "axis", "text-anchor": "middle" }, data.period === "month" ? period.start.slice(0, 7) : period.start.slice(5)));
    });
    const table = h("table", {},
      h("caption", { text: title }),
      h("thead", {}, h("tr", {}, h("th", { scope: "col", text: data.period === "month" ? t("stats.month") : t("stats.week") }), ...series.map((item) => h("th", { scope: "col", text: item.label })))),
      h("tbody", {}, periods.map((period) => h("tr", {}, h("th", { scope: "row", text: periodLabel(data, period) }), ...series.map((item) => h("td", { text: count(item.value(period)) }))))));
    const legend = h("p", { class: "legend" }, series.map((item, position) => [h("span", { class: `swatch series-${position % 8}` }), item.label, " "]));
    const section = chartSection(id, title, description, svg, table);
    section.insertBefore(legend, section.querySelector("details"));
    return section;
  }

  function wrapupSections(data) {
    const topics = data.topics.map((name) => ({ label: name, value: (p) => p.topics[name] }));
    const outcomes = data.outcomes.map((name) => ({ label: name, value: (p) => p.outcomes[name] }));
    const risk = [
      ...["concern", "acute"].map((level) => ({ label: t(`stats.risk.${level}`), value: (p) => p.risk[level] })),
      { label: t("stats.in_danger"), value: (p) => p.in_danger },
    ];
    return [
      h("h2", { id: "stats-wrapups-title", class: "section-title", text: t("stats.wrapups_title") }),
      h("p", { class: "muted", id: "stats-wrapups-intro", text: t("stats.wrapups_intro", { n: data.small_count }) }),
      periodChart("chart-topics", t("stats.topics_title"), t("stats.topics_desc"), data, topics, true),
      periodChart("chart-wrapup-outcomes", t("stats.wrapup_outcomes_title"), t("stats.wrapup_outcomes_desc"), data, outcomes),
      periodChart("chart-risk", t("stats.risk_title"), t("stats.risk_desc"), data, risk, true),
    ];
  }

  function seconds(value) {
    if (value === null || value === undefined) return "—";
    if (value < 90) return t("stats.seconds", { n: Math.round(value) });
    return t("stats.minutes", { n: (value / 60).toFixed(1) });
  }

  function render(data) {
    const totals = data.totals;
    output.replaceChildren(
      h("p", { class: "muted", id: "stats-period", text: t("stats.period", { from: data.first_day, to: data.last_day, zone: data.time_zone }) }),
      h("dl", { class: "stat-cards", id: "stats-totals" },
        ...[
          ["stats.requested", totals.requested],
          ["stats.answered", totals.answered],
          ["stats.abandoned", totals.abandoned],
          ["stats.turned_away", totals.turned_away],
          ["stats.median_wait", seconds(totals.median_wait_seconds)],
          ["stats.p90_wait", seconds(totals.p90_wait_seconds)],
        ].map(([key, value]) => h("div", { class: "stat-card" }, h("dt", { text: t(key) }), h("dd", { text: String(value) })))),
      demandChart(data),
      outcomesChart(data),
      waitsChart(data),
    );
  }

  function chartSection(id, title, description, svg, table) {
    return h("section", { class: "card chart", id, "aria-labelledby": `${id}-title` },
      h("h2", { id: `${id}-title`, text: title }),
      h("p", { class: "hint", id: `${id}-desc`, text: description }),
      svg,
      h("details", { class: "chart-table" }, h("summary", { text: t("stats.as_table") }), h("div", { class: "table-wrap" }, table)));
  }

  function svgRoot(id, width, height, title) {
    return s("svg", { viewBox: `0 0 ${width} ${height}`, role: "img", "aria-labelledby": `${id}-svgtitle ${id}-desc`, class: "chart-svg", preserveAspectRatio: "xMinYMin meet" },
      s("title", { id: `${id}-svgtitle` }, title));
  }

  // A 7 × 24 grid: darker cells are hours with more chats requested per week.
  function demandChart(data) {
    const id = "chart-demand";
    const max = Math.max(0, ...data.hours.map((x) => x.requested_per_week));
    const cell = 30;
    const left = 90;
    const top = 24;
    const svg = svgRoot(id, left + 24 * cell + 10, top + 7 * cell + 10, t("stats.demand_title"));
    for (let hour = 0; hour < 24; hour += 3) {
      svg.append(s("text", { x: left + hour * cell + 2, y: 16, class: "axis" }, `${String(hour).padStart(2, "0")}`));
    }
    for (const item of data.hours) {
      const day = Math.floor(item.hour_of_week / 24);
      const hour = item.hour_of_week % 24;
      const share = max > 0 ? item.requested_per_week / max : 0;
      const rect = s("rect", { x: left + hour * cell + 1, y: top + day * cell + 1, width: cell - 2, height: cell - 2, rx: 3, class: "heat", "data-level": Math.ceil(share * 5) },
        s("title", {}, `${t(`weekday.${DAYS[day]}`)} ${String(hour).padStart(2, "0")}:00 — ${t("stats.per_week", { n: item.requested_per_week.toFixed(1) })}`));
      svg.append(rect);
    }
    DAYS.forEach((day, index) => svg.append(s("text", { x: 0, y: top + index * cell + cell * 0.65, class: "axis" }, t(`weekday.${day}`))));
    const busiest = [...data.hours].filter((x) => x.requested > 0).sort((a, b) => b.requested_per_week - a.requested_per_week);
    const table = h("table", {},
      h("caption", { text: t("stats.demand_title") }),
      h("thead", {}, h("tr", {}, h("th", { scope: "col", text: t("stats.hour") }), ...["stats.requested", "stats.per_week_col", "stats.answered", "stats.abandoned", "stats.turned_away"].map((k) => h("th", { scope: "col", text: t(k) })))),
      h("tbody", {}, (busiest.length ? busiest : []).map((x) => h("tr", {},
        h("th", { scope: "row", text: `${t(`weekday.${x.weekday}`)} ${String(x.hour).padStart(2, "0")}:00` }),
        h("td", { text: String(x.requested) }),
        h("td", { text: x.requested_per_week.toFixed(2) }),
        h("td", { text: String(x.answered) }),
        h("td", { text: String(x.abandoned) }),
        h("td", { text: String(x.turned_away) })))));
    if (!busiest.length) table.append(h("tbody", {}, h("tr", {}, h("td", { colspan: 6, text: t("stats.no_chats") }))));
    const legend = h("p", { class: "legend" }, h("span", { class: "swatch level-1" }), t("stats.fewer"), " ", h("span", { class: "swatch level-5" }), t("stats.more"), " ", t("stats.max", { n: max.toFixed(1) }));
    const section = chartSection(id, t("stats.demand_title"), t("stats.demand_desc"), svg, table);
    section.insertBefore(legend, section.querySelector("details"));
    return section;
  }

  // Per weekday: answered, abandoned and turned away, stacked.
  function outcomesChart(data) {
    const id = "chart-outcomes";
    const kinds = ["answered", "abandoned", "turned_away"];
    const days = DAYS.map((day, index) => {
      const hours = data.hours.filter((x) => Math.floor(x.hour_of_week / 24) === index);
      const sum = (k) => hours.reduce((total, x) => total + x[k], 0);
      return { day, answered: sum("answered"), abandoned: sum("abandoned"), turned_away: sum("turned_away"), requested: sum("requested") };
    });
    const max = Math.max(1, ...days.map((d) => d.answered + d.abandoned + d.turned_away));
    const width = 760;
    const height = 260;
    const left = 40;
    const bottom = 30;
    const plot = height - bottom - 10;
    const band = (width - left) / 7;
    const svg = svgRoot(id, width, height, t("stats.outcomes_title"));
    for (const fraction of [0, 0.5, 1]) {
      const y = 10 + plot - fraction * plot;
      const value = max * fraction;
      svg.append(s("line", { x1: left, x2: width, y1: y, y2: y, class: "grid" }), s("text", { x: 0, y: y + 4, class: "axis" }, Number.isInteger(value) ? String(value) : value.toFixed(1)));
    }
    days.forEach((d, index) => {
      let y = 10 + plot;
      const x = left + index * band + band * 0.2;
      for (const kind of kinds) {
        const heightPx = (d[kind] / max) * plot;
        if (heightPx > 0) {
          y -= heightPx;
          svg.append(s("rect", { x, y, width: band * 0.6, height: heightPx, class: `bar ${kind}` },
            s("title", {}, `${t(`weekday.${d.day}`)}: ${t(`stats.${kind}`)} ${d[kind]}`)));
        }
      }
      svg.append(s("text", { x: x + band * 0.3, y: height - 8, class: "axis", "text-anchor": "middle" }, t(`weekday.${d.day}`)));
    });
    const table = h("table", {},
      h("caption", { text: t("stats.outcomes_title") }),
      h("thead", {}, h("tr", {}, h("th", { scope: "col", text: t("stats.day") }), ...["stats.requested", ...kinds.map((k) => `stats.${k}`)].map((k) => h("th", { scope: "col", text: t(k) })))),
      h("tbody", {}, days.map((d) => h("tr", {}, h("th", { scope: "row", text: t(`weekday.${d.day}`) }), h("td", { text: String(d.requested) }), kinds.map((k) => h("td", { text: String(d[k]) }))))));
    const legend = h("p", { class: "legend" }, kinds.map((k) => [h("span", { class: `swatch ${k}` }), t(`stats.${k}`), " "]));
    const section = chartSection(id, t("stats.outcomes_title"), t("stats.outcomes_desc"), svg, table);
    section.insertBefore(legend, section.querySelector("details"));
    return section;
  }

  // Median and 90th-percentile wait of answered chats for each hour of the week that had any.
  function waitsChart(data) {
    const id = "chart-waits";
    const points = data.hours.filter((x) => x.median_wait_seconds !== null);
    const max = Math.max(10, ...points.map((x) => x.p90_wait_seconds ?? 0));
    const width = 760;
    const height = 240;
    const left = 50;
    const plot = height - 40;
    const step = (width - left) / 168;
    const svg = svgRoot(id, width, height, t("stats.waits_title"));
    for (const fraction of [0, 0.5, 1]) {
      const y = 10 + plot - fraction * plot;
      svg.append(s("line", { x1: left, x2: width, y1: y, y2: y, class: "grid" }), s("text", { x: 0, y: y + 4, class: "axis" }, seconds(max * fraction)));
    }
    DAYS.forEach((day, index) => {
      const x = left + index * 24 * step;
      svg.append(s("line", { x1: x, x2: x, y1: 10, y2: 10 + plot, class: "grid" }), s("text", { x: x + 4, y: height - 10, class: "axis" }, t(`weekday.${day}`)));
    });
    for (const x of points) {
      const cx = left + (x.hour_of_week + 0.5) * step;
      const yMedian = 10 + plot - (x.median_wait_seconds / max) * plot;
      const yP90 = 10 + plot - ((x.p90_wait_seconds ?? x.median_wait_seconds) / max) * plot;
      const label = `${t(`weekday.${x.weekday}`)} ${String(x.hour).padStart(2, "0")}:00`;
      svg.append(
        s("line", { x1: cx, x2: cx, y1: yP90, y2: yMedian, class: "range" }),
        s("circle", { cx, cy: yP90, r: 4, class: "p90" }, s("title", {}, `${label}: ${t("stats.p90_wait")} ${seconds(x.p90_wait_seconds)}`)),
        s("circle", { cx, cy: yMedian, r: 4, class: "median" }, s("title", {}, `${label}: ${t("stats.median_wait")} ${seconds(x.median_wait_seconds)}`)),
      );
    }
    const table = h("table", {},
      h("caption", { text: t("stats.waits_title") }),
      h("thead", {}, h("tr", {}, h("th", { scope: "col", text: t("stats.hour") }), h("th", { scope: "col", text: t("stats.answered") }), h("th", { scope: "col", text: t("stats.median_wait") }), h("th", { scope: "col", text: t("stats.p90_wait") }))),
      h("tbody", {}, points.length
        ? points.map((x) => h("tr", {}, h("th", { scope: "row", text: `${t(`weekday.${x.weekday}`)} ${String(x.hour).padStart(2, "0")}:00` }), h("td", { text: String(x.answered) }), h("td", { text: seconds(x.median_wait_seconds) }), h("td", { text: seconds(x.p90_wait_seconds) })))
        : h("tr", {}, h("td", { colspan: 4, text: t("stats.no_chats") }))));
    const legend = h("p", { class: "legend" }, h("span", { class: "swatch median" }), t("stats.median_wait"), " ", h("span", { class: "swatch p90" }), t("stats.p90_wait"));
    const section = chartSection(id, t("stats.waits_title"), t("stats.waits_desc"), svg, table);
    section.insertBefore(legend, section.querySelector("details"));
    return section;
  }

  function hours(value) {
    if (value === null || value === undefined) return "—";
    return t("stats.hours", { n: Number.isInteger(value) ? value : value.toFixed(1) });
  }

  // Per week: threads begun (bars) and the median time to a first answer (dots on a line,
  // on their own scale at the right).
  function mailboxChart(data) {
    const id = "chart-mailbox";
    const weeks = data.weeks ?? [];
    const maxThreads = Math.max(1, ...weeks.map((w) => w.threads));
    const maxHours = Math.max(1, ...weeks.map((w) => w.median_first_answer_hours ?? 0));
    const width = 760;
    const height = 240;
    const left = 40;
    const right = 60;
    const plot = height - 40;
    const band = (width - left - right) / Math.max(1, weeks.length);
    const svg = svgRoot(id, width, height, t("stats.mailbox_title"));
    svg.classList.add("mailbox-chart");
    for (const fraction of [0, 0.5, 1]) {
      const y = 10 + plot - fraction * plot;
      const count = maxThreads * fraction;
      svg.append(
        s("line", { x1: left, x2: width - right, y1: y, y2: y, class: "grid" }),
        s("text", { x: 0, y: y + 4, class: "axis" }, Number.isInteger(count) ? String(count) : count.toFixed(1)),
        s("text", { x: width - right + 6, y: y + 4, class: "axis" }, hours(Math.round(maxHours * fraction * 10) / 10)),
      );
    }
    const points = [];
    weeks.forEach((w, index) => {
      const x = left + index * band;
      const barHeight = (w.threads / maxThreads) * plot;
      if (barHeight > 0) {
        svg.append(s("rect", { x: x + band * 0.2, y: 10 + plot - barHeight, width: band * 0.6, height: barHeight, class: "bar threads" },
          s("title", {}, `${w.week}: ${t("stats.mailbox_threads")} ${w.threads}`)));
      }
      if (w.median_first_answer_hours !== null && w.median_first_answer_hours !== undefined) {
        const cx = x + band / 2;
        const cy = 10 + plot - (w.median_first_answer_hours / maxHours) * plot;
        points.push(`${cx},${cy}`);
        svg.append(s("circle", { cx, cy, r: 4, class: "median-answer" }, s("title", {}, `${w.week}: ${t("stats.mailbox_median")} ${hours(w.median_first_answer_hours)}`)));
      }
      svg.append(s("text", { x: x + band / 2, y: height - 10, class: "axis", "text-anchor": "middle" }, w.week.replace(/^\d{4}-/, "")));
    });
    if (points.length > 1) svg.insertBefore(s("polyline", { points: points.join(" "), class: "answer-line" }), svg.querySelector("circle"));
    const table = h("table", { id: "stats-mailbox-table" },
      h("caption", { text: t("stats.mailbox_title") }),
      h("thead", {}, h("tr", {}, ["stats.week", "stats.mailbox_threads", "stats.mailbox_median"].map((key) => h("th", { scope: "col", text: t(key) })))),
      h("tbody", {}, weeks.length
        ? weeks.map((w) => h("tr", {}, h("th", { scope: "row", text: w.week }), h("td", { text: String(w.threads) }), h("td", { text: hours(w.median_first_answer_hours) })))
        : h("tr", {}, h("td", { colspan: 3, text: t("stats.mailbox_none") }))));
    const legend = h("p", { class: "legend" }, h("span", { class: "swatch threads" }), t("stats.mailbox_threads"), " ", h("span", { class: "swatch median-answer" }), t("stats.mailbox_median"));
    const total = weeks.reduce((sum, w) => sum + w.threads, 0);
    const description = `${t("stats.mailbox_desc", { count: total })} ${t("stats.mailbox_small", { n: data.small_count })}`;
    const section = chartSection(id, t("stats.mailbox_title"), description, svg, table);
    section.insertBefore(legend, section.querySelector("details"));
    return section;
  }

  start();
  return () => {
    alive = false;
  };
}
