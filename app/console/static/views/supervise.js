// The supervisor's screen: requests for help, live chats of their lines with waiting and
// duration, observing one silently, whispering to its counsellor, taking it over, and who is
// on duty with their load. Text from chats is put in as text (textContent), never HTML.

import { clockIn, h, nextId, zoneLabel } from "../core.js";
import { staffSocket } from "../socket.js";
import { addStylesheet, clock, duration, languageName } from "../chat-helpers.js";
import { debriefList, watchAlerts } from "../risk.js";

const LIVE_REFRESH_MS = 5000;
const TEAM_REFRESH_MS = 5000;

export function mount(root, ctx) {
  addStylesheet();
  const t = (key, vars) => ctx.t(key, vars);
  const socket = staffSocket(ctx);
  const state = { live: [], liveAt: Date.now(), team: [], requests: new Map(), observed: null, entries: new Map() };
  const off = [];
  const listen = (type, fn) => off.push(socket.on(type, fn));

  const title = h("h1", { id: "view-supervise-title", text: t("sup.title") });
  const notice = h("div", { class: "chats-notice", role: "status" });
  const requestList = h("ul", { class: "help-requests", "aria-labelledby": "sup-help-title" });
  const noRequests = h("p", { class: "muted", text: t("sup.no_requests") });
  const liveBody = h("tbody");
  const noLive = h("p", { class: "muted", text: t("sup.no_live") });
  const liveTable = h(
    "table",
    { class: "live-table" },
    h("caption", { class: "visually-hidden", text: t("sup.live") }),
    h("thead", {}, h("tr", {}, ...["sup.col.chat", "sup.col.state", "sup.col.counsellor", "sup.col.waited", "sup.col.duration", "sup.col.actions"].map((k) => h("th", { scope: "col", text: t(k) })))),
    liveBody,
  );
  const teamBody = h("tbody");
  const noTeam = h("p", { class: "muted", text: t("sup.no_team") });
  const teamTable = h(
    "table",
    { class: "team-table" },
    h("caption", { class: "visually-hidden", text: t("sup.team") }),
    h("thead", {}, h("tr", {}, ...["sup.col.name", "sup.col.status", "sup.col.load", "sup.col.lines", "sup.col.until"].map((k) => h("th", { scope: "col", text: t(k) })))),
    teamBody,
  );
  const observedBox = h("section", { class: "observed", "aria-labelledby": "sup-observed-title", hidden: true });
  root.append(
    title,
    h("p", { class: "muted", text: t("sup.intro") }),
    notice,
    h(
      "div",
      { class: "supervise-grid" },
      h(
        "section",
        { "aria-labelledby": "sup-live-title" },
        h("h2", { id: "sup-help-title", text: t("sup.requests") }),
        noRequests,
        requestList,
        h("h2", { id: "sup-live-title", text: t("sup.live") }),
        noLive,
        h("div", { class: "table-wrap" }, liveTable),
        observedBox,
      ),
      h("section", { "aria-labelledby": "sup-team-title" }, h("h2", { id: "sup-team-title", text: t("sup.team") }), noTeam, h("div", { class: "table-wrap" }, teamTable)),
    ),
  );
  // Acute alerts over every screen; the debriefs counsellors asked for (risk.js).
  watchAlerts(ctx, socket);
  const debriefs = debriefList(ctx, socket, { render: (entry) => renderEntry(entry) });
  root.querySelector(".supervise-grid > section:last-child").append(debriefs.section);
  const takeoverDialog = h("dialog", { class: "chats-dialog", "aria-labelledby": "takeover-title" });
  root.append(takeoverDialog);

  // --- Frames -------------------------------------------------------------------------------

  listen("hello", () => refresh());
  listen("live.chats", (frame) => {
    state.live = frame.chats;
    // A request about a chat that is no longer live has nothing left to act on.
    const live = new Set(frame.chats.map((c) => c.chat_id));
    for (const chatId of [...state.requests.keys()]) {
      if (!live.has(chatId)) {
        state.requests.delete(chatId);
        socket.snapshot.help.delete(chatId);
      }
    }
    renderRequests();
    state.liveAt = Date.now();
    renderLive();
  });
  listen("team", (frame) => {
    state.team = frame.staff;
    renderTeam();
  });
  listen("risk.alert", () => refresh());
  listen("help.requested", (frame) => {
    state.requests.set(frame.chat_id, frame);
    renderRequests();
    ctx.announce(t("sup.help_announce", { name: frame.counsellor.alias }));
    refresh();
  });
  listen("chat.observing", (frame) => {
    if (state.observed?.chat_id !== frame.chat_id) {
      state.observed = frame;
      state.entries = new Map();
    } else {
      state.observed = frame;
    }
    renderObserved();
    socket.send({ type: "live" });
  });
  listen("chat.unobserved", (frame) => {
    if (state.observed?.chat_id === frame.chat_id) {
      state.observed = null;
      renderObserved();
    }
    socket.send({ type: "live" });
  });
  for (const kind of ["message", "note", "whisper", "counsellor.joined", "counsellor.left", "chat.ended"]) {
    listen(kind, (frame) => {
      if (state.observed?.chat_id !== frame.chat_id || typeof frame.seq !== "number") return;
      if (state.entries.has(frame.seq)) return;
      state.entries.set(frame.seq, frame);
      addEntry(frame);
      if (kind === "chat.ended") {
        flash(t("sup.chat_ended"));
        socket.send({ type: "live" });
      }
    });
  }
  listen("whisper.ack", (frame) => {
    if (state.observed?.chat_id !== frame.chat_id) return;
    const form = observedBox.querySelector(".whisper-form");
    if (form) form.querySelector("textarea").value = "";
    flash(t("sup.whispered"), "ok");
  });
  listen("chat.opened", (frame) => {
    // A chat we took over is ours now: answer it on the chats screen.
    if (state.observed?.chat_id === frame.chat_id) {
      state.observed = null;
      renderObserved();
    }
    state.requests.delete(frame.chat_id);
    socket.snapshot.help.delete(frame.chat_id);
    renderRequests();
    ctx.navigate("chats");
  });
  listen("error", (frame) => {
    if (!["live", "observe", "unobserve", "whisper", "takeover", "team"].includes(frame.ref)) return;
    const key = `chats.error.${frame.code}`;
    const text = t(key) === key ? frame.message : t(key);
    const errorBox = observedBox.querySelector(".whisper-error");
    if (frame.ref === "whisper" && errorBox) {
      errorBox.textContent = text;
      errorBox.hidden = false;
      return;
    }
    flash(text, "warn");
  });

  // --- Rendering ----------------------------------------------------------------------------

  function chatLabel(chat) {
    return `${lineName(chat.line)} · ${languageName(chat.language)} · #${chat.chat_id.slice(0, 6)}`;
  }

  // When their duty ends on their line's clock, with the zone where it is not the browser's
  // (as in the counsellor's own duty line).
  function dutyEnd(person) {
    if (!person.on_duty_until) return "";
    const at = person.on_duty_until * 1000;
    const zone = person.lines.map((key) => socket.snapshot.lines.find((line) => line.key === key)?.time_zone).find(Boolean);
    const label = zoneLabel(zone, at);
    return label ? `${clockIn(at, zone)} ${label}` : clockIn(at, zone);
  }

  function lineName(key) {
    return socket.snapshot.lines.find((line) => line.key === key)?.name ?? key;
  }

  function renderRequests() {
    noRequests.hidden = state.requests.size > 0;
    requestList.replaceChildren(
      ...[...state.requests.values()].reverse().map((request) => {
        const observe = h("button", { type: "button", class: "primary small", text: t("sup.observe") });
        observe.addEventListener("click", () => observeChat(request.chat_id));
        const dismiss = h("button", { type: "button", class: "small", text: t("sup.dismiss") });
        dismiss.addEventListener("click", () => {
          state.requests.delete(request.chat_id);
          socket.snapshot.help.delete(request.chat_id);
          renderRequests();
        });
        return h(
          "li",
          { class: "help-request", dataset: { chat: request.chat_id } },
          h("p", {}, h("strong", { text: t("sup.asks_help", { name: request.counsellor.alias }) }), " · ", h("span", { text: `${lineName(request.line)} · ${clock(request.at)}` })),
          request.text ? h("p", { class: "text", text: request.text }) : null,
          h("div", { class: "actions" }, observe, dismiss),
        );
      }),
    );
  }

  function renderLive() {
    noLive.hidden = state.live.length > 0;
    liveTable.hidden = state.live.length === 0;
    const focused = document.activeElement?.dataset?.key;
    liveBody.replaceChildren(
      ...state.live.map((chat) => {
        const waiting = chat.state !== "active";
        const waited = chat.waited_seconds;
        const active = chat.active_seconds ?? null;
        const button = chat.observing
          ? h("button", { type: "button", class: "small", text: t("sup.stop"), dataset: { key: `live:${chat.chat_id}` } })
          : h("button", { type: "button", class: "small primary", text: t("sup.observe"), disabled: chat.state !== "active", dataset: { key: `live:${chat.chat_id}` } });
        button.addEventListener("click", () => (chat.observing ? socket.unobserve(chat.chat_id) : observeChat(chat.chat_id)));
        return h(
          "tr",
          { class: chat.help_requested_at ? "asks-help" : null, dataset: { chat: chat.chat_id } },
          h("td", {}, h("span", { text: chatLabel(chat) }), chat.in_danger ? h("span", { class: "tag in-danger", text: t("risk.in_danger_tag") }) : null, chat.risk && chat.risk !== "none" ? h("span", { class: `tag risk-${chat.risk}`, text: t(`risk.level.${chat.risk}`) }) : null, chat.help_requested_at ? h("span", { class: "tag gap", text: t("sup.help_tag") }) : null, chat.visitor_connected ? null : h("span", { class: "tag off", text: t("chats.tab_away") })),
          h("td", { text: t(`sup.state.${chat.state}`) }),
          h("td", { text: chat.counsellor?.alias ?? "—" }),
          h("td", { text: duration(waited), dataset: waiting ? { since: String(waited) } : {} }),
          h("td", { text: active === null ? "—" : duration(active), dataset: active === null ? {} : { since: String(active) } }),
          h("td", {}, button),
        );
      }),
    );
    if (focused) liveBody.querySelector(`[data-key="${CSS.escape(focused)}"]`)?.focus();
  }

  // Only the clocks move between refreshes, so focus and reading position stay put.
  function tickLive() {
    const elapsed = Math.round((Date.now() - state.liveAt) / 1000);
    for (const cell of liveBody.querySelectorAll("td[data-since]")) cell.textContent = duration(Number(cell.dataset.since) + elapsed);
  }

  function renderTeam() {
    noTeam.hidden = state.team.length > 0;
    teamTable.hidden = state.team.length === 0;
    teamBody.replaceChildren(
      ...state.team.map((person) =>
        h(
          "tr",
          { dataset: { staff: person.id } },
          h("td", {}, h("span", { text: person.alias }), person.supervisor ? h("span", { class: "tag", text: t("sup.supervisor_tag") }) : null),
          h("td", {}, h("span", { class: `status-dot ${person.connected ? person.status : "offline"}`, "aria-hidden": "true" }), h("span", { text: person.connected ? t(`chats.status.${person.status}`) : t("sup.offline") })),
          h("td", { text: t("sup.load", { load: person.load, capacity: person.capacity }) }),
          h("td", { text: person.lines.map(lineName).join(", ") }),
          h("td", { text: dutyEnd(person) }),
        ),
      ),
    );
  }

  function renderObserved() {
    const chat = state.observed;
    observedBox.hidden = !chat;
    if (!chat) {
      observedBox.replaceChildren();
      return;
    }
    const log = h("ol", { class: "transcript" });
    const input = h("textarea", { id: nextId("whisper"), name: "text", rows: "2" });
    const error = h("p", { class: "field-error whisper-error", hidden: true, role: "alert" });
    const form = h(
      "form",
      { class: "whisper-form", novalidate: true },
      h("div", { class: "field" }, h("label", { for: input.id, text: t("sup.whisper_label", { name: chat.counsellor?.alias ?? "" }) }), h("p", { class: "hint", text: t("sup.whisper_hint") }), input, error),
      h("div", { class: "actions" }, h("button", { type: "submit", class: "primary", text: t("sup.whisper") })),
    );
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      error.hidden = true;
      if (input.value.trim()) socket.send({ type: "whisper", chat_id: chat.chat_id, text: input.value });
    });
    const takeover = h("button", { type: "button", class: "danger", text: t("sup.takeover") });
    takeover.addEventListener("click", () => confirmTakeover(chat));
    const stop = h("button", { type: "button", text: t("sup.stop") });
    stop.addEventListener("click", () => socket.unobserve(chat.chat_id));
    observedBox.replaceChildren(
      h("h2", { id: "sup-observed-title", text: t("sup.observing", { chat: chatLabel(chat) }) }),
      h("p", { class: "muted", text: t("sup.observing_hint", { name: chat.counsellor?.alias ?? "" }) }),
      h("div", { class: "chat-body", role: "log", tabindex: "0", "aria-live": "polite", "aria-label": t("chats.conversation") }, log),
      form,
      h("div", { class: "actions" }, takeover, stop),
    );
    for (const seq of [...state.entries.keys()].sort((a, b) => a - b)) log.append(renderEntry(state.entries.get(seq)));
  }

  function addEntry(entry) {
    const log = observedBox.querySelector(".transcript");
    if (!log) return;
    const item = renderEntry(entry);
    const later = [...log.children].find((el) => Number(el.dataset.seq) > entry.seq);
    log.insertBefore(item, later ?? null);
    log.parentElement.scrollTop = log.parentElement.scrollHeight;
  }

  function renderEntry(entry) {
    const at = entry.at ? h("time", { class: "at", text: clock(entry.at) }) : null;
    let item;
    if (entry.type === "message") {
      const staff = entry.sender === "counsellor";
      item = h("li", { class: `entry message ${staff ? "from-staff" : "from-visitor"}` }, h("p", { class: "entry-head" }, h("span", { class: "entry-who", text: staff ? entry.name : t("chats.visitor") }), at), h("p", { class: "text", text: entry.text }));
    } else if (entry.type === "note" || entry.type === "whisper") {
      const key = entry.type === "note" ? "chats.note_from" : "chats.whisper_from";
      item = h("li", { class: `entry ${entry.type}` }, h("p", { class: "entry-head" }, h("span", { class: "entry-who", text: t(key, { name: entry.name }) }), at), h("p", { class: "text", text: entry.text }));
    } else {
      const text = entry.type === "counsellor.joined" ? t("chats.joined", { name: entry.name }) : entry.type === "counsellor.left" ? t("chats.left", { reason: entry.reason }) : t("chats.ended_entry", { reason: entry.reason });
      item = h("li", { class: "entry system" }, h("p", {}, h("span", { text }), " ", at));
    }
    item.dataset.seq = String(entry.seq);
    return item;
  }

  function observeChat(chatId) {
    if (state.observed && state.observed.chat_id !== chatId) socket.unobserve(state.observed.chat_id);
    if (state.observed?.chat_id === chatId) return;
    socket.observe(chatId);
  }

  function confirmTakeover(chat) {
    const yes = h("button", { type: "button", class: "danger", text: t("sup.takeover_confirm") });
    const no = h("button", { type: "button", text: t("chats.cancel") });
    yes.addEventListener("click", () => {
      takeoverDialog.close();
      socket.send({ type: "takeover", chat_id: chat.chat_id });
    });
    no.addEventListener("click", () => takeoverDialog.close());
    takeoverDialog.replaceChildren(h("h2", { id: "takeover-title", text: t("sup.takeover_title") }), h("p", { text: t("sup.takeover_text", { name: chat.counsellor?.alias ?? "" }) }), h("div", { class: "actions" }, yes, no));
    takeoverDialog.showModal();
    no.focus();
  }

  function flash(text, kind = "") {
    notice.replaceChildren(h("p", { class: `notice ${kind}`, text }));
    ctx.announce(text);
  }

  function refresh() {
    socket.send({ type: "live" });
    socket.send({ type: "team" });
    debriefs.refresh();
  }

  const liveTimer = setInterval(() => {
    if (!root.hidden && !document.hidden) socket.send({ type: "live" });
  }, LIVE_REFRESH_MS);
  const teamTimer = setInterval(() => {
    if (!root.hidden && !document.hidden) socket.send({ type: "team" });
  }, TEAM_REFRESH_MS);
  const tick = setInterval(tickLive, 1000);

  // Requests that came while this screen was not shown.
  for (const request of socket.snapshot.help.values()) state.requests.set(request.chat_id, request);
  renderRequests();
  renderLive();
  renderTeam();
  if (socket.hello) refresh();

  return () => {
    for (const stop of off) stop();
    clearInterval(liveTimer);
    clearInterval(teamTimer);
    clearInterval(tick);
    debriefs.stop();
    if (state.observed) socket.unobserve(state.observed.chat_id);
  };
}

