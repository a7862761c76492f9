// The counsellor's mailbox (docs/mailbox.md): per line, the threads waiting for an answer,
// oldest first with how long they have waited, and the counsellor's own threads. Claiming a
// thread makes it theirs; they read it, answer (canned responses, referral cards), add
// staff-only notes and close it with the line's wrap-up. Letters are put in as text
// (textContent), never HTML; a draft lives in this page's memory only.

import { formatDateTime, formatDay, h, nextId, problemText } from "../core.js";
import { staffSocket } from "../socket.js";
import { addStylesheet, cannedComposer, cannedOptions, wrapupForm } from "../chat-helpers.js";
import { cardView, referralSearch } from "../care.js";

const REFRESH_MS = 30000;

// Drafts per thread and the thread on screen outlive one drawing of the screen (a language
// change, a look at another screen). Page memory only, never browser storage.
const kept = { drafts: new Map(), notes: new Map(), open: null };

export function mount(root, ctx) {
  addStylesheet();
  addMailboxStylesheet();
  const t = (key, vars) => ctx.t(key, vars);
  const socket = staffSocket(ctx);
  const state = {
    lines: [],
    lists: new Map(), // line key -> {waiting, mine, at}
    mailboxWaiting: new Map(), // line key -> the queue card's count, to notice changes
    thread: null, // the StaffThread on screen
    loading: 0,
  };
  let alive = true;
  const off = [];

  // --- Layout -------------------------------------------------------------------------------

  const notice = h("div", { class: "chats-notice", id: "mailbox-notice", role: "status" });
  const side = h("aside", { class: "chats-side mailbox-side", "aria-label": t("mailbox.lists") });
  const emptyPanel = h("div", { class: "chat-empty" }, h("p", { text: t("mailbox.empty") }));
  const panels = h("div", { class: "chats-main" }, emptyPanel);
  root.append(
    h("header", { class: "chats-head" },
      h("div", { class: "chats-head-main" },
        h("h1", { id: "view-mailbox-title", text: t("nav.mailbox") }),
        h("p", { class: "muted mailbox-intro", text: t("mailbox.intro") }))),
    notice,
    h("div", { class: "chats-layout" }, side, panels),
  );
  const referralDialog = h("dialog", { class: "chats-dialog wide", "aria-labelledby": "referral-title" });
  root.append(referralDialog);

  function flash(text, kind = "") {
    notice.replaceChildren(text ? h("p", { class: `notice ${kind}`, text }) : "");
    if (text) ctx.announce(text);
  }

  // --- Lines and lists ------------------------------------------------------------------------

  // The counsellor's lines come with the staff WebSocket's hello: names, canned responses,
  // wrap-up lists and message limits.
  function setLines(lines) {
    state.lines = lines ?? [];
    renderSide();
    if (state.thread) renderThread();
  }

  function lineOf(key) {
    return state.lines.find((line) => line.key === key);
  }

  function lineName(key) {
    return lineOf(key)?.name ?? key;
  }

  async function refresh() {
    const keys = state.lines.length ? state.lines.map((line) => line.key) : (ctx.me?.lines ?? []).map((line) => line.key);
    state.loading += 1;
    const mine = state.loading;
    const answers = await Promise.all(keys.map((key) => ctx.api("GET", `/api/mailbox?line=${encodeURIComponent(key)}`)));
    if (!alive || mine !== state.loading) return;
    const failed = answers.find((answer) => !answer.ok);
    if (failed) flash(problemText(failed), "warn");
    keys.forEach((key, index) => {
      if (answers[index].ok) state.lists.set(key, { ...answers[index].data, at: Date.now() });
    });
    renderSide();
  }

  // "waiting 2 days 3 h": whole days and hours, or hours and minutes under a day.
  function age(seconds, since) {
    const total = Math.max(0, Math.round(seconds + (Date.now() - since) / 1000));
    const days = Math.floor(total / 86400);
    const hours = Math.floor((total % 86400) / 3600);
    const minutes = Math.floor((total % 3600) / 60);
    if (days) return t("mailbox.age_days", { count: days, hours });
    if (hours) return t("mailbox.age_hours", { count: hours, minutes });
    return t("mailbox.age_minutes", { count: minutes });
  }

  function renderSide() {
    const focused = document.activeElement?.dataset?.key;
    const keys = state.lines.length ? state.lines.map((line) => line.key) : [...state.lists.keys()];
    const blocks = keys.map((key) => {
      const list = state.lists.get(key) ?? { waiting: [], mine: [], at: Date.now() };
      const titleId = nextId("mailbox-line");
      const waiting = list.waiting.map((summary, index) => {
        const claim = h("button", { type: "button", class: "primary small", dataset: { key: `claim:${summary.id}` }, "aria-describedby": `${summary.id}-age`, text: t("mailbox.claim") });
        claim.addEventListener("click", () => claimThread(summary));
        return h("li", { class: "mailbox-item waiting", dataset: { thread: summary.id } },
          h("p", { class: "mailbox-age", id: `${summary.id}-age` },
            h("strong", { text: age(summary.age_seconds ?? 0, list.at) }),
            index === 0 ? h("span", { class: "tag", text: t("mailbox.oldest") }) : null,
            summary.booked ? h("span", { class: "tag", text: t("mailbox.booked") }) : null),
          h("p", { class: "muted", text: t("mailbox.last_at", { time: formatDateTime(summary.last_at) }) }),
          h("div", { class: "actions" }, claim));
      });
      const mine = list.mine.map((summary) => {
        const open = h("button", { type: "button", class: "mailbox-open", dataset: { key: `open:${summary.id}` }, "aria-current": state.thread?.id === summary.id ? "true" : null },
          h("span", { class: `mailbox-status status-${summary.status}`, text: t(`mailbox.status.${summary.status}`) }),
          h("span", { class: "muted", text: summary.status === "waiting" && summary.age_seconds !== null ? age(summary.age_seconds, list.at) : t("mailbox.last_at", { time: formatDateTime(summary.last_at) }) }));
        open.addEventListener("click", () => openThread(summary.id));
        return h("li", { class: "mailbox-item mine", dataset: { thread: summary.id } }, open);
      });
      return h("section", { class: "side-block mailbox-line", dataset: { line: key }, "aria-labelledby": titleId },
        h("h2", { id: titleId, text: lineName(key) }),
        h("h3", { text: t("mailbox.waiting", { count: list.waiting.length }) }),
        waiting.length ? h("ol", { class: "mailbox-list", "aria-label": t("mailbox.waiting_label", { line: lineName(key) }) }, waiting) : h("p", { class: "muted", text: t("mailbox.none_waiting") }),
        h("h3", { text: t("mailbox.mine") }),
        mine.length ? h("ul", { class: "mailbox-list", "aria-label": t("mailbox.mine_label", { line: lineName(key) }) }, mine) : h("p", { class: "muted", text: t("mailbox.none_mine") }));
    });
    side.replaceChildren(...(blocks.length ? blocks : [h("p", { class: "muted", text: t("mailbox.no_lines") })]));
    if (focused) side.querySelector(`[data-key="${CSS.escape(focused)}"]`)?.focus();
  }

  // --- Actions --------------------------------------------------------------------------------

  async function claimThread(summary) {
    const answer = await ctx.api("POST", `/api/mailbox/${encodeURIComponent(summary.id)}/claim`);
    if (!alive) return;
    if (!answer.ok) {
      flash(answer.status === 409 ? t("mailbox.claimed_by_other") : problemText(answer), "warn");
      await refresh();
      return;
    }
    flash(t("mailbox.claimed"), "ok");
    show(answer.data, true);
    refresh();
  }

  async function openThread(id) {
    const answer = await ctx.api("GET", `/api/mailbox/${encodeURIComponent(id)}`);
    if (!alive) return;
    if (!answer.ok) {
      flash(answer.status === 403 ? t("mailbox.not_yours") : problemText(answer), "warn");
      if (state.thread?.id === id) close();
      await refresh();
      return;
    }
    flash("");
    show(answer.data, true);
  }

  function keepDraft() {
    const ui = state.thread?.ui;
    if (!ui) return;
    kept.drafts.set(state.thread.id, ui.input.value);
    kept.notes.set(state.thread.id, ui.noteInput.value);
  }

  function show(thread, focus) {
    if (state.thread && state.thread.id !== thread.id) keepDraft();
    const same = state.thread?.id === thread.id;
    const ui = same ? state.thread.ui : null;
    state.thread = { ...thread, ui };
    kept.open = thread.id;
    renderThread(focus);
    renderSide();
  }

  function close() {
    keepDraft();
    state.thread?.ui?.panel.remove();
    state.thread = null;
    kept.open = null;
    emptyPanel.hidden = false;
    renderSide();
  }

  // An answer, a card, a note or the close: the server answers with the thread as it is now.
  async function post(path, body, onRefused) {
    const thread = state.thread;
    const answer = await ctx.api("POST", `/api/mailbox/${encodeURIComponent(thread.id)}/${path}`, body);
    if (!alive) return false;
    if (!answer.ok) {
      const message = answer.status === 403 ? t("mailbox.not_yours") : problemText(answer);
      if (onRefused) onRefused(message);
      else flash(message, "warn");
      return message;
    }
    if (state.thread?.id === thread.id) show(answer.data, false);
    refresh();
    return true;
  }

  // --- The thread on screen -------------------------------------------------------------------

  function renderThread(focus = false) {
    const thread = state.thread;
    if (!thread) return;
    if (!thread.ui) thread.ui = buildThread(thread);
    const ui = thread.ui;
    emptyPanel.hidden = true;
    const closed = thread.status === "closed";
    ui.heading.textContent = t("mailbox.thread_title", { line: thread.line_name || lineName(thread.line) });
    ui.meta.replaceChildren(
      ...[
        h("span", { class: `mailbox-status status-${thread.status}`, text: t(`mailbox.status.${thread.status}`) }),
        thread.deletes_on ? h("span", { text: t("mailbox.deletes_on", { date: formatDay(thread.deletes_on, { day: "numeric", month: "long", year: "numeric" }) }) }) : null,
      ].filter(Boolean),
    );
    ui.log.replaceChildren(...entries(thread).map(renderEntry));
    const responses = lineOf(thread.line)?.canned_responses ?? [];
    ui.canned.hidden = responses.length === 0;
    const picked = ui.cannedSelect.value;
    ui.cannedSelect.replaceChildren(...cannedOptions(t, responses, language(thread)).filter(Boolean));
    ui.cannedSelect.value = picked;
    ui.actions.hidden = closed;
    ui.closedNote.hidden = !closed;
    if (closed) ui.wrapup.replaceChildren();
    ui.wrapup.hidden = closed || !ui.wrapup.childElementCount;
    // Closing is a step of its own: its form takes the answer box's place until cancelled.
    ui.composer.hidden = closed || !ui.wrapup.hidden;
    const body = ui.log.parentElement;
    body.scrollTop = body.scrollHeight;
    if (focus) (closed ? ui.heading : ui.input).focus();
  }

  // Messages and staff-only notes in the order they were written (to the minute; a note
  // written in the same minute as a message comes after it).
  function entries(thread) {
    const all = [
      ...(thread.messages ?? []).map((message, index) => ({ ...message, entry: "message", order: index })),
      ...(thread.notes ?? []).map((note, index) => ({ ...note, entry: "note", order: 10000 + index })),
    ];
    return all.sort((a, b) => (a.at === b.at ? a.order - b.order : a.at < b.at ? -1 : 1));
  }

  // The language the visitor wrote in, as far as the thread says: its line's first otherwise.
  function language(thread) {
    return thread.language ?? lineOf(thread.line)?.languages?.[0] ?? ctx.lang;
  }

  function renderEntry(entry) {
    const at = h("time", { class: "at", datetime: entry.at, text: formatDateTime(entry.at) });
    if (entry.entry === "note") {
      return h("li", { class: "entry note staff-only", dataset: { note: entry.id } },
        h("p", { class: "entry-head" }, h("span", { class: "staff-only-tag", text: t("mailbox.staff_only") }), h("span", { class: "entry-who", text: t("mailbox.note_from", { name: entry.alias ?? "" }) }), at),
        h("p", { class: "text", text: entry.text ?? "" }));
    }
    const mine = entry.from === "counsellor";
    const who = mine ? entry.alias || t("chats.counsellor") : t("chats.visitor");
    const item = h("li", { class: `entry message ${mine ? "from-staff" : "from-visitor"}`, dataset: { message: entry.id, kind: entry.kind } },
      h("p", { class: "entry-head" }, h("span", { class: "entry-who", text: who }), at));
    if (entry.kind === "card" && entry.card) {
      item.classList.add("referral");
      item.append(h("p", { class: "muted", text: t("mailbox.card_sent") }), cardView(ctx, entry.card, { heading: "h4" }));
    } else if (entry.kind === "times" || entry.kind === "times_cancelled") {
      // Cancelled: the thread was handed over, and they were in its first counsellor's shifts.
      const said = entry.kind === "times" ? t("mailbox.times_offered") : t("mailbox.times_cancelled");
      item.append(h("p", { class: "text", text: said }), h("ul", {}, (entry.times ?? []).map((time) => h("li", { text: formatDateTime(time) }))));
    } else {
      item.append(h("p", { class: "text", text: entry.text ?? "" }));
    }
    return item;
  }

  function buildThread(thread) {
    const heading = h("h2", { class: "chat-title", id: nextId("thread-title"), tabindex: "-1" });
    const meta = h("p", { class: "chat-meta muted" });
    const log = h("ol", { class: "transcript" });

    const cannedSelect = h("select", { id: nextId("canned") });
    const cannedInsert = h("button", { type: "button", class: "small", text: t("chats.insert") });
    const canned = h("div", { class: "canned" }, h("label", { for: cannedSelect.id, text: t("chats.canned") }), cannedSelect, cannedInsert);
    const input = h("textarea", { id: nextId("answer"), name: "text", rows: "4", "aria-keyshortcuts": "Control+Enter" });
    const hint = h("p", { class: "hint", id: `${input.id}-hint`, text: t("mailbox.composer_hint") });
    input.setAttribute("aria-describedby", hint.id);
    const gapNote = h("p", { class: "gap-note", hidden: true, id: `${input.id}-gap` });
    const error = h("p", { class: "field-error", hidden: true, id: `${input.id}-error`, role: "alert" });
    const send = h("button", { type: "submit", class: "primary", text: t("mailbox.send") });
    const composer = h("form", { class: "composer", novalidate: true, "aria-label": t("mailbox.answer") },
      canned,
      h("div", { class: "field" }, h("label", { for: input.id, text: t("mailbox.answer") }), hint, input, gapNote, error),
      h("div", { class: "actions" }, send));
    const gapper = cannedComposer(ctx, input, gapNote);
    cannedInsert.addEventListener("click", () => {
      const responses = lineOf(thread.line)?.canned_responses ?? [];
      const picked = responses[Number(cannedSelect.value)];
      if (cannedSelect.value === "" || !picked) return;
      gapper.insert(picked.text, ctx.me?.alias);
      cannedSelect.value = "";
    });
    input.addEventListener("input", () => gapper.typed());
    // A letter has paragraphs: Enter is a new line, Ctrl+Enter sends.
    input.addEventListener("keydown", (event) => {
      if (event.key === "Enter" && (event.ctrlKey || event.metaKey) && !event.isComposing) {
        event.preventDefault();
        sendAnswer();
      }
    });
    composer.addEventListener("submit", (event) => {
      event.preventDefault();
      sendAnswer();
    });

    function refuse(message) {
      error.textContent = message;
      error.hidden = false;
      input.setAttribute("aria-invalid", "true");
      input.setAttribute("aria-describedby", `${hint.id} ${error.id}`);
      ctx.announce(message);
    }

    async function sendAnswer() {
      error.hidden = true;
      input.removeAttribute("aria-invalid");
      input.setAttribute("aria-describedby", hint.id);
      const text = input.value;
      if (!text.trim()) return;
      const gap = gapper.pending();
      if (gap) {
        input.focus();
        input.setSelectionRange(gap.start, gap.end);
        refuse(t("chats.gap_left", { gap: gap.text }));
        return;
      }
      const max = lineOf(thread.line)?.max_message_length ?? 4000;
      if (text.length > max) {
        refuse(t("chats.too_long", { count: text.length, max }));
        return;
      }
      send.disabled = true;
      const sent = await post("answer", { text }, refuse);
      send.disabled = false;
      if (sent === true) {
        input.value = "";
        gapper.forget();
        kept.drafts.delete(thread.id);
        flash(t("mailbox.answered"), "ok");
        input.focus();
      }
    }

    const noteInput = h("textarea", { id: nextId("note"), name: "note", rows: "2" });
    const noteError = h("p", { class: "field-error", hidden: true, role: "alert" });
    const noteForm = h("form", { class: "note-form", novalidate: true },
      h("div", { class: "field" },
        h("label", { for: noteInput.id, text: t("mailbox.note") }),
        h("p", { class: "hint", text: t("mailbox.note_hint") }),
        noteInput, noteError),
      h("div", { class: "actions" }, h("button", { type: "submit", class: "small", text: t("mailbox.note_save") })));
    noteForm.addEventListener("submit", async (event) => {
      event.preventDefault();
      if (!noteInput.value.trim()) return;
      noteError.hidden = true;
      const saved = await post("notes", { text: noteInput.value }, (message) => {
        noteError.textContent = message;
        noteError.hidden = false;
      });
      if (saved === true) {
        noteInput.value = "";
        kept.notes.delete(thread.id);
        // Folded again, so the letters keep the room; the note is in the thread now.
        noteBox.open = false;
        ctx.announce(t("mailbox.note_saved"));
      }
    });
    const noteBox = h("details", { class: "note-box" }, h("summary", { text: t("mailbox.note_summary") }), noteForm);

    const refer = h("button", { type: "button", text: t("care.refer") });
    refer.addEventListener("click", () => {
      referralSearch(ctx, referralDialog, {
        language: language(state.thread),
        send: (service) => post("answer", { card: service.id }, () => {}),
      });
    });
    const wrapup = h("div", { class: "wrapup", hidden: true });
    const closeButton = h("button", { type: "button", class: "danger", text: t("mailbox.close") });
    closeButton.addEventListener("click", () => showWrapup());
    const back = h("button", { type: "button", text: t("mailbox.back") });
    back.addEventListener("click", () => close());
    const actions = h("div", { class: "chat-actions" }, refer, closeButton);
    const closedNote = h("p", { class: "notice ok", hidden: true, text: t("mailbox.closed_note") });

    function showWrapup() {
      const line = lineOf(thread.line);
      const { form, error: wrapupError } = wrapupForm(ctx, {
        topics: line?.wrapup_topics ?? [],
        outcomes: line?.wrapup_outcomes ?? [],
        hint: t("mailbox.wrapup_hint"),
        onSubmit: async (topics, outcome) => {
          wrapupError.hidden = true;
          if (!outcome) {
            wrapupError.textContent = t("chats.error.outcome_missing");
            wrapupError.hidden = false;
            return;
          }
          const done = await post("close", { topics, outcome }, (message) => {
            wrapupError.textContent = message;
            wrapupError.hidden = false;
          });
          if (done === true) {
            flash(t("mailbox.closed"), "ok");
            // The form is gone: the focus goes to the thread, not to the page's start.
            state.thread?.ui?.heading.focus();
          }
        },
      });
      const cancel = h("button", { type: "button", text: t("common.cancel") });
      cancel.addEventListener("click", () => {
        wrapup.replaceChildren();
        wrapup.hidden = true;
        composer.hidden = false;
        closeButton.focus();
      });
      form.querySelector(".actions").append(cancel);
      wrapup.replaceChildren(form);
      wrapup.hidden = false;
      composer.hidden = true;
      form.querySelector("input")?.focus();
    }

    const panel = h("section", { class: "chat-panel mailbox-thread", dataset: { thread: thread.id }, "aria-labelledby": heading.id },
      h("div", { class: "chat-head" }, heading, meta, h("div", { class: "mailbox-back" }, back)),
      closedNote,
      h("div", { class: "chat-body", role: "log", tabindex: "0", "aria-label": t("mailbox.conversation") }, log),
      wrapup,
      composer,
      actions,
      noteBox);
    input.value = kept.drafts.get(thread.id) ?? "";
    noteInput.value = kept.notes.get(thread.id) ?? "";
    panels.append(panel);
    for (const other of panels.querySelectorAll(".mailbox-thread")) if (other !== panel) other.remove();
    return { panel, heading, meta, log, canned, cannedSelect, input, composer, actions, noteInput, wrapup, closedNote };
  }

  // --- Refreshing -----------------------------------------------------------------------------

  off.push(socket.on("hello", (hello) => {
    setLines(hello.lines);
    refresh();
  }));
  off.push(socket.on("duty", (frame) => setLines(frame.lines)));
  off.push(socket.on("profile", (frame) => setLines(frame.lines)));
  // The queue card counts the letters waiting: when it changes, the lists are read again.
  off.push(socket.on("queue.summary", (frame) => {
    if (typeof frame.mailbox_waiting !== "number") return;
    const before = state.mailboxWaiting.get(frame.line);
    state.mailboxWaiting.set(frame.line, frame.mailbox_waiting);
    if (before !== undefined && before !== frame.mailbox_waiting) refresh();
  }));
  const timer = setInterval(refresh, REFRESH_MS);

  if (socket.hello) setLines(socket.snapshot.lines);
  refresh().then(() => {
    if (alive && kept.open && !state.thread) openThread(kept.open);
  });

  return () => {
    alive = false;
    keepDraft();
    for (const stop of off) stop();
    clearInterval(timer);
  };
}

function addMailboxStylesheet() {
  if (document.querySelector("link[data-mailbox-css]")) return;
  const link = document.createElement("link");
  link.rel = "stylesheet";
  link.href = "/console/static/mailbox.css";
  link.dataset.mailboxCss = "true";
  document.head.append(link);
}
