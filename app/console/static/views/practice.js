// Play a visitor (supervisors and coordinators): the visitor's own chat page for a practice
// line, framed here, with the line's scripted openings to send with a click. A practice line's
// chats count in no statistic (docs/console.md, "Practice").
import { h, field, problemText } from "../core.js";

export function mount(root, ctx) {
  const t = ctx.t;
  let alive = true;
  let lines = [];
  const lineSelect = h("select", { id: "practice-line", name: "line" });
  const languageSelect = h("select", { id: "practice-language", name: "language" });
  // Enabled once the practice lines are known.
  const open = h("button", { type: "submit", class: "primary", id: "practice-open", disabled: true, text: t("practice.open") });
  const form = h("form", { class: "toolbar", novalidate: true },
    field(t("common.line"), lineSelect),
    field(t("practice.language"), languageSelect),
    h("div", { class: "actions" }, open));
  const frame = h("iframe", { id: "practice-frame", class: "practice-frame", title: t("practice.frame_title"), hidden: true });
  const openings = h("section", { class: "card practice-openings", id: "practice-openings", "aria-labelledby": "practice-openings-title" });
  const status = h("p", { class: "muted", role: "status", id: "practice-status" });
  const body = h("div", { class: "practice-layout" }, h("div", { class: "practice-visitor" }, frame), openings);
  root.append(
    h("h1", { id: "view-practice-title", text: t("nav.practice") }),
    h("p", { class: "notice", text: t("practice.intro") }),
    form,
    status,
    body,
  );

  function current() {
    return lines.find((line) => line.key === lineSelect.value);
  }

  function fillLanguages() {
    const line = current();
    languageSelect.replaceChildren(...(line?.languages ?? []).map((code) => h("option", { value: code, text: code })));
    renderOpenings();
  }

  // The played visitor's message box is the chat page's own (same origin): an opening is
  // typed into it and sent as a visitor sends it.
  function send(text) {
    const doc = frame.contentDocument;
    const box = doc?.getElementById("text");
    const composer = doc?.getElementById("composer");
    if (frame.hidden || !box || !composer || composer.closest("[hidden]")) {
      status.textContent = t("practice.start_first");
      return;
    }
    box.value = text;
    box.dispatchEvent(new Event("input", { bubbles: true }));
    composer.requestSubmit();
    status.textContent = t("practice.sent");
  }

  function renderOpenings() {
    const line = current();
    const texts = line?.openings?.[languageSelect.value] ?? [];
    openings.replaceChildren(
      h("h2", { id: "practice-openings-title", text: t("practice.openings") }),
      h("p", { class: "hint", text: t("practice.openings_hint") }),
      texts.length
        ? h("ul", { class: "opening-list" }, texts.map((text, index) => {
          const button = h("button", { type: "button", dataset: { opening: String(index) }, text: t("practice.send") });
          button.addEventListener("click", () => send(text));
          return h("li", {}, h("p", { class: "opening-text", text }), button);
        }))
        : h("p", { class: "muted", text: t("practice.no_openings") }),
    );
  }

  lineSelect.addEventListener("change", fillLanguages);
  languageSelect.addEventListener("change", renderOpenings);
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const line = current();
    if (!line) return;
    frame.hidden = false;
    frame.src = `/chat/${encodeURIComponent(line.key)}?lang=${encodeURIComponent(languageSelect.value)}`;
    status.textContent = t("practice.opened", { line: line.name });
  });

  ctx.api("GET", "/api/lines/practice").then((result) => {
    if (!alive) return;
    if (!result.ok) {
      status.textContent = problemText(result);
      return;
    }
    lines = result.data;
    if (!lines.length) {
      form.hidden = true;
      body.hidden = true;
      status.textContent = t("practice.no_lines");
      return;
    }
    lineSelect.replaceChildren(...lines.map((line) => h("option", { value: line.key, text: line.name })));
    fillLanguages();
    open.disabled = false;
  });

  return () => {
    alive = false;
  };
}
