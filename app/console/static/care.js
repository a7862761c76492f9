// Continuity of care in the chats screen (docs/continuity.md): offering a continuity code with
// a handover note, the note of a returning visitor, and referral cards from the directory.
// Everything from the server goes in as text (h() never parses HTML).

import { h, nextId } from "./core.js";

// Its own stylesheet, added once (the page CSP allows stylesheets from 'self').
if (!document.querySelector("link[data-care-css]")) {
  const link = document.createElement("link");
  link.rel = "stylesheet";
  link.href = "/console/static/care.css";
  link.dataset.careCss = "true";
  document.head.append(link);
}

// Transcript entries this module draws.
export const CARE_ENTRIES = ["continuity.offered", "continuity.accepted", "handover", "referral"];
export const NEEDS = [
  "housing",
  "health",
  "legal_migration",
  "addiction",
  "shelter",
  "violence",
  "work_education",
  "exit_programmes",
];

// A directory entry as a card: name, what they help with, tags, contact details as text.
export function cardView(ctx, card, { heading = "h3" } = {}) {
  const t = (key, vars) => ctx.t(key, vars);
  const description = typeof card.description === "string" ? card.description : "";
  const where = card.national || !card.city ? t("care.national") : card.city;
  const rows = [
    ["care.phone", card.phone],
    ["care.email", card.email],
    ["care.web", card.web],
    ["care.hours", typeof card.opening_hours === "string" ? card.opening_hours : ""],
    ["care.where", where],
    ["care.languages", (card.languages ?? []).join(", ")],
    ["care.notes", typeof card.notes === "string" ? card.notes : ""],
  ].filter(([, value]) => value);
  return h(
    "div",
    { class: "referral-card", lang: card.language || null },
    h(heading, { class: "referral-name", text: card.name }),
    description ? h("p", { class: "text", text: description }) : null,
    h("ul", { class: "tags", "aria-label": t("care.needs") }, ...(card.needs ?? []).map((need) => h("li", { class: "tag", text: t(`care.need.${need}`) }))),
    h("dl", { class: "referral-details" }, ...rows.flatMap(([key, value]) => [h("dt", { text: t(key) }), h("dd", { text: value })])),
  );
}

export function careEntry(ctx, entry, at) {
  const t = (key, vars) => ctx.t(key, vars);
  if (entry.type === "handover") {
    return h(
      "li",
      { class: "entry handover" },
      h("p", { class: "entry-head" }, h("span", { class: "entry-who", text: t("care.handover_from") }), at),
      h("p", { class: "text", text: entry.text || t("care.handover_empty") }),
    );
  }
  if (entry.type === "referral") {
    return h(
      "li",
      { class: "entry referral" },
      h("p", { class: "entry-head" }, h("span", { class: "entry-who", text: t("care.referral_sent", { name: entry.name }) }), at),
      cardView(ctx, entry.card ?? {}),
    );
  }
  const text = entry.type === "continuity.offered" ? t("care.code_offered_entry") : t("care.code_taken");
  return h(
    "li",
    { class: "entry system continuity" },
    h("p", {}, h("span", { text }), " ", at),
    entry.type === "continuity.offered" && entry.note ? h("p", { class: "text muted", text: t("care.your_note", { note: entry.note }) }) : null,
  );
}

export function careTools(ctx, socket, state, { codeDialog, referralDialog }) {
  const t = (key, vars) => ctx.t(key, vars);

  function offerCode(chat) {
    const note = h("textarea", { id: nextId("handover"), name: "note", rows: "4", maxlength: "1000" });
    const hint = h("p", { class: "hint", id: `${note.id}-hint`, text: t("care.note_hint") });
    note.setAttribute("aria-describedby", hint.id);
    const error = h("p", { class: "field-error", hidden: true, role: "alert" });
    const offer = h("button", { type: "submit", class: "primary", text: t("care.offer") });
    const cancel = h("button", { type: "button", text: t("chats.cancel") });
    cancel.addEventListener("click", () => codeDialog.close());
    const form = h(
      "form",
      { novalidate: true },
      h("h2", { id: "code-title", text: t("care.offer_code_title") }),
      h("p", { text: t("care.offer_code_text") }),
      h("div", { class: "field" }, h("label", { for: note.id, text: t("care.note_label") }), hint, note, error),
      h("div", { class: "actions" }, offer, cancel),
    );
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      state.lastAction["continuity.offer"] = chat.id;
      socket.send({ type: "continuity.offer", chat_id: chat.id, note: note.value });
    });
    codeDialog.replaceChildren(form);
    codeDialog.dataset.chat = chat.id;
    codeDialog.errorBox = error;
    codeDialog.showModal();
    note.focus();
  }

  function offered(chat) {
    if (codeDialog.open && codeDialog.dataset.chat === chat.id) codeDialog.close();
  }

  function refer(chat) {
    referralDialog.dataset.chat = chat.id;
    referralSearch(ctx, referralDialog, {
      language: chat.language,
      send(service) {
        state.lastAction.referral = chat.id;
        return socket.send({ type: "referral", chat_id: chat.id, service_id: service.id });
      },
    });
  }

  function showError(ref, message) {
    const dialog = { "continuity.offer": codeDialog, referral: referralDialog }[ref];
    if (!dialog?.open) return false;
    dialog.errorBox.textContent = message;
    dialog.errorBox.hidden = false;
    return true;
  }

  return { offerCode, offered, refer, showError, codeTaken() {} };
}

// The referral directory's search in a dialog, for a chat or a mailbox thread: need, city,
// words, "speaks the visitor's language"; each service found as the card the visitor will
// see, with "Send to the visitor". `send(service)` answers true when it went, or a refusal
// to show in the dialog.
export function referralSearch(ctx, dialog, { language, send }) {
  const t = (key, vars) => ctx.t(key, vars);
  const need = h("select", { id: nextId("need"), name: "need" }, h("option", { value: "", text: t("care.any_need") }), ...NEEDS.map((n) => h("option", { value: n, text: t(`care.need.${n}`) })));
  const city = h("input", { id: nextId("city"), name: "city", type: "text", maxlength: "100", autocomplete: "off" });
  const text = h("input", { id: nextId("q"), name: "q", type: "search", maxlength: "200", autocomplete: "off" });
  const speaks = h("input", { id: nextId("speaks"), name: "language", type: "checkbox" });
  const error = h("p", { class: "field-error", hidden: true, role: "alert" });
  const status = h("p", { class: "muted", role: "status" });
  const results = h("ul", { class: "referral-results" });
  const search = h("button", { type: "submit", class: "primary", text: t("care.search") });
  const close = h("button", { type: "button", text: t("care.close") });
  close.addEventListener("click", () => dialog.close());
  const form = h(
    "form",
    { class: "referral-search", novalidate: true, role: "search" },
    h("div", { class: "field" }, h("label", { for: need.id, text: t("care.need_label") }), need),
    h("div", { class: "field" }, h("label", { for: city.id, text: t("care.city_label") }), city),
    h("div", { class: "field" }, h("label", { for: text.id, text: t("care.text_label") }), text),
    h("div", { class: "field check" }, speaks, h("label", { for: speaks.id, text: t("care.speaks_label") })),
    h("div", { class: "actions" }, search),
  );
  const refused = (message) => {
    error.textContent = message;
    error.hidden = false;
  };
  async function run(event) {
    event?.preventDefault();
    const params = new URLSearchParams();
    if (need.value) params.set("need", need.value);
    if (city.value.trim()) params.set("city", city.value.trim());
    if (text.value.trim()) params.set("q", text.value.trim());
    if (speaks.checked) params.set("language", language);
    const answer = await ctx.api("GET", `/api/directory?${params}`);
    if (!answer.ok) {
      refused(answer.data?.detail ?? t("care.search_failed"));
      return;
    }
    error.hidden = true;
    const services = answer.data.services ?? [];
    status.textContent = t("care.found", { count: services.length });
    results.replaceChildren(
      ...services.map((service) => {
        const button = h("button", { type: "button", class: "primary small", text: t("care.send") });
        button.addEventListener("click", async () => {
          button.disabled = true;
          const sent = await send(service);
          if (sent === true) {
            button.textContent = t("care.sent");
            ctx.announce(t("care.sent_announce", { name: service.name }));
            return;
          }
          button.disabled = false;
          if (typeof sent === "string") refused(sent);
        });
        const preview = {
          ...service,
          description: pick(service.description, language),
          opening_hours: pick(service.opening_hours, language),
          notes: pick(service.notes, language),
        };
        return h("li", { class: "referral-result" }, cardView(ctx, preview), h("div", { class: "actions" }, button));
      }),
    );
  }
  form.addEventListener("submit", run);
  dialog.replaceChildren(
    h("h2", { id: "referral-title", text: t("care.refer_title") }),
    h("p", { class: "hint", text: t("care.refer_text") }),
    form,
    error,
    status,
    results,
    h("div", { class: "actions" }, close),
  );
  dialog.errorBox = error;
  dialog.showModal();
  need.focus();
  run();
}

// The text in the chat's language, else any (what the visitor's card will show).
function pick(texts, language) {
  if (!texts) return "";
  return texts[language] || Object.values(texts).find(Boolean) || "";
}
