// Small helpers the chats, supervise and mailbox views share.

import { h, nextId } from "./core.js";

export function addStylesheet() {
  if (document.querySelector("link[data-chats-css]")) return;
  const link = document.createElement("link");
  link.rel = "stylesheet";
  link.href = "/console/static/chats.css";
  link.dataset.chatsCss = "true";
  document.head.append(link);
}

export function clock(epoch) {
  if (!epoch) return "";
  const locale = document.documentElement.lang === "sv" ? "sv-SE" : "en-GB";
  return new Date(epoch * 1000).toLocaleTimeString(locale, { hour: "2-digit", minute: "2-digit" });
}

export function duration(seconds) {
  const s = Math.max(0, Math.round(seconds));
  const m = Math.floor(s / 60);
  return `${m}:${String(s % 60).padStart(2, "0")}`;
}

// A line's wrap-up topic or outcome in the console's language when the catalogue knows the
// term (the usual ones), else as the line has it: the value sent stays the line's own.
export function termText(t, kind, term) {
  const key = `wrapup.${kind}.${String(term).replace(/\s+/g, "_")}`;
  const text = t(key);
  return text === key ? term : text;
}

export function languageName(code) {
  try {
    const names = new Intl.DisplayNames([document.documentElement.lang || "en"], { type: "language" });
    return names.of(code) ?? code;
  } catch {
    return code;
  }
}

// --- Canned responses and the wrap-up form, shared by the chats and mailbox screens ----------

// A gap in a canned response: a {placeholder} ({name} is filled in before), or "..." / "…"
// standing alone between words.
const GAP = /\{[^{}\s]{1,40}\}|(?<=^|\s)(?:\.{3}|…)(?=$|[\s,.!?;:])/gu;

function gapsIn(text) {
  return [...text.matchAll(GAP)].map((match) => ({ start: match.index, end: match.index + match[0].length, text: match[0] }));
}

// The options of a canned-response select: the conversation's language first, the others
// after. Each option's value is the response's index in `responses`.
export function cannedOptions(t, responses, language) {
  const mine = responses.filter((r) => r.language === language);
  const others = responses.filter((r) => r.language !== language);
  const option = (r) => h("option", { value: String(responses.indexOf(r)), text: r.title, lang: r.language });
  return [
    h("option", { value: "", text: t("chats.canned_pick") }),
    mine.length ? h("optgroup", { label: languageName(language) }, ...mine.map(option)) : null,
    others.length ? h("optgroup", { label: t("chats.canned_other") }, ...others.map(option)) : null,
  ];
}

// A message box that takes canned responses for editing; they are never sent unseen. {name}
// becomes the counsellor's display name; a gap left in it (any other {placeholder}, or "..."
// standing alone, as in "Hej, jag heter ... och") is selected, and `pending()` names it until
// it is filled in, so the screen can refuse to send.
export function cannedComposer(ctx, input, gapNote) {
  let gaps = null;
  const forget = () => {
    gaps = null;
    gapNote.hidden = true;
  };
  const pending = () => (gaps ? gapsIn(input.value).find((gap) => gaps.has(gap.text)) ?? null : null);
  return {
    insert(template, alias) {
      const text = alias ? template.replaceAll("{name}", alias) : template;
      const start = input.selectionStart ?? input.value.length;
      const end = input.selectionEnd ?? input.value.length;
      input.value = input.value.slice(0, start) + text + input.value.slice(end);
      input.focus();
      const found = gapsIn(text).map((gap) => gap.text);
      if (found.length) gaps = new Set([...(gaps ?? []), ...found]);
      const gap = found.length ? pending() : null;
      if (gap) {
        input.setSelectionRange(gap.start, gap.end);
        gapNote.textContent = ctx.t("chats.gap_marked", { gap: gap.text });
        gapNote.hidden = false;
        ctx.announce(gapNote.textContent);
      } else {
        input.setSelectionRange(start + text.length, start + text.length);
      }
    },
    pending,
    forget,
    // After typing: a gap filled in is no longer pending.
    typed() {
      if (gaps && !pending()) forget();
    },
  };
}

// The line's wrap-up (topics, outcome) as a form; `onSubmit(topics, outcome)` sends it.
export function wrapupForm(ctx, { topics, outcomes, onSubmit, hint }) {
  const t = (key, vars) => ctx.t(key, vars);
  const topicBox = h("fieldset", { class: "field", dataset: { field: "topics" } }, h("legend", { text: t("chats.wrapup_topics") }));
  for (const topic of topics) {
    const id = nextId("topic");
    topicBox.append(h("div", { class: "check" }, h("input", { type: "checkbox", id, name: "topics", value: topic }), h("label", { for: id, text: termText(t, "topic", topic) })));
  }
  const outcomeBox = h("fieldset", { class: "field", dataset: { field: "outcome" } }, h("legend", { text: t("chats.wrapup_outcome") }));
  for (const outcome of outcomes) {
    const id = nextId("outcome");
    outcomeBox.append(h("div", { class: "check" }, h("input", { type: "radio", id, name: "outcome", value: outcome }), h("label", { for: id, text: termText(t, "outcome", outcome) })));
  }
  const error = h("p", { class: "field-error", role: "alert", hidden: true });
  const form = h("form", { class: "wrapup-form", novalidate: true }, h("h3", { text: t("chats.wrapup_title") }), h("p", { class: "hint", text: hint ?? t("chats.wrapup_hint") }), topicBox, outcomeBox, error, h("div", { class: "actions" }, h("button", { type: "submit", class: "primary", text: t("chats.wrapup_save") })));
  // A refusal shown is about what was ticked before: a new choice clears it.
  form.addEventListener("change", () => {
    error.hidden = true;
  });
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const chosen = [...form.querySelectorAll("input[name=topics]:checked")].map((el) => el.value);
    const outcome = form.querySelector("input[name=outcome]:checked")?.value ?? "";
    onSubmit(chosen, outcome);
  });
  return { form, error };
}
