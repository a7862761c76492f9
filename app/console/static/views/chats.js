// The counsellor's screen: status and shift, queue cards, offers with a countdown, several
// chats in tabs, canned responses, notes, transfer, asking a supervisor, block, end and
// wrap-up. Everything a visitor or colleague wrote is put in as text (textContent), never
// HTML. Nothing about a chat is stored in the browser beyond this page's memory.

import { clockIn, h, nextId, zoneLabel } from "../core.js";
import { staffSocket } from "../socket.js";
import { addStylesheet, cannedComposer, cannedOptions, clock, duration, languageName, wrapupForm } from "../chat-helpers.js";
import { CARE_ENTRIES, careEntry, careTools } from "../care.js";
import { notificationToggle, riskTools } from "../risk.js";
import { BOOKING_ENTRIES, CODE_ENTRIES, bookedToday, bookingEntry, bookingTools } from "../booking.js";

// Stays mounted (hidden) when the counsellor looks at another screen: drafts and chats stay.
export const persistent = true;

const TYPING_REFRESH_MS = 3000;
const TYPING_IDLE_MS = 4000;
const ACCEPT_RACE_MS = 1500;

// What outlives one drawing of the screen (a language change draws it again): drafts per
// chat, the chat looked at, the sound choice. Page memory only, never browser storage.
const kept = { drafts: new Map(), selected: null, sound: true };

export function mount(root, ctx) {
  let cleanup = build(root, ctx);
  const stop = ctx.on("lang", () => {
    cleanup();
    root.replaceChildren();
    cleanup = build(root, ctx);
  });
  return () => {
    stop();
    cleanup();
  };
}

function build(root, ctx) {
  addStylesheet();
  const t = (key, vars) => ctx.t(key, vars);
  const socket = staffSocket(ctx);
  const state = {
    status: "away",
    wantedStatus: null,
    staff: null,
    lines: [],
    queues: new Map(),
    offers: new Map(),
    chats: new Map(),
    order: [],
    selected: null,
    sound: kept.sound,
    counter: 0,
    lastAction: {},
    fullSync: new Set(),
    // What the last hello said was lost with the server's data (shown instead of "restored").
    lostNotice: null,
  };
  const off = [];

  // --- Layout -------------------------------------------------------------------------------

  const title = h("h1", { id: "view-chats-title", text: t("chats.title") });
  const statusBox = h("fieldset", { class: "status-choice" }, h("legend", { text: t("chats.status") }));
  for (const value of ["available", "away", "break"]) {
    const id = nextId("status");
    const input = h("input", { type: "radio", name: "status", value, id });
    input.addEventListener("change", () => {
      if (!input.checked) return;
      // A choice made while the socket is still (re)connecting is not lost: it is sent as
      // soon as the server has said hello, instead of being overwritten by hello's status.
      state.wantedStatus = socket.send({ type: "status", status: value }) ? null : value;
    });
    statusBox.append(h("span", { class: `status-option status-${value}` }, input, h("label", { for: id, text: t(`chats.status.${value}`) })));
  }
  const shift = h("p", { class: "shift", id: "chats-shift" });
  const connection = h("p", { class: "connection", role: "status" });
  const soundButton = h("button", { type: "button", class: "small", "aria-pressed": String(state.sound), text: t("chats.sound") });
  soundButton.addEventListener("click", () => {
    state.sound = !state.sound;
    kept.sound = state.sound;
    soundButton.setAttribute("aria-pressed", String(state.sound));
  });
  const shortcuts = h(
    "details",
    { class: "shortcuts" },
    h("summary", { text: t("chats.shortcuts") }),
    h(
      "dl",
      {},
      ...[
        ["Alt+A", "chats.shortcut.accept"],
        ["Alt+N / Alt+P", "chats.shortcut.switch"],
        ["Enter", "chats.shortcut.send"],
        ["Shift+Enter", "chats.shortcut.newline"],
        ["Alt+E", "chats.shortcut.end"],
        ["Alt+M", "chats.shortcut.message"],
      ].flatMap(([keys, label]) => [h("dt", {}, h("kbd", { text: keys })), h("dd", { text: t(label) })]),
    ),
  );
  const notice = h("div", { class: "chats-notice", role: "status" });
  const head = h("header", { class: "chats-head" }, h("div", { class: "chats-head-main" }, title, shift), statusBox, h("div", { class: "chats-head-tools" }, connection, soundButton, shortcuts));

  const queueList = h("ul", { class: "queue-cards", "aria-labelledby": "queues-title" });
  const offerList = h("ul", { class: "offer-cards", "aria-labelledby": "offers-title" });
  const noOffers = h("p", { class: "muted", text: t("chats.no_offers") });
  const tabList = h("div", { class: "chat-tabs", role: "tablist", "aria-orientation": "vertical", "aria-labelledby": "mychats-title" });
  const noChats = h("p", { class: "muted", text: t("chats.no_chats") });
  // Booked chats of today (booking.js), read again now and then.
  const booked = bookedToday(ctx);
  const side = h(
    "aside",
    { class: "chats-side" },
    h("section", { class: "side-block" }, h("h2", { id: "queues-title", text: t("chats.queues") }), queueList),
    h("section", { class: "side-block" }, h("h2", { id: "offers-title", text: t("chats.offers") }), noOffers, offerList),
    h("section", { class: "side-block" }, h("h2", { id: "mychats-title", text: t("chats.my_chats") }), noChats, tabList),
    booked.element,
  );
  const emptyText = h("p", { text: t("chats.empty") });
  const emptyPanel = h("div", { class: "chat-empty" }, emptyText);
  const panels = h("div", { class: "chats-main" }, emptyPanel);
  root.append(head, notice, h("div", { class: "chats-layout" }, side, panels));

  const confirmDialog = h("dialog", { class: "chats-dialog", "aria-labelledby": "confirm-title" });
  const transferDialog = h("dialog", { class: "chats-dialog", "aria-labelledby": "transfer-title" });
  const helpDialog = h("dialog", { class: "chats-dialog", "aria-labelledby": "help-title" });
  // Continuity codes and referral cards (issue 9, views/care.js).
  const codeDialog = h("dialog", { class: "chats-dialog", "aria-labelledby": "code-title" });
  const referralDialog = h("dialog", { class: "chats-dialog wide", "aria-labelledby": "referral-title" });
  const timesDialog = h("dialog", { class: "chats-dialog wide", "aria-labelledby": "times-title" });
  root.append(confirmDialog, transferDialog, helpDialog, codeDialog, referralDialog, timesDialog);
  const care = careTools(ctx, socket, state, { codeDialog, referralDialog });
  // Risk levels, "in danger", acute alerts, the pause after an acute chat (risk.js).
  const risk = riskTools(ctx, socket, state, { flash, chatNotice, renderOffers });
  head.querySelector(".chats-head-main").append(risk.head);
  head.querySelector(".chats-head-tools").append(notificationToggle(ctx));
  const booking = bookingTools(ctx, socket, state, { timesDialog });

  // --- Socket frames ------------------------------------------------------------------------

  const listen = (type, fn) => off.push(socket.on(type, fn));
  off.push(ctx.on("session", () => {
    state.signedInAgain = true;
  }));

  listen("connection", ({ state: s }) => showConnection(s));
  listen("hello", (hello) => {
    state.staff = hello.staff;
    setLines(hello.lines);
    booked.refresh();
    const wanted = state.wantedStatus;
    const before = state.status;
    state.wantedStatus = null;
    if (wanted && wanted !== hello.status && socket.send({ type: "status", status: wanted })) setStatus(wanted);
    else setStatus(hello.status);
    // Signing in again (the session had ended) starts away, like any sign-in: say so.
    state.awayAfterSignIn = Boolean(state.signedInAgain) && before !== "away" && state.status === "away";
    state.signedInAgain = false;
    if (state.awayAfterSignIn) flash(t("chats.set_away_signed_in"), "warn");
    const open = new Set([...(hello.chats ?? []), ...(hello.interpreting ?? [])].map((c) => c.chat_id));
    for (const chat of hello.chats ?? []) openChat(chat, false);
    // Chats this interpreter is in: what they lack since their join comes with a sync (the
    // server never sends them anything from before it).
    for (const chat of hello.interpreting ?? []) {
      openInterpreting(chat, false);
      socket.send({ type: "sync", chat_id: chat.chat_id, last_seq: 0 });
    }
    for (const chatId of state.fullSync) {
      if (open.has(chatId)) socket.send({ type: "sync", chat_id: chatId, last_seq: 0 });
    }
    state.fullSync.clear();
    // A chat whose wrap-up we owe ended while we were away (or before a reload): it stays,
    // with the form. Any other chat that is not open is no longer ours (back to the queue).
    const owed = new Map((hello.wrapups ?? []).map((w) => [w.chat_id, { ...w, type: "wrapup.required" }]));
    // Chats the server lost with its data (a restart): gone, and said so once, in words.
    const lost = new Set((hello.lost ?? []).map((c) => c.chat_id));
    for (const chat of [...state.chats.values()]) {
      if (open.has(chat.id)) continue;
      if (owed.has(chat.id)) showOwedWrapup(owed.get(chat.id));
      else if (lost.has(chat.id)) removeChat(chat.id);
      else if (!chat.ended) closeChat(chat.id, t("chats.lost_while_away"));
    }
    state.lostNotice = lost.size ? t("chats.lost_with_data", { count: lost.size }) : null;
    if (state.lostNotice) flash(state.lostNotice, "warn");
    for (const frame of owed.values()) if (!state.chats.has(frame.chat_id)) showOwedWrapup(frame);
    state.offers.clear();
    for (const offer of hello.offers ?? []) addOffer(offer, false);
    for (const offer of hello.interpreter_offers ?? []) addOffer({ ...offer, interpreting: true }, false);
    renderOffers();
  });
  listen("restored", () => {
    if (state.lostNotice) return; // what was lost says more than "restored"
    // After signing in again, both: the chats are back, and the status is away.
    if (state.awayAfterSignIn) flash(`${t("chats.restored")} ${t("chats.set_away_signed_in")}`, "warn");
    else flash(t("chats.restored"));
    state.awayAfterSignIn = false;
  });
  listen("duty", (frame) => setLines(frame.lines));
  listen("profile", (frame) => {
    state.staff = frame.staff;
    setLines(frame.lines);
  });
  listen("status", (frame) => {
    setStatus(frame.status);
    if (frame.reason === "missed_offers") flash(t("chats.set_away_missed"), "warn");
    if (frame.reason === "signed_in") flash(t("chats.set_away_signed_in"), "warn");
  });
  listen("queue.summary", (frame) => {
    state.queues.set(frame.line, { ...frame, received: Date.now() });
    renderQueues();
  });
  listen("offer", (frame) => {
    addOffer(frame, true);
    renderOffers();
  });
  // Interpreters: a counsellor's request, the chat they joined, and a request that lapsed.
  listen("interpreter.offer", (frame) => {
    addOffer({ ...frame, interpreting: true }, true);
    renderOffers();
  });
  listen("interpreter.offer.withdrawn", (frame) => {
    if (!state.offers.delete(frame.chat_id)) return;
    renderOffers();
    // Declined (in another tab of ours) needs no word; a lapse, an end or a move does.
    if (frame.reason === "declined") return;
    const key = `chats.interpreter_withdrawn.${frame.reason}`;
    flash(t(key) === key ? t("chats.offer_expired") : t(key), "warn");
  });
  listen("interpreting", (frame) => {
    state.offers.delete(frame.chat_id);
    renderOffers();
    const chat = openInterpreting(frame, true);
    select(chat.id, !root.hidden);
  });
  listen("interpreter.asked", (frame) => {
    const chat = state.chats.get(frame.chat_id);
    if (!chat) return;
    chat.interpreterAsked = true;
    renderInterpreter(chat);
    chatNotice(chat, t("chats.interpreter_asked", { language: languageName(frame.language) }), "ok");
  });
  listen("offer.withdrawn", (frame) => {
    if (!state.offers.delete(frame.chat_id)) return;
    renderOffers();
    if (frame.reason === "expired") flash(t("chats.offer_expired"), "warn");
    if (frame.reason === "visitor_away") flash(t("chats.offer_visitor_away"), "warn");
  });
  listen("chat.opened", (frame) => {
    state.offers.delete(frame.chat_id);
    renderOffers();
    const chat = openChat(frame, true);
    // Accepting (or taking over) is deliberate: the chat this tab asked for opens, ready to
    // write in. One that came otherwise (another tab's accept, automatic acceptance) opens
    // only onto an empty screen, else its tab says "new": it never takes the screen away.
    if (socket.claimed.delete(chat.id)) select(chat.id, !root.hidden);
    else if (!state.selected || state.selected === chat.id) select(chat.id, false);
    else {
      chat.fresh = true;
      renderTabs();
    }
  });
  listen("chat.released", (frame) => {
    const key = `chats.released.${frame.reason}`;
    closeChat(frame.chat_id, t(key) === key ? t("chats.released.other") : t(key));
  });
  for (const kind of ["message", "note", "whisper", "counsellor.joined", "counsellor.left", "chat.ended", "interpreter.joined", "interpreter.left", ...CARE_ENTRIES, ...BOOKING_ENTRIES]) {
    listen(kind, (frame) => {
      const chat = state.chats.get(frame.chat_id);
      if (chat) addEntry(chat, frame);
    });
  }
  listen("message.ack", (frame) => {
    const chat = state.chats.get(frame.chat_id);
    if (!chat || !frame.client_id) return;
    const sent = chat.outgoing.get(frame.client_id);
    if (!sent) return;
    chat.outgoing.delete(frame.client_id);
    sent.element.remove();
    addEntry(chat, { type: "message", chat_id: chat.id, seq: frame.seq, sender: chat.interpreting ? "interpreter" : "counsellor", name: state.staff?.alias, text: sent.text, at: sent.at, client_id: frame.client_id, staff_id: state.staff?.id });
  });
  listen("typing", (frame) => {
    const chat = state.chats.get(frame.chat_id);
    if (!chat) return;
    chat.ui.typing.hidden = !frame.typing;
  });
  listen("visitor.away", (frame) => {
    const chat = state.chats.get(frame.chat_id);
    if (!chat) return;
    chat.visitorConnected = false;
    chat.graceUntil = frame.grace_until;
    renderPresence(chat);
    ctx.announce(t("chats.visitor_away_short", { chat: chat.label }));
  });
  listen("visitor.back", (frame) => {
    const chat = state.chats.get(frame.chat_id);
    if (!chat) return;
    chat.visitorConnected = true;
    chat.graceUntil = null;
    renderPresence(chat);
    ctx.announce(t("chats.visitor_back", { chat: chat.label }));
  });
  listen("wrapup.required", (frame) => {
    const chat = state.chats.get(frame.chat_id);
    if (!chat) return;
    chat.wrapup = frame;
    renderWrapup(chat);
  });
  listen("wrapup.saved", (frame) => {
    const chat = state.chats.get(frame.chat_id);
    if (!chat) return;
    removeChat(chat.id);
    flash(t("chats.wrapup_saved", { chat: chat.label }), "ok");
  });
  listen("blocked", (frame) => {
    const chat = state.chats.get(frame.chat_id);
    if (chat) chatNotice(chat, t("chats.blocked_until", { time: clock(frame.until) }), "ok");
  });
  listen("help.sent", (frame) => {
    const chat = state.chats.get(frame.chat_id);
    if (!chat) return;
    const text = frame.supervisors > 0 ? t("chats.help_sent", { count: frame.supervisors }) : t("chats.help_none");
    chatNotice(chat, text, frame.supervisors > 0 ? "ok" : "warn");
    helpDialog.close();
  });
  listen("transfer.options", (frame) => showTransfer(frame));
  // For supervisors answering chats here: a colleague asks for help (handled on #/supervise).
  listen("help.requested", (frame) => {
    if (state.sound) chime();
    const link = h("a", { href: "#/supervise", text: t("chats.help_open") });
    notice.replaceChildren(h("p", { class: "notice warn" }, t("chats.help_requested", { name: frame.counsellor.alias }), " ", link));
    ctx.announce(t("chats.help_requested", { name: frame.counsellor.alias }));
  });
  listen("error", (frame) => showError(frame));

  // --- State changes ------------------------------------------------------------------------

  function setLines(lines) {
    state.lines = lines ?? [];
    for (const line of state.lines) {
      if (!state.queues.has(line.key)) state.queues.set(line.key, { line: line.key, waiting: 0, longest_wait_seconds: 0, received: Date.now() });
    }
    renderShift();
    risk.linesChanged();
    renderQueues();
    for (const chat of state.chats.values()) renderCanned(chat);
  }

  function lineOf(key) {
    return state.lines.find((line) => line.key === key);
  }

  function setStatus(status) {
    state.status = status;
    for (const input of statusBox.querySelectorAll("input")) input.checked = input.value === status;
    renderEmpty();
    ctx.emit("status", status);
  }

  function addOffer(frame, fresh) {
    const now = Date.now() / 1000;
    let remaining = Math.min(frame.timeout_seconds, (frame.expires_at ?? now) - now);
    // A clock far off from the server's: count from arrival instead.
    if (!(remaining > 0)) remaining = frame.timeout_seconds;
    state.offers.set(frame.chat_id, { ...frame, deadline: performance.now() + remaining * 1000, fresh });
    if (fresh) {
      if (state.sound) chime();
      ctx.announce(t("chats.offer_announce", { line: frame.line_name || frame.line }));
    }
  }

  function openChat(summary, fresh) {
    let chat = state.chats.get(summary.chat_id);
    if (!chat) {
      state.counter += 1;
      const line = lineOf(summary.line);
      chat = {
        id: summary.chat_id,
        line: summary.line,
        language: summary.language,
        label: t("chats.chat_label", { n: state.counter, line: line?.name ?? summary.line }),
        entries: new Map(),
        outgoing: new Map(),
        unread: 0,
        ended: false,
        wrapup: null,
        visitorConnected: summary.visitor_connected !== false,
        graceUntil: summary.visitor_grace_until ?? null,
        peerRequested: Boolean(summary.peer_requested),
        hasCode: Boolean(summary.has_code),
        typingSent: 0,
        typingTimer: null,
        ui: null,
      };
      state.chats.set(chat.id, chat);
      state.order.push(chat.id);
      buildChat(chat);
      if (fresh) ctx.announce(t("chats.opened_announce", { chat: chat.label }));
    } else {
      chat.visitorConnected = summary.visitor_connected !== false;
      chat.graceUntil = summary.visitor_grace_until ?? null;
    }
    renderPresence(chat);
    renderTabs();
    return chat;
  }

  // A chat this interpreter joined: the conversation from their join on, labelled, with
  // only the composer and Leave (no notes, codes, cards, transfer or end).
  function openInterpreting(summary, fresh) {
    const chat = openChat({ chat_id: summary.chat_id, line: summary.line, language: summary.language }, fresh);
    chat.interpreting = true;
    chat.counsellorName = summary.counsellor;
    chat.ui.panel.classList.add("interpreting");
    chat.ui.heading.textContent = t("chats.interpreting_title", { chat: chat.label, name: summary.counsellor ?? "" });
    chat.ui.composer.querySelector(`label[for="${chat.ui.input.id}"]`).textContent = t("chats.interpreter_message");
    renderComposerState(chat);
    return chat;
  }

  // A wrap-up still owed for a chat that ended while the console was away or reloading:
  // the chat (a tab of its own, if this page never saw it) says it ended, with the form.
  function showOwedWrapup(frame) {
    let chat = state.chats.get(frame.chat_id);
    const known = Boolean(chat);
    if (!chat) chat = openChat({ chat_id: frame.chat_id, line: frame.line, language: frame.language }, false);
    if (!chat.ended) {
      chat.ended = true;
      chat.ui.typing.hidden = true;
      chat.graceUntil = null;
      renderPresence(chat);
      renderComposerState(chat);
    }
    if (!known || !chat.ui.wrapupForm) chatNotice(chat, t("chats.ended_owed"), "warn");
    // Rather than an empty box: this page never had the conversation to show.
    if (!known) chat.ui.log.append(h("li", { class: "muted", text: t("chats.owed_not_shown") }));
    // A form already on screen keeps what was ticked.
    if (!chat.wrapup || !chat.ui.wrapupForm) {
      chat.wrapup = frame;
      renderWrapup(chat);
    }
    if (!state.selected) select(chat.id, false);
    return chat;
  }

  function closeChat(chatId, message) {
    const chat = state.chats.get(chatId);
    if (!chat) return;
    removeChat(chatId);
    flash(`${chat.label}: ${message}`, "warn");
  }

  function removeChat(chatId) {
    const chat = state.chats.get(chatId);
    if (!chat) return;
    // A dialog about this chat has nothing left to act on.
    for (const dialog of [transferDialog, helpDialog, confirmDialog, codeDialog, referralDialog, timesDialog]) {
      if (dialog.open && dialog.dataset.chat === chatId) dialog.close();
    }
    clearTimeout(chat.typingTimer);
    kept.drafts.delete(chatId);
    state.chats.delete(chatId);
    state.order = state.order.filter((id) => id !== chatId);
    chat.ui.panel.remove();
    chat.ui.tab.remove();
    if (state.selected === chatId) {
      state.selected = null;
      const next = state.order[0];
      if (next) select(next, false);
    }
    renderTabs();
  }

  function addEntry(chat, entry) {
    if (typeof entry.seq !== "number" || chat.entries.has(entry.seq)) return;
    chat.entries.set(entry.seq, entry);
    const item = renderEntry(chat, entry);
    item.dataset.seq = String(entry.seq);
    // In sequence order, whatever order a resume brought them in.
    const later = [...chat.ui.log.children].find((el) => el.dataset.seq && Number(el.dataset.seq) > entry.seq);
    chat.ui.log.insertBefore(item, later ?? chat.ui.pendingAnchor);
    if (entry.type === "chat.ended") {
      chat.ended = true;
      chat.ui.typing.hidden = true;
      chat.graceUntil = null;
      renderPresence(chat);
      renderComposerState(chat);
    }
    if (entry.type === "message" && entry.sender === "visitor") {
      chat.ui.typing.hidden = true;
      const seen = (state.selected === chat.id && !root.hidden && !document.hidden) || entry.seq <= (chat.quietUntil ?? 0);
      if (!seen) {
        chat.unread += 1;
        renderTabs();
      }
    }
    if (entry.type === "interpreter.joined") {
      chat.interpreter = entry.name;
      chat.interpreterAsked = false;
      chat.ui.notices.replaceChildren();
      renderInterpreter(chat);
    }
    if (entry.type === "interpreter.left") {
      chat.interpreter = null;
      renderInterpreter(chat);
      // The interpreter's own view of a chat they are out of closes, saying why.
      if (chat.interpreting) {
        const key = `chats.interpreter_out.${entry.reason}`;
        setTimeout(() => closeChat(chat.id, t(key) === key ? t("chats.interpreter_out.left") : t(key)), 0);
      }
    }
    if (entry.type === "whisper") chatNotice(chat, t("chats.whisper_arrived", { name: entry.name }), "warn");
    if (entry.type === "handover") chatNotice(chat, t("care.handover_arrived"), "ok");
    if (entry.type === "continuity.offered") care.offered(chat);
    if (entry.type === "continuity.accepted") {
      chatNotice(chat, t("care.code_taken"), "ok");
      care.codeTaken(chat);
    }
    // The visitor holds a code of this chat: times for a booked chat may be offered.
    if (CODE_ENTRIES.includes(entry.type) && !chat.hasCode) {
      chat.hasCode = true;
      renderComposerState(chat);
    }
    if (entry.type === "booking.offered") booking.offered(chat);
    if (entry.type === "booking.missed") chatNotice(chat, t("booking.missed_entry"), "warn");
    scrollDown(chat);
  }

  function select(chatId, focus = true) {
    const chat = state.chats.get(chatId);
    if (!chat) return;
    state.selected = chatId;
    kept.selected = chatId;
    chat.unread = 0;
    chat.fresh = false;
    for (const other of state.chats.values()) other.ui.panel.hidden = other.id !== chatId;
    emptyPanel.hidden = true;
    renderTabs();
    scrollDown(chat);
    if (focus) chat.ui.input.focus();
  }

  // --- Rendering ----------------------------------------------------------------------------

  function showConnection(s) {
    connection.className = `connection ${s}`;
    connection.textContent = t(`chats.connection.${s}`);
  }

  function renderShift() {
    const onDuty = state.lines.filter((line) => line.on_duty);
    if (!onDuty.length) {
      shift.textContent = t("chats.off_duty");
      shift.className = "shift off";
      return;
    }
    shift.className = "shift";
    // In the line's zone, as the roster has it; with the zone's name when it is not the browser's.
    shift.textContent = onDuty
      .map((line) => {
        const zone = zoneLabel(line.time_zone, line.on_duty_until * 1000);
        const until = clockIn(line.on_duty_until * 1000, line.time_zone);
        const since = line.on_duty_since ? clockIn(line.on_duty_since * 1000, line.time_zone) : "";
        return t("chats.on_duty", { line: line.name, since, until: zone ? `${until} ${zone}` : until });
      })
      .join(" · ");
  }

  function renderQueues() {
    // Drawn again every second while someone waits: the link in focus keeps the focus.
    const focused = queueList.contains(document.activeElement) ? document.activeElement.dataset.key : null;
    queueList.replaceChildren(
      ...state.lines.map((line) => {
        const q = state.queues.get(line.key) ?? { waiting: 0, longest_wait_seconds: 0, received: Date.now() };
        const longest = q.waiting ? q.longest_wait_seconds + Math.round((Date.now() - q.received) / 1000) : 0;
        return h(
          "li",
          { class: `queue-card${q.waiting ? " waiting" : ""}`, dataset: { line: line.key } },
          h("span", { class: "queue-line", text: line.name }),
          h("span", { class: "queue-count", text: t("chats.waiting", { count: q.waiting }) }),
          h("span", { class: "queue-wait", text: q.waiting ? t("chats.longest_wait", { time: duration(longest) }) : t("chats.nobody_waiting") }),
          // Visitors who wait for an answer to an offer count as waiting (`offered` of them).
          q.offered ? h("span", { class: "queue-wait", text: t("chats.offered_now", { count: q.offered }) }) : null,
          // Why a waiting chat is not offered to whoever is free: the wish it waits for.
          ...(q.held ?? []).map((held) => h("span", { class: "queue-wait queue-held", dataset: { held: held.reason }, text: heldText(held) })),
          // Letters in the line's mailbox waiting for an answer (unclaimed, or the visitor wrote last).
          q.mailbox_waiting ? h("a", { class: "queue-mailbox", href: "#/mailbox", dataset: { key: `mailbox:${line.key}` }, text: t("mailbox.letters_waiting", { count: q.mailbox_waiting }) }) : null,
          line.on_duty ? null : h("span", { class: "tag off", text: t("chats.not_on_duty") }),
          line.practice ? h("span", { class: "tag practice", text: t("chats.practice") }) : null,
          takeButton(line, q),
        );
      }),
    );
    if (focused) queueList.querySelector(`[data-key="${CSS.escape(focused)}"]`)?.focus();
  }

  // "Take the next chat" on a line whose chats are taken (setting `assignment`): the first
  // waiting chat this counsellor may answer; the server says why when there is none.
  function takeButton(line, q) {
    if (!line.on_duty || (line.assignment ?? "offered") === "offered") return null;
    const button = h("button", { type: "button", class: `take-next${q.waiting ? " primary" : ""}`, dataset: { key: `take:${line.key}` }, text: t("chats.take_next") });
    button.addEventListener("click", () => {
      state.lastAction.take = line.key;
      socket.send({ type: "take", line: line.key });
    });
    return button;
  }

  function heldText(held) {
    const key = `chats.held.${held.reason}`;
    const vars = { count: held.count, time: clock(held.until), language: held.language ? languageName(held.language) : "" };
    return t(key) === key ? t("chats.held.other", vars) : t(key, vars);
  }

  function renderOffers() {
    noOffers.hidden = state.offers.size > 0;
    const focused = document.activeElement?.dataset?.key;
    offerList.replaceChildren(
      ...[...state.offers.values()].map((offer, index) => {
        const left = Math.max(0, Math.ceil((offer.deadline - performance.now()) / 1000));
        const accept = h("button", { type: "button", class: "primary", "aria-keyshortcuts": index === 0 ? "Alt+A" : null, dataset: { key: `accept:${offer.chat_id}` } }, t("chats.accept"), index === 0 ? h("kbd", { class: "key-hint", text: "Alt+A" }) : null);
        accept.addEventListener("click", () => acceptOffer(offer.chat_id));
        const decline = h("button", { type: "button", text: t("chats.decline"), dataset: { key: `decline:${offer.chat_id}` } });
        decline.addEventListener("click", () => {
          const kind = offer.interpreting ? "interpreter.decline" : "decline";
          state.lastAction[kind] = offer.chat_id;
          if (offer.interpreting && socket.send({ type: kind, chat_id: offer.chat_id })) {
            state.offers.delete(offer.chat_id);
            renderOffers();
          } else if (!offer.interpreting) socket.send({ type: kind, chat_id: offer.chat_id });
        });
        const progress = h("progress", { max: String(offer.timeout_seconds), value: String(left), "aria-label": t("chats.time_left") });
        const card = h(
          "li",
          { class: `offer-card${offer.fresh ? " fresh" : ""}`, dataset: { chat: offer.chat_id } },
          offer.interpreting
            ? h("p", { class: "offer-title" }, h("strong", { text: t("chats.interpreter_offer", { language: languageName(offer.language) }) }), " · ", h("span", { text: offer.line_name || offer.line }))
            : h("p", { class: "offer-title" }, h("strong", { text: offer.line_name || offer.line }), " · ", h("span", { text: languageName(offer.language) }), lineOf(offer.line)?.practice ? h("span", { class: "tag practice", text: t("chats.practice") }) : null),
          offer.interpreting
            ? h("p", { class: "offer-meta", text: t("chats.interpreter_offer_from", { name: offer.counsellor ?? "" }) })
            : h("p", { class: "offer-meta", text: t("chats.offer_waited", { time: duration(offer.waited_seconds) }) }),
          offer.interpreter_available ? h("span", { class: "tag interpreter", text: t("chats.interpreter_available", { language: languageName(offer.language) }) }) : null,
          offer.transfer ? h("span", { class: "tag", text: t("chats.transfer_tag") }) : null,
          offer.peer_requested ? h("span", { class: "tag", text: t("chats.peer_tag") }) : null,
          offer.continuity ? h("span", { class: "tag returning", text: t("care.returning_tag") }) : null,
          risk.offerTags(offer),
          offer.booked ? h("span", { class: "tag returning", text: t("booking.booked_tag") }) : null,
          h("p", { class: "countdown", dataset: { countdown: offer.chat_id }, text: t("chats.expires_in", { seconds: left }) }),
          progress,
          h("div", { class: "actions" }, accept, decline),
        );
        offer.fresh = false;
        return card;
      }),
    );
    if (focused) offerList.querySelector(`[data-key="${CSS.escape(focused)}"]`)?.focus();
    updateBadge();
    document.title = document.title.replace(/^\(\d+\) /, "");
    if (state.offers.size) document.title = `(${state.offers.size}) ${document.title}`;
  }

  function acceptOffer(chatId) {
    if (state.offers.get(chatId)?.interpreting) {
      state.lastAction["interpreter.accept"] = chatId;
      socket.send({ type: "interpreter.accept", chat_id: chatId });
      return;
    }
    state.lastAction.accept = chatId;
    socket.send({ type: "accept", chat_id: chatId });
  }

  function renderTabs() {
    noChats.hidden = state.order.length > 0;
    for (const id of state.order) {
      const chat = state.chats.get(id);
      const tab = chat.ui.tab;
      const selected = state.selected === id;
      tab.setAttribute("aria-selected", String(selected));
      tab.tabIndex = selected || (!state.selected && id === state.order[0]) ? 0 : -1;
      chat.ui.tabUnread.hidden = chat.unread === 0;
      chat.ui.tabUnread.textContent = t("chats.unread", { count: chat.unread });
      chat.ui.tabNew.hidden = !chat.fresh || chat.unread > 0;
      chat.ui.tabState.textContent = chat.ended ? t("chats.tab_ended") : chat.visitorConnected ? "" : t("chats.tab_away");
      tabList.append(tab);
    }
    renderEmpty();
    updateBadge();
  }

  function renderEmpty() {
    // The next step from where the counsellor is: a chat to open, offers to wait for, or a
    // status to set (open chats from another tab or before a reload are not opened by themselves).
    const key = state.order.length ? "chats.empty_choose" : state.status === "available" ? "chats.empty_available" : "chats.empty";
    emptyText.textContent = t(key);
  }

  function updateBadge() {
    // The shell paints the navigation's badge (and paints it again after a redraw).
    const unread = [...state.chats.values()].reduce((sum, chat) => sum + (chat.unread || (chat.fresh ? 1 : 0)), 0) + state.offers.size;
    ctx.emit("unread", { route: "chats", count: unread });
  }

  function buildChat(chat) {
    const tabId = nextId("chat-tab");
    const panelId = nextId("chat-panel");
    const tabUnread = h("span", { class: "badge", hidden: true });
    // A chat that opened while another was on screen, not looked at yet.
    const tabNew = h("span", { class: "badge new", hidden: true, text: t("chats.tab_new") });
    const tabState = h("span", { class: "tab-state" });
    const tab = h("button", { type: "button", role: "tab", id: tabId, "aria-controls": panelId, "aria-selected": "false", class: "chat-tab", dataset: { chat: chat.id } }, h("span", { class: "tab-label", text: chat.label }), lineOf(chat.line)?.practice ? h("span", { class: "tag practice", text: t("chats.practice") }) : null, tabState, tabNew, tabUnread);
    tab.addEventListener("click", () => select(chat.id));
    tab.addEventListener("keydown", (event) => {
      if (event.key === "ArrowDown" || event.key === "ArrowUp") {
        event.preventDefault();
        const next = neighbour(chat.id, event.key === "ArrowDown" ? 1 : -1);
        if (next) {
          select(next, false);
          state.chats.get(next).ui.tab.focus();
        }
      }
    });

    const presence = h("div", { class: "visitor-away", role: "status", hidden: true });
    const log = h("ol", { class: "transcript" });
    const pendingAnchor = h("li", { class: "pending-anchor", hidden: true });
    log.append(pendingAnchor);
    const typing = h("p", { class: "typing", hidden: true, text: t("chats.visitor_typing") });
    const chatNotices = h("div", { class: "chat-notices" });

    const cannedSelect = h("select", { id: nextId("canned") });
    const cannedInsert = h("button", { type: "button", class: "small", text: t("chats.insert") });
    const canned = h("div", { class: "canned" }, h("label", { for: cannedSelect.id, text: t("chats.canned") }), cannedSelect, cannedInsert);
    cannedInsert.addEventListener("click", () => insertCanned(chat));

    const input = h("textarea", { id: nextId("message"), name: "text", rows: "3", "aria-keyshortcuts": "Alt+M", "aria-describedby": "" });
    const hint = h("p", { class: "hint", id: `${input.id}-hint`, text: t("chats.composer_hint") });
    input.setAttribute("aria-describedby", hint.id);
    const composerError = h("p", { class: "field-error", hidden: true, id: `${input.id}-error` });
    const gapNote = h("p", { class: "gap-note", hidden: true, id: `${input.id}-gap` });
    const send = h("button", { type: "submit", class: "primary", text: t("chats.send") });
    const composer = h(
      "form",
      { class: "composer", novalidate: true },
      canned,
      h("div", { class: "field" }, h("label", { for: input.id, text: t("chats.message") }), hint, input, gapNote, composerError),
      h("div", { class: "actions" }, send),
    );
    composer.addEventListener("submit", (event) => {
      event.preventDefault();
      sendMessage(chat);
    });
    input.addEventListener("keydown", (event) => {
      if (event.key === "Enter" && !event.shiftKey && !event.altKey && !event.isComposing) {
        event.preventDefault();
        sendMessage(chat);
      }
    });
    input.addEventListener("input", () => {
      typingChanged(chat);
      chat.gapper.typed();
    });

    const noteInput = h("textarea", { id: nextId("note"), name: "note", rows: "2" });
    const noteError = h("p", { class: "field-error", hidden: true });
    const noteSave = h("button", { type: "submit", class: "small", text: t("chats.note_save") });
    const noteForm = h(
      "form",
      { class: "note-form", novalidate: true },
      h("div", { class: "field" }, h("label", { for: noteInput.id, text: t("chats.note") }), h("p", { class: "hint", text: t("chats.note_hint") }), noteInput, noteError),
      h("div", { class: "actions" }, noteSave),
    );
    noteForm.addEventListener("submit", (event) => {
      event.preventDefault();
      const text = noteInput.value;
      if (!text.trim()) return;
      state.lastAction.note = chat.id;
      if (socket.send({ type: "note", chat_id: chat.id, text })) {
        noteInput.value = "";
        noteError.hidden = true;
      }
    });

    const transfer = h("button", { type: "button", text: t("chats.transfer") });
    transfer.addEventListener("click", () => {
      state.lastAction["transfer.options"] = chat.id;
      socket.send({ type: "transfer.options", chat_id: chat.id });
    });
    const help = h("button", { type: "button", text: t("chats.ask_supervisor") });
    help.addEventListener("click", () => askHelp(chat));
    const block = h("button", { type: "button", class: "danger", text: t("chats.block") });
    block.addEventListener("click", () =>
      confirmAction(t("chats.block_title"), t("chats.block_text"), t("chats.block_confirm"), () => {
        state.lastAction.block = chat.id;
        socket.send({ type: "block", chat_id: chat.id });
      }, chat.id),
    );
    const end = h("button", { type: "button", class: "danger", "aria-keyshortcuts": "Alt+E" }, t("chats.end"), h("kbd", { class: "key-hint", text: "Alt+E" }));
    end.addEventListener("click", () => endChat(chat));
    const offerCode = h("button", { type: "button", text: t("care.offer_code") });
    offerCode.addEventListener("click", () => care.offerCode(chat));
    const refer = h("button", { type: "button", text: t("care.refer") });
    refer.addEventListener("click", () => care.refer(chat));
    // Interpreters: the counsellor asks for one in the visitor's language, or removes them;
    // the interpreter leaves.
    const askInterpreter = h("button", { type: "button", text: t("chats.interpreter_ask") });
    askInterpreter.addEventListener("click", () => {
      state.lastAction["interpreter.request"] = chat.id;
      socket.send({ type: "interpreter.request", chat_id: chat.id });
    });
    const removeInterpreter = h("button", { type: "button", hidden: true, text: t("chats.interpreter_remove") });
    removeInterpreter.addEventListener("click", () => {
      state.lastAction["interpreter.remove"] = chat.id;
      socket.send({ type: "interpreter.remove", chat_id: chat.id });
    });
    const leaveInterpreting = h("button", { type: "button", class: "danger", hidden: true, text: t("chats.interpreter_leave") });
    leaveInterpreting.addEventListener("click", () => {
      state.lastAction["interpreter.leave"] = chat.id;
      socket.send({ type: "interpreter.leave", chat_id: chat.id });
    });
    const interpreterLine = h("p", { class: "interpreter-line", hidden: true });
    const offerTimes = h("button", { type: "button", hidden: true, text: t("booking.offer_times") });
    offerTimes.addEventListener("click", () => booking.offerTimes(chat));
    const actions = h("div", { class: "chat-actions" }, refer, offerCode, offerTimes, askInterpreter, removeInterpreter, transfer, help, block, end, leaveInterpreting);
    const noteBox = h("details", { class: "note-box" }, h("summary", { text: t("chats.note_summary") }), noteForm);
    const wrapup = h("div", { class: "wrapup", hidden: true });

    const heading = h("h2", { class: "chat-title", text: chat.label });
    const meta = h("p", { class: "chat-meta muted" }, h("span", { text: languageName(chat.language) }), chat.peerRequested ? h("span", { class: "tag peer", text: t("chats.peer_tag") }) : null);
    const panel = h(
      "section",
      { class: "chat-panel", role: "tabpanel", id: panelId, "aria-labelledby": tabId, hidden: true, dataset: { chat: chat.id } },
      h("div", { class: "chat-head" }, heading, meta),
      interpreterLine,
      presence,
      chatNotices,
      h("div", { class: "chat-body", role: "log", tabindex: "0", "aria-live": "polite", "aria-label": t("chats.conversation") }, log),
      typing,
      wrapup,
      composer,
      actions,
      noteBox,
    );
    panels.append(panel);
    chat.gapper = cannedComposer(ctx, input, gapNote);
    chat.ui = { tab, tabUnread, tabNew, tabState, panel, log, pendingAnchor, typing, presence, notices: chatNotices, input, composer, composerError, gapNote, cannedSelect, canned, noteInput, noteError, noteBox, actions, transfer, help, end, refer, offerCode, offerTimes, wrapup, send, heading, block, askInterpreter, removeInterpreter, leaveInterpreting, interpreterLine };
    const draft = kept.drafts.get(chat.id);
    if (draft) {
      input.value = draft.text;
      noteInput.value = draft.note;
    }
    renderCanned(chat);
    risk.attach(chat);
  }

  function renderCanned(chat) {
    if (!chat.ui) return;
    const responses = lineOf(chat.line)?.canned_responses ?? [];
    chat.ui.canned.hidden = responses.length === 0;
    chat.ui.cannedSelect.replaceChildren(...cannedOptions(t, responses, chat.language).filter(Boolean));
  }

  // A canned response goes into the box for editing (chat-helpers.js: {name} and gaps).
  function insertCanned(chat) {
    const responses = lineOf(chat.line)?.canned_responses ?? [];
    const picked = responses[Number(chat.ui.cannedSelect.value)];
    if (chat.ui.cannedSelect.value === "" || !picked) return;
    chat.gapper.insert(picked.text, state.staff?.alias);
    chat.ui.cannedSelect.value = "";
  }

  function renderEntry(chat, entry) {
    const at = entry.at ? h("time", { class: "at", text: clock(entry.at) }) : null;
    if (entry.type === "message") {
      const mine = entry.sender === "counsellor";
      const interpreter = entry.sender === "interpreter";
      const who = interpreter ? t("chats.interpreter_label", { name: entry.name ?? "" }) : mine ? entry.name || t("chats.counsellor") : t("chats.visitor");
      return h("li", { class: `entry message ${interpreter ? "from-interpreter" : mine ? "from-staff" : "from-visitor"}` }, h("p", { class: "entry-head" }, h("span", { class: "entry-who", text: who }), at), h("p", { class: "text", text: entry.text }));
    }
    if (entry.type === "note") {
      return h("li", { class: "entry note" }, h("p", { class: "entry-head" }, h("span", { class: "entry-who", text: t("chats.note_from", { name: entry.name }) }), at), h("p", { class: "text", text: entry.text }));
    }
    if (CARE_ENTRIES.includes(entry.type)) return careEntry(ctx, entry, at);
    if (BOOKING_ENTRIES.includes(entry.type)) return bookingEntry(ctx, entry, at, lineOf(chat.line)?.time_zone);
    if (entry.type === "whisper") {
      return h("li", { class: "entry whisper" }, h("p", { class: "entry-head" }, h("span", { class: "entry-who", text: t("chats.whisper_from", { name: entry.name }) }), at), h("p", { class: "text", text: entry.text }));
    }
    let text;
    if (entry.type === "counsellor.joined") text = t("chats.joined", { name: entry.name });
    else if (entry.type === "counsellor.left") text = t("chats.left", { reason: reasonText(entry.reason) });
    else if (entry.type === "interpreter.joined") text = t("chats.interpreter_joined", { name: entry.name ?? "", language: languageName(entry.language) });
    else if (entry.type === "interpreter.left") text = t(`chats.interpreter_left.${entry.reason}`) === `chats.interpreter_left.${entry.reason}` ? t("chats.interpreter_left.left", { name: entry.name ?? "" }) : t(`chats.interpreter_left.${entry.reason}`, { name: entry.name ?? "" });
    else text = t("chats.ended_entry", { reason: reasonText(entry.reason) });
    return h("li", { class: "entry system" }, h("p", {}, h("span", { text }), " ", at));
  }

  function reasonText(reason) {
    const key = `chats.reason.${reason}`;
    const text = t(key);
    return text === key ? String(reason ?? "") : text;
  }

  function renderPresence(chat) {
    if (!chat.ui) return;
    const away = !chat.ended && !chat.visitorConnected && chat.graceUntil;
    chat.ui.presence.hidden = !away;
    if (away) {
      const left = Math.max(0, Math.round(chat.graceUntil - Date.now() / 1000));
      chat.ui.presence.textContent = t("chats.visitor_away", { time: clock(chat.graceUntil), left: duration(left) });
    }
    renderTabs();
  }

  function renderComposerState(chat) {
    const ended = chat.ended;
    chat.ui.composer.hidden = ended;
    chat.ui.transfer.hidden = ended;
    chat.ui.help.hidden = ended;
    chat.ui.end.hidden = ended;
    // Cards, codes and notes belong to a running chat (the server refuses them after the end);
    // blocking an abusive visitor stays possible.
    chat.ui.refer.hidden = ended;
    chat.ui.offerCode.hidden = ended;
    chat.ui.offerTimes.hidden = ended || !chat.hasCode;
    chat.ui.noteBox.hidden = ended;
    if (chat.interpreting) {
      // An interpreter writes and leaves; everything else is the counsellor's.
      for (const part of ["transfer", "help", "end", "refer", "offerCode", "offerTimes", "noteBox", "block", "canned"]) chat.ui[part].hidden = true;
    }
    renderInterpreter(chat);
  }

  function renderInterpreter(chat) {
    const ui = chat.ui;
    if (!ui) return;
    const live = !chat.ended;
    ui.askInterpreter.hidden = chat.interpreting || !live || Boolean(chat.interpreter) || Boolean(chat.interpreterAsked);
    ui.removeInterpreter.hidden = chat.interpreting || !live || !chat.interpreter;
    ui.leaveInterpreting.hidden = !chat.interpreting || !live;
    const line = chat.interpreting
      ? t("chats.interpreting_line", { language: languageName(chat.language) })
      : chat.interpreter
        ? t("chats.interpreter_in", { name: chat.interpreter })
        : "";
    ui.interpreterLine.textContent = line;
    ui.interpreterLine.hidden = !line;
  }

  function renderWrapup(chat) {
    const frame = chat.wrapup;
    const box = chat.ui.wrapup;
    box.hidden = false;
    const { form, error } = wrapupForm(ctx, {
      topics: frame.topics,
      outcomes: frame.outcomes,
      onSubmit: (topics, outcome) => {
        state.lastAction.wrapup = chat.id;
        socket.send({ type: "wrapup", chat_id: chat.id, topics, outcome });
      },
    });
    box.replaceChildren(form);
    risk.inWrapup(chat, form);
    chat.ui.wrapupError = error;
    chat.ui.wrapupForm = form;
    chat.ui.actions.querySelector(".danger").hidden = false; // block stays possible
    if (state.selected === chat.id) form.querySelector("input")?.focus();
  }

  function chatNotice(chat, text, kind = "") {
    chat.ui.notices.replaceChildren(h("p", { class: `notice ${kind}`, text }));
    ctx.announce(text);
  }

  function flash(text, kind = "") {
    notice.replaceChildren(h("p", { class: `notice ${kind}`, text }));
    ctx.announce(text);
  }

  function scrollDown(chat) {
    const body = chat.ui.log.parentElement;
    body.scrollTop = body.scrollHeight;
  }

  // --- Actions ------------------------------------------------------------------------------

  function sendMessage(chat) {
    const input = chat.ui.input;
    const text = input.value;
    chat.ui.composerError.hidden = true;
    input.removeAttribute("aria-invalid");
    if (!text.trim() || chat.ended) return;
    const gap = chat.gapper.pending();
    if (gap) {
      input.focus();
      input.setSelectionRange(gap.start, gap.end);
      composerError(chat, t("chats.gap_left", { gap: gap.text }));
      return;
    }
    const max = lineOf(chat.line)?.max_message_length ?? 4000;
    if (text.length > max) {
      composerError(chat, t("chats.too_long", { count: text.length, max }));
      return;
    }
    state.lastAction.message = chat.id;
    const clientId = socket.sendMessage(chat.id, text);
    const element = h("li", { class: "entry message from-staff sending" }, h("p", { class: "entry-head" }, h("span", { class: "entry-who", text: state.staff?.alias ?? "" }), h("span", { class: "at", text: t("chats.sending") })), h("p", { class: "text", text }));
    chat.ui.log.append(element);
    chat.outgoing.set(clientId, { text, at: Date.now() / 1000, element });
    input.value = "";
    chat.gapper.forget();
    stopTyping(chat);
    scrollDown(chat);
  }

  function composerError(chat, message) {
    chat.ui.composerError.textContent = message;
    chat.ui.composerError.hidden = false;
    chat.ui.input.setAttribute("aria-invalid", "true");
    chat.ui.input.setAttribute("aria-describedby", `${chat.ui.input.id}-hint ${chat.ui.composerError.id}`);
    ctx.announce(message);
  }

  function typingChanged(chat) {
    const now = Date.now();
    if (now - chat.typingSent > TYPING_REFRESH_MS) {
      chat.typingSent = now;
      socket.send({ type: "typing", chat_id: chat.id, typing: true });
    }
    clearTimeout(chat.typingTimer);
    chat.typingTimer = setTimeout(() => stopTyping(chat), TYPING_IDLE_MS);
  }

  function stopTyping(chat) {
    clearTimeout(chat.typingTimer);
    if (chat.typingSent) {
      chat.typingSent = 0;
      socket.send({ type: "typing", chat_id: chat.id, typing: false });
    }
  }

  function endChat(chat) {
    if (chat.ended) return;
    confirmAction(t("chats.end_title"), t("chats.end_text"), t("chats.end_confirm"), () => {
      state.lastAction.end = chat.id;
      socket.send({ type: "end", chat_id: chat.id });
    }, chat.id);
  }

  function confirmAction(heading, text, label, onConfirm, chatId = "") {
    const yes = h("button", { type: "button", class: "danger", text: label });
    const no = h("button", { type: "button", text: t("chats.cancel") });
    yes.addEventListener("click", () => {
      confirmDialog.close();
      onConfirm();
    });
    no.addEventListener("click", () => confirmDialog.close());
    confirmDialog.replaceChildren(h("h2", { id: "confirm-title", text: heading }), h("p", { text }), h("div", { class: "actions" }, yes, no));
    confirmDialog.dataset.chat = chatId;
    confirmDialog.showModal();
    no.focus();
  }

  function askHelp(chat) {
    const input = h("textarea", { id: nextId("help"), name: "text", rows: "2", maxlength: "500" });
    const error = h("p", { class: "field-error", hidden: true, role: "alert" });
    const send = h("button", { type: "submit", class: "primary", text: t("chats.help_send") });
    const cancel = h("button", { type: "button", text: t("chats.cancel") });
    cancel.addEventListener("click", () => helpDialog.close());
    const form = h("form", { novalidate: true }, h("h2", { id: "help-title", text: t("chats.help_title") }), h("p", { text: t("chats.help_text") }), h("div", { class: "field" }, h("label", { for: input.id, text: t("chats.help_reason") }), input, error), h("div", { class: "actions" }, send, cancel));
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      state.lastAction.help = chat.id;
      socket.send({ type: "help", chat_id: chat.id, text: input.value });
    });
    helpDialog.replaceChildren(form);
    helpDialog.dataset.chat = chat.id;
    helpDialog.errorBox = error;
    helpDialog.showModal();
    input.focus();
  }

  function showTransfer(frame) {
    const chat = state.chats.get(frame.chat_id);
    if (!chat) return;
    const toLine = nextId("to-line");
    const toStaff = nextId("to-staff");
    const lineSelect = h("select", { id: nextId("line"), name: "line" }, ...frame.lines.map((line) => h("option", { value: line.key, disabled: !line.open, text: line.open ? line.name : t("chats.line_closed", { line: line.name }) })));
    const firstOpen = frame.lines.find((line) => line.open && line.key !== frame.line) ?? frame.lines.find((line) => line.open);
    if (firstOpen) lineSelect.value = firstOpen.key;
    const staffSelect = h("select", { id: nextId("staff"), name: "staff_id" }, ...frame.staff.map((s) => h("option", { value: s.id, text: t("chats.colleague", { name: s.alias, load: s.load, capacity: s.capacity, count: s.capacity }) })));
    const byLine = h("input", { type: "radio", name: "target", id: toLine, value: "line", checked: true });
    const byStaff = h("input", { type: "radio", name: "target", id: toStaff, value: "staff", disabled: frame.staff.length === 0 });
    const note = h("textarea", { id: nextId("tnote"), name: "note", rows: "3", maxlength: "2000" });
    const error = h("p", { class: "field-error", hidden: true, role: "alert" });
    const submit = h("button", { type: "submit", class: "primary", text: t("chats.transfer_send") });
    const cancel = h("button", { type: "button", text: t("chats.cancel") });
    cancel.addEventListener("click", () => transferDialog.close());
    const sync = () => {
      lineSelect.disabled = !byLine.checked;
      staffSelect.disabled = !byStaff.checked;
    };
    byLine.addEventListener("change", sync);
    byStaff.addEventListener("change", sync);
    sync();
    const form = h(
      "form",
      { novalidate: true, class: "transfer-form" },
      h("h2", { id: "transfer-title", text: t("chats.transfer_title", { chat: chat.label }) }),
      h("fieldset", {}, h("legend", { text: t("chats.transfer_to") }),
        h("div", { class: "check" }, byLine, h("label", { for: toLine, text: t("chats.to_line") })),
        h("div", { class: "field" }, h("label", { for: lineSelect.id, text: t("chats.line") }), lineSelect),
        h("div", { class: "check" }, byStaff, h("label", { for: toStaff, text: frame.staff.length ? t("chats.to_colleague") : t("chats.no_colleague") })),
        h("div", { class: "field" }, h("label", { for: staffSelect.id, text: t("chats.colleague_label") }), staffSelect)),
      h("div", { class: "field" }, h("label", { for: note.id, text: t("chats.transfer_note") }), h("p", { class: "hint", text: t("chats.note_hint") }), note),
      error,
      h("div", { class: "actions" }, submit, cancel),
    );
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      const body = { type: "transfer", chat_id: chat.id, note: note.value };
      if (byStaff.checked) body.staff_id = staffSelect.value;
      else body.line = lineSelect.value;
      state.lastAction.transfer = chat.id;
      socket.send(body);
    });
    transferDialog.replaceChildren(form);
    transferDialog.dataset.chat = chat.id;
    transferDialog.errorBox = error;
    transferDialog.showModal();
    (byLine.checked ? lineSelect : staffSelect).focus();
  }

  function showError(frame) {
    const ref = frame.ref;
    // Supervisor frames are the supervisor screen's business; a sync of a chat that ended
    // meanwhile has nothing to restore.
    if (["sync", "live", "observe", "unobserve", "whisper", "takeover", "team"].includes(ref)) return;
    const chat = state.chats.get(frame.chat_id ?? state.lastAction[ref]);
    if (frame.code === "no_interpreter" && chat) {
      chat.interpreterAsked = false;
      renderInterpreter(chat);
    }
    const nobody = frame.reason === "busy" ? "chats.error.interpreters_busy" : "chats.error.no_interpreter";
    const message = frame.code === "no_interpreter" ? t(nobody, { language: languageName(frame.language ?? chat?.language ?? "") }) : errorText(frame);
    if (ref === "accept") {
      const chatId = state.lastAction.accept;
      // Another tab of ours may have won the race: the chat then opens here as well (its
      // frame may come a moment after this refusal), and there is nothing to say.
      setTimeout(() => {
        if (state.chats.has(chatId)) return;
        state.offers.delete(chatId);
        renderOffers();
        flash(t("chats.offer_gone"), "warn");
      }, ACCEPT_RACE_MS);
      return;
    }
    if (ref === "transfer" && transferDialog.open) {
      transferDialog.errorBox.textContent = message;
      transferDialog.errorBox.hidden = false;
      return;
    }
    if (ref === "help" && helpDialog.open) {
      helpDialog.errorBox.textContent = message;
      helpDialog.errorBox.hidden = false;
      return;
    }
    if (ref === "message" && chat) {
      composerError(chat, message);
      return;
    }
    if (ref === "wrapup" && chat?.ui.wrapupError) {
      chat.ui.wrapupError.textContent = message;
      chat.ui.wrapupError.hidden = false;
      return;
    }
    if (care.showError(ref, message)) return;
    if (booking.showError(ref, message)) return;
    if (ref === "note" && chat) {
      chat.ui.noteError.textContent = message;
      chat.ui.noteError.hidden = false;
      return;
    }
    if (chat) chatNotice(chat, message, "warn");
    else flash(message, "warn");
  }

  function errorText(frame) {
    const key = `chats.error.${frame.code}`;
    const known = t(key);
    if (frame.code === "invalid_field" && /outcome/.test(frame.message)) return t("chats.error.outcome_missing");
    return known === key ? frame.message : known;
  }

  // --- Keyboard shortcuts -------------------------------------------------------------------

  function neighbour(chatId, step) {
    const index = state.order.indexOf(chatId);
    if (index < 0 || state.order.length < 2) return null;
    return state.order[(index + step + state.order.length) % state.order.length];
  }

  function onKey(event) {
    if (root.hidden || !event.altKey || event.ctrlKey || event.metaKey) return;
    if (document.querySelector("dialog[open]")) return;
    const chat = state.chats.get(state.selected);
    switch (event.code) {
      case "KeyA": {
        const first = [...state.offers.keys()][0];
        if (first) {
          event.preventDefault();
          acceptOffer(first);
        }
        break;
      }
      case "KeyN":
      case "KeyP": {
        const next = state.selected ? neighbour(state.selected, event.code === "KeyN" ? 1 : -1) : state.order[0];
        if (next) {
          event.preventDefault();
          select(next);
        }
        break;
      }
      case "KeyE":
        if (chat) {
          event.preventDefault();
          endChat(chat);
        }
        break;
      case "KeyM":
        if (chat) {
          event.preventDefault();
          chat.ui.input.focus();
        }
        break;
      default:
    }
  }
  document.addEventListener("keydown", onKey);

  // --- Clocks -------------------------------------------------------------------------------

  const ticker = setInterval(() => {
    for (const [chatId, offer] of state.offers) {
      const left = Math.max(0, Math.ceil((offer.deadline - performance.now()) / 1000));
      const text = offerList.querySelector(`[data-countdown="${CSS.escape(chatId)}"]`);
      if (text) text.textContent = t("chats.expires_in", { seconds: left });
      const bar = text?.parentElement.querySelector("progress");
      if (bar) bar.value = left;
    }
    for (const chat of state.chats.values()) {
      if (!chat.visitorConnected && chat.graceUntil && !chat.ended) {
        const left = Math.max(0, Math.round(chat.graceUntil - Date.now() / 1000));
        chat.ui.presence.textContent = t("chats.visitor_away", { time: clock(chat.graceUntil), left: duration(left) });
      }
    }
    if ([...state.queues.values()].some((q) => q.waiting)) renderQueues();
  }, 1000);

  const visible = () => {
    const chat = state.chats.get(state.selected);
    if (chat && !root.hidden && !document.hidden && chat.unread) {
      chat.unread = 0;
      renderTabs();
    }
  };
  document.addEventListener("visibilitychange", visible);
  const observer = new MutationObserver(visible);
  observer.observe(root, { attributes: true, attributeFilter: ["hidden"] });

  // A socket opened before this view (e.g. by the supervisor's screen) has said hello
  // already: catch up from what it remembers, and read each open chat from the start.
  showConnection(socket.state);
  if (socket.hello) {
    const snap = socket.snapshot;
    state.staff = socket.hello.staff;
    setLines(snap.lines);
    setStatus(snap.status);
    for (const offer of snap.offers.values()) addOffer(offer, false);
    renderOffers();
    for (const summary of snap.chats.values()) {
      const chat = openChat(summary, false);
      // Read again from the start; what was seen before is not unread.
      chat.quietUntil = Math.max(summary.last_seq ?? 0, socket.lastSeq.get(chat.id) ?? 0);
      if (!snap.wrapups.has(summary.chat_id) && !socket.send({ type: "sync", chat_id: summary.chat_id, last_seq: 0 })) {
        // Reconnecting right now: read it from the start once the connection is back.
        state.fullSync.add(summary.chat_id);
      }
    }
    for (const frame of snap.wrapups.values()) {
      const chat = state.chats.get(frame.chat_id);
      if (chat) {
        chat.ended = true;
        chat.wrapup = frame;
        renderComposerState(chat);
        renderWrapup(chat);
      } else {
        // Its summary went with a later hello: the chat ended while the socket was away.
        showOwedWrapup(frame);
      }
    }
    const again = state.chats.has(kept.selected) ? kept.selected : state.order[0];
    if (again) select(again, false);
  }


  return () => {
    for (const chat of state.chats.values()) {
      kept.drafts.set(chat.id, { text: chat.ui.input.value, note: chat.ui.noteInput.value });
    }
    for (const stop of off) stop();
    risk.stop();
    booked.stop();
    clearInterval(ticker);
    observer.disconnect();
    document.removeEventListener("keydown", onKey);
    document.removeEventListener("visibilitychange", visible);
  };
}

// --- Helpers ----------------------------------------------------------------------------------

let audio = null;

// Browsers start audio only after the person has interacted with the page (a reload keeps the
// session but not that permission): the first click or key readies the chime.
function unlockAudio() {
  try {
    audio = audio ?? new AudioContext();
    if (audio.state === "suspended") audio.resume();
  } catch {
    // No audio here; the visual cue remains.
  }
}
document.addEventListener("pointerdown", unlockAudio, { once: true });
document.addEventListener("keydown", unlockAudio, { once: true });

// A short two-note chime made on the spot (no sound file); quiet, under half a second.
function chime() {
  try {
    audio = audio ?? new AudioContext();
    if (audio.state === "suspended") audio.resume();
    const start = audio.currentTime + 0.01;
    for (const [offset, frequency] of [[0, 660], [0.18, 880]]) {
      const osc = audio.createOscillator();
      const gain = audio.createGain();
      osc.frequency.value = frequency;
      gain.gain.setValueAtTime(0.0001, start + offset);
      gain.gain.exponentialRampToValueAtTime(0.2, start + offset + 0.02);
      gain.gain.exponentialRampToValueAtTime(0.0001, start + offset + 0.25);
      osc.connect(gain).connect(audio.destination);
      osc.start(start + offset);
      osc.stop(start + offset + 0.3);
    }
  } catch {
    // No audio (a policy or no device): the visual cue and the announcement remain.
  }
}
