// Risk and care in the console (docs/risk.md): the risk level on a chat, "in danger" marks,
// acute alerts (a sound and a banner), the line's procedure when nobody could be reached, the
// pause after an acute chat with "Ready", debriefs, the shift so far, and opt-in desktop
// notifications while the tab is hidden. Everything from the server goes in as text.

import { clockIn, h, nextId, zoneLabel } from "./core.js";

if (!document.querySelector("link[data-risk-css]")) {
  const link = document.createElement("link");
  link.rel = "stylesheet";
  link.href = "/console/static/risk.css";
  link.dataset.riskCss = "true";
  document.head.append(link);
}

export const LEVELS = ["none", "concern", "acute"];

// --- Alerts and desktop notifications: once per page, whichever view starts them ----------------

let alerts = null;

// Acute alerts for supervisors (and staff on call) as a banner over every view, with a sound;
// desktop notifications for offers and alerts while the tab is hidden, if the person opted in.
export function watchAlerts(ctx, socket) {
  if (alerts) return alerts;
  const t = (key, vars) => ctx.t(key, vars);
  const banner = h("div", { class: "risk-alerts", id: "risk-alerts", role: "alert" });
  document.body.append(banner);
  alerts = { banner };
  socket.on("risk.alert", (frame) => {
    alarm();
    // Set during the wrap-up: the chat cannot be joined, but a debrief may be wanted.
    const key = `${frame.on_call ? "risk.alert_on_call" : "risk.alert"}${frame.ended ? "_ended" : ""}`;
    const text = t(key, { name: frame.counsellor.alias, line: frame.line_name });
    const link = h("a", { href: "#/supervise", text: t("risk.alert_open") });
    const dismiss = h("button", { type: "button", class: "small", text: t("risk.alert_dismiss") });
    const item = h("div", { class: "risk-alert", dataset: { chat: frame.chat_id } }, h("strong", { text }), " ", link, " ", dismiss);
    dismiss.addEventListener("click", () => item.remove());
    link.addEventListener("click", () => item.remove());
    banner.querySelector(`[data-chat="${CSS.escape(frame.chat_id)}"]`)?.remove();
    banner.prepend(item);
    notify(ctx, text, `risk:${frame.chat_id}`);
  });
  socket.on("offer", (frame) => {
    const key = frame.in_danger ? "risk.notify_offer_danger" : "risk.notify_offer";
    notify(ctx, t(key, { line: frame.line_name || frame.line }), `offer:${frame.chat_id}`);
  });
  return alerts;
}

function notifyKey(ctx) {
  return `lykta.notify.${ctx.me?.id ?? ""}`;
}

export function notificationsOn(ctx) {
  try {
    return localStorage.getItem(notifyKey(ctx)) === "1" && "Notification" in window && Notification.permission === "granted";
  } catch {
    return false;
  }
}

// No content, no visitor: which kind of thing wants the counsellor back, and on which line.
function notify(ctx, text, tag) {
  if (!document.hidden || !notificationsOn(ctx)) return;
  try {
    const shown = new Notification(ctx.t("app.title"), { body: text, tag, silent: false });
    shown.addEventListener("click", () => {
      window.focus();
      shown.close();
    });
  } catch {
    // Not allowed here (an insecure origin, a policy): the console's own cues remain.
  }
}

// The opt-in button for the chats screen's head.
export function notificationToggle(ctx) {
  const t = (key, vars) => ctx.t(key, vars);
  const button = h("button", { type: "button", class: "small", id: "notify-toggle" });
  const paint = () => {
    const on = notificationsOn(ctx);
    button.setAttribute("aria-pressed", String(on));
    button.textContent = t("risk.notifications");
    button.title = on ? t("risk.notifications_on") : t("risk.notifications_off");
  };
  button.addEventListener("click", async () => {
    if (!("Notification" in window)) {
      button.title = t("risk.notifications_unsupported");
      return;
    }
    if (notificationsOn(ctx)) {
      localStorage.setItem(notifyKey(ctx), "0");
    } else {
      const answer = Notification.permission === "granted" ? "granted" : await Notification.requestPermission();
      localStorage.setItem(notifyKey(ctx), answer === "granted" ? "1" : "0");
      if (answer !== "granted") button.title = t("risk.notifications_denied");
    }
    paint();
    if (!notificationsOn(ctx) && Notification.permission === "denied") button.title = t("risk.notifications_denied");
  });
  paint();
  return button;
}

// --- The chats screen: a counsellor's own chats ------------------------------------------------

export function riskTools(ctx, socket, state, hooks) {
  const t = (key, vars) => ctx.t(key, vars);
  const off = [];
  const listen = (type, fn) => off.push(socket.on(type, fn));
  watchAlerts(ctx, socket);

  const pause = h("div", { class: "care-pause", id: "care-pause", role: "status", hidden: true });
  const tally = h("p", { class: "shift-tally", id: "shift-tally" });
  const head = h("div", { class: "care-head" }, tally, pause);
  let pausedUntil = null;
  let pauseTimer = 0;

  // The zone of the first line the duty line names (the first of the counsellor's lines when
  // off duty); none, the browser's own, before the lines are known.
  function dutyZone() {
    const lines = state.lines ?? [];
    return (lines.find((line) => line.on_duty) ?? lines[0])?.time_zone;
  }

  function renderPause() {
    clearInterval(pauseTimer);
    const active = pausedUntil && pausedUntil * 1000 > Date.now();
    pause.hidden = !active;
    if (!active) {
      pause.replaceChildren();
      return;
    }
    const ready = h("button", { type: "button", class: "primary", id: "care-ready", text: t("risk.ready") });
    ready.addEventListener("click", () => socket.send({ type: "ready" }));
    // As the duty line above shows its times: in the line's zone, named when it is not the browser's.
    const zone = dutyZone();
    const label = zoneLabel(zone, pausedUntil * 1000);
    const clock = clockIn(pausedUntil * 1000, zone);
    const until = label ? `${clock} ${label}` : clock;
    pause.replaceChildren(
      h("h2", { text: t("risk.pause_title") }),
      h("p", { text: t("risk.pause_text", { time: until }) }),
      h("div", { class: "actions" }, ready),
    );
    pauseTimer = setInterval(() => {
      if (pausedUntil * 1000 <= Date.now()) renderPause();
    }, 5000);
  }

  // Counted since the roster shift began, or since a coordinator put them on duty, or (off
  // duty) over the last hours: the text says which.
  function renderTally(shift) {
    const counts = { chats: shift.chats, acute: shift.acute, debriefs: shift.debriefs };
    // As the duty line above shows it: in the line's zone, named when it is not the browser's.
    const zone = (state.lines ?? []).find((line) => line.on_duty && line.on_duty_since === shift.since)?.time_zone;
    const label = shift.since ? zoneLabel(zone, shift.since * 1000) : "";
    const clock = shift.since ? clockIn(shift.since * 1000, zone) : "";
    const time = label ? `${clock} ${label}` : clock;
    if (shift.basis === "shift") tally.textContent = t("risk.shift_so_far", { ...counts, time });
    else if (shift.basis === "ad_hoc") tally.textContent = t("risk.shift_so_far_ad_hoc", { ...counts, time });
    else if (shift.on_duty) tally.textContent = t("risk.shift_so_far_long", { ...counts, hours: shift.hours ?? 12 });
    else tally.textContent = t("risk.shift_so_far_hours", { ...counts, hours: shift.hours ?? 12 });
    tally.dataset.basis = shift.basis ?? "hours";
  }

  listen("hello", (hello) => {
    pausedUntil = hello.paused_until ?? null;
    renderPause();
    for (const summary of hello.chats ?? []) remember(summary);
    socket.send({ type: "shift" });
  });
  listen("shift", (frame) => {
    renderTally(frame);
    // The server's word on the pause (also after this screen is drawn again).
    if ((frame.paused_until ?? null) !== pausedUntil) {
      pausedUntil = frame.paused_until ?? null;
      renderPause();
    }
  });
  // A shift began or ended: the shift so far counts from elsewhere.
  listen("duty", () => socket.send({ type: "shift" }));
  listen("care.paused", (frame) => {
    pausedUntil = frame.until;
    renderPause();
    hooks.flash(t("risk.pause_started"), "warn");
    socket.send({ type: "shift" });
  });
  listen("care.ready", () => {
    pausedUntil = null;
    renderPause();
    hooks.flash(t("risk.pause_over"), "ok");
  });
  listen("chat.opened", (frame) => {
    remember(frame);
    paint(frame.chat_id);
  });
  listen("chat.risk", (frame) => setRisk(frame.chat_id, frame.risk));
  listen("risk.set", (frame) => {
    setRisk(frame.chat_id, frame.risk);
    const chat = state.chats.get(frame.chat_id);
    if (!chat) return;
    if (frame.risk === "acute" && frame.procedure) {
      showProcedure(chat, frame.procedure);
    } else if (frame.risk === "acute" && frame.supervisors + frame.on_call > 0) {
      hooks.chatNotice(chat, frame.supervisors > 0 ? t("risk.told_supervisors", { count: frame.supervisors }) : t("risk.told_on_call", { count: frame.on_call }), "ok");
    }
  });
  // The level the chat had when it ended (also for a wrap-up owed from before a reload).
  listen("wrapup.required", (frame) => {
    if (frame.risk) setRisk(frame.chat_id, frame.risk);
  });
  listen("chat.in_danger", (frame) => {
    const info = marks.get(frame.chat_id) ?? {};
    marks.set(frame.chat_id, { ...info, inDanger: true });
    paint(frame.chat_id);
    const offer = state.offers.get(frame.chat_id);
    if (offer) {
      offer.in_danger = true;
      hooks.renderOffers();
    }
    const chat = state.chats.get(frame.chat_id);
    alarm();
    if (chat) hooks.chatNotice(chat, t("risk.in_danger_pressed"), "warn");
    ctx.announce(t("risk.in_danger_pressed"));
  });
  listen("debrief.asked", (frame) => {
    const chat = state.chats.get(frame.chat_id);
    const info = marks.get(frame.chat_id) ?? {};
    marks.set(frame.chat_id, { ...info, debrief: true });
    paint(frame.chat_id);
    if (chat) hooks.chatNotice(chat, t("risk.debrief_asked"), "ok");
    socket.send({ type: "shift" });
  });
  listen("chat.ended", (frame) => {
    // After the chats screen has marked the chat ended.
    setTimeout(() => paint(frame.chat_id), 0);
    socket.send({ type: "shift" });
  });
  listen("error", (frame) => {
    if (!["risk", "debrief", "ready"].includes(frame.ref)) return;
    const key = `risk.error.${frame.ref}`;
    hooks.flash(t(key) === key ? frame.message : t(key), "warn");
    // Show the level the server has, not the one clicked.
    if (frame.ref === "risk") for (const id of marks.keys()) paint(id);
  });

  // chat id -> {risk, inDanger, debrief}
  const marks = new Map();
  // Drawn again (a language change) after hello: ask for what hello told.
  if (socket.hello) {
    for (const summary of socket.snapshot.chats.values()) remember(summary);
    socket.send({ type: "shift" });
  }

  function remember(summary) {
    const info = marks.get(summary.chat_id) ?? {};
    marks.set(summary.chat_id, { ...info, risk: summary.risk ?? info.risk ?? "none", inDanger: Boolean(summary.in_danger || info.inDanger) });
  }

  function setRisk(chatId, risk) {
    const info = marks.get(chatId) ?? {};
    marks.set(chatId, { ...info, risk });
    paint(chatId);
  }

  // The chat's panel gets the risk choice and the debrief button; its tab and head the marks.
  function attach(chat) {
    const legendId = nextId("risk");
    const box = h("fieldset", { class: "risk-choice", "aria-labelledby": legendId }, h("legend", { id: legendId, text: t("risk.level") }));
    for (const level of LEVELS) {
      const id = nextId("risk-level");
      const input = h("input", { type: "radio", name: `risk-${chat.id}`, value: level, id });
      input.addEventListener("change", () => {
        if (input.checked) socket.send({ type: "risk", chat_id: chat.id, level });
      });
      box.append(h("span", { class: `risk-option risk-${level}` }, input, h("label", { for: id, text: t(`risk.level.${level}`) })));
    }
    const debrief = h("button", { type: "button", class: "small debrief-ask", text: t("risk.debrief") });
    debrief.addEventListener("click", () => socket.send({ type: "debrief", chat_id: chat.id }));
    const procedure = h("div", { class: "risk-procedure", role: "alert", hidden: true });
    const row = h("div", { class: "risk-row" }, box, debrief);
    chat.ui.actions.before(row);
    chat.ui.notices.after(procedure);
    const tabMark = h("span", { class: "risk-mark" });
    chat.ui.tab.querySelector(".tab-label")?.after(tabMark);
    const headMark = h("span", { class: "risk-mark" });
    chat.ui.panel.querySelector(".chat-meta")?.append(headMark);
    chat.ui.risk = { box, debrief, procedure, tabMark, headMark };
    paint(chat.id);
  }

  function paint(chatId) {
    const chat = state.chats.get(chatId);
    if (!chat?.ui?.risk) return;
    const info = marks.get(chatId) ?? { risk: "none" };
    const { box, debrief, tabMark, headMark } = chat.ui.risk;
    const risk = info.risk ?? "none";
    // Ended: the level may still be set while the wrap-up is owed (the form holds the choice).
    for (const input of box.querySelectorAll("input")) {
      input.checked = input.value === risk;
      input.disabled = Boolean(chat.ended) && !chat.wrapup;
    }
    debrief.disabled = Boolean(info.debrief);
    debrief.textContent = info.debrief ? t("risk.debrief_done") : t("risk.debrief");
    for (const mark of [tabMark, headMark]) {
      mark.replaceChildren(
        ...[
          info.inDanger ? h("span", { class: "tag in-danger", text: t("risk.in_danger_tag") }) : null,
          risk !== "none" ? h("span", { class: `tag risk-${risk}`, text: t(`risk.level.${risk}`) }) : null,
        ].filter(Boolean),
      );
    }
  }

  function showProcedure(chat, procedure) {
    const box = chat.ui.risk.procedure;
    box.replaceChildren(
      ...[
        h("h3", { text: t("risk.procedure_title") }),
        h("p", { text: t("risk.procedure_nobody") }),
        procedure.text ? h("p", { class: "text", text: procedure.text }) : h("p", { class: "muted", text: t("risk.procedure_missing") }),
        procedure.contact ? h("p", {}, h("strong", { text: t("risk.procedure_contact") }), " ", h("span", { text: procedure.contact })) : null,
      ].filter(Boolean),
    );
    box.hidden = false;
    box.scrollIntoView({ block: "nearest" });
  }

  // The wrap-up form takes the risk choice: the counsellor often judges the risk only once
  // the visitor has gone. A choice there is sent at once, as in the chat (acute alerts now).
  function inWrapup(chat, form) {
    const parts = chat.ui?.risk;
    if (!parts) return;
    const hint = h("p", { class: "hint risk-wrapup-hint", text: t("risk.wrapup_hint") });
    const before = form.querySelector(".field-error") ?? form.querySelector(".actions");
    form.insertBefore(parts.box, before);
    form.insertBefore(hint, before);
    paint(chat.id);
  }

  return {
    head,
    attach,
    paint,
    inWrapup,
    // The lines changed (their zones, who is on duty): the pause's time follows the duty line.
    linesChanged: renderPause,
    offerTags(offer) {
      return offer.in_danger ? h("span", { class: "tag in-danger", text: t("risk.in_danger_tag") }) : null;
    },
    stop() {
      clearInterval(pauseTimer);
      for (const stop of off) stop();
    },
  };
}

// --- Supervisors: the debrief list ----------------------------------------------------------------

export function debriefList(ctx, socket, { render: renderEntry }) {
  const t = (key, vars) => ctx.t(key, vars);
  const off = [];
  const listen = (type, fn) => off.push(socket.on(type, fn));
  const list = h("ul", { class: "debrief-list", "aria-labelledby": "sup-debriefs-title" });
  const none = h("p", { class: "muted", text: t("risk.no_debriefs") });
  const transcript = h("section", { class: "debrief-transcript", hidden: true, "aria-labelledby": "debrief-transcript-title" });
  const section = h("section", { class: "debriefs", "aria-labelledby": "sup-debriefs-title" }, h("h2", { id: "sup-debriefs-title", text: t("risk.debriefs") }), none, list, transcript);
  let opened = null;
  const entries = new Map();

  listen("debriefs", (frame) => {
    none.hidden = frame.debriefs.length > 0;
    list.replaceChildren(
      ...frame.debriefs.map((item) => {
        const hour = new Date(item.hour).toLocaleString(ctx.lang, { weekday: "short", day: "numeric", month: "short", hour: "2-digit", minute: "2-digit" });
        const read = item.transcript ? h("button", { type: "button", class: "small", text: t("risk.debrief_read") }) : h("span", { class: "muted", text: t("risk.debrief_no_transcript") });
        if (item.transcript) read.addEventListener("click", () => socket.send({ type: "debrief.open", debrief_id: item.id }));
        return h(
          "li",
          { class: "debrief", dataset: { debrief: item.id } },
          h("strong", { text: item.counsellor.alias }),
          " · ",
          h("span", { text: lineName(item.line) }),
          " · ",
          h("span", { text: t("risk.hour", { hour }) }),
          " ",
          item.risk !== "none" ? h("span", { class: `tag risk-${item.risk}`, text: t(`risk.level.${item.risk}`) }) : null,
          " ",
          read,
        );
      }),
    );
  });
  listen("debrief.opened", (frame) => {
    opened = frame.chat_id;
    entries.clear();
    const close = h("button", { type: "button", class: "small", text: t("risk.debrief_close") });
    close.addEventListener("click", () => {
      opened = null;
      transcript.hidden = true;
      transcript.replaceChildren();
    });
    transcript.replaceChildren(h("h3", { id: "debrief-transcript-title", text: t("risk.debrief_transcript") }), h("div", { class: "chat-body", role: "log", tabindex: "0", "aria-label": t("chats.conversation") }, h("ol", { class: "transcript" })), close);
    transcript.hidden = false;
  });
  for (const kind of ["message", "note", "whisper", "counsellor.joined", "counsellor.left", "chat.ended"]) {
    listen(kind, (frame) => {
      if (frame.chat_id !== opened || typeof frame.seq !== "number" || entries.has(frame.seq)) return;
      entries.set(frame.seq, frame);
      const log = transcript.querySelector(".transcript");
      const item = renderEntry(frame);
      const later = [...log.children].find((el) => Number(el.dataset.seq) > frame.seq);
      log.insertBefore(item, later ?? null);
    });
  }

  function lineName(key) {
    return socket.snapshot.lines.find((line) => line.key === key)?.name ?? key;
  }

  return {
    section,
    refresh() {
      socket.send({ type: "debriefs" });
    },
    stop() {
      for (const stop of off) stop();
    },
  };
}

// --- Sound ---------------------------------------------------------------------------------------

let audio = null;

// Three rising notes, unlike the offer's chime: something needs a supervisor now.
export function alarm() {
  try {
    audio = audio ?? new AudioContext();
    if (audio.state === "suspended") audio.resume();
    const start = audio.currentTime + 0.01;
    for (const [offset, frequency] of [[0, 523], [0.16, 659], [0.32, 784]]) {
      const osc = audio.createOscillator();
      const gain = audio.createGain();
      osc.type = "triangle";
      osc.frequency.value = frequency;
      gain.gain.setValueAtTime(0.0001, start + offset);
      gain.gain.exponentialRampToValueAtTime(0.25, start + offset + 0.02);
      gain.gain.exponentialRampToValueAtTime(0.0001, start + offset + 0.22);
      osc.connect(gain).connect(audio.destination);
      osc.start(start + offset);
      osc.stop(start + offset + 0.25);
    }
  } catch {
    // No audio: the banner and the announcement remain.
  }
}
