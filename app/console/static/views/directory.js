// The referral directory (coordinators): services counsellors can send to visitors as cards.
// Search, add, edit, delete; CSV export and an all-or-nothing CSV import whose problems are
// listed row by row. Texts visitors see are per language (every language of every line).

import { clearErrors, confirmAction, field, h, languageName, nextId, showErrors } from "../core.js";
import { NEEDS, cardView } from "../care.js";

export function mount(root, ctx) {
  const t = (key, vars) => ctx.t(key, vars);
  let languages = ["sv", "en"];
  let services = [];

  const status = h("p", { role: "status", class: "muted" });
  const search = h("input", { id: nextId("dirq"), type: "search", name: "q", maxlength: "200", autocomplete: "off" });
  const list = h("ul", { class: "dir-list" });
  const formBox = h("div");
  const importErrors = h("div", { class: "dir-import-errors", role: "alert" });
  const fileInput = h("input", { id: nextId("csv"), type: "file", accept: ".csv,text/csv", name: "csv" });
  const importButton = h("button", { type: "button", text: t("dir.import_button") });
  const exportLink = h("a", { href: "/api/directory/export.csv", download: "directory.csv", class: "button", text: t("dir.export") });
  const add = h("button", { type: "button", class: "primary", text: t("dir.new") });

  search.addEventListener("input", () => render());
  add.addEventListener("click", () => edit(null));
  importButton.addEventListener("click", () => importCsv());

  root.append(
    // The shell's section is labelled by this heading (aria-labelledby).
    h("h1", { id: "view-directory-title", text: t("nav.directory") }),
    h("p", { class: "hint", text: t("dir.intro") }),
    h(
      "div",
      { class: "dir-tools" },
      add,
      field(t("dir.search"), search),
      exportLink,
      h("div", { class: "field" }, h("label", { for: fileInput.id, text: t("dir.import_file") }), h("p", { class: "hint", id: `${fileInput.id}-hint`, text: t("dir.import_hint") }), fileInput, importButton),
    ),
    importErrors,
    formBox,
    status,
    list,
  );
  fileInput.setAttribute("aria-describedby", `${fileInput.id}-hint`);

  async function load() {
    const [lines, found] = await Promise.all([ctx.api("GET", "/api/lines"), ctx.api("GET", "/api/directory")]);
    if (lines.ok) {
      const all = new Set(["sv", "en"]);
      for (const line of lines.data) for (const code of line.languages ?? []) all.add(code);
      languages = [...all];
    }
    services = found.ok ? found.data.services : [];
    render();
  }

  function render() {
    const words = search.value.trim().toLowerCase().split(/\s+/).filter(Boolean);
    const shown = services.filter((s) => {
      const hay = [s.name, s.city, ...Object.values(s.description), ...Object.values(s.notes)].join(" ").toLowerCase();
      return words.every((w) => hay.includes(w));
    });
    status.textContent = services.length ? t("dir.count", { count: shown.length }) : t("dir.none");
    list.replaceChildren(
      ...shown.map((service) => {
        const editButton = h("button", { type: "button", text: t("dir.edit") });
        editButton.addEventListener("click", () => edit(service));
        const remove = h("button", { type: "button", class: "danger", text: t("dir.delete") });
        remove.addEventListener("click", () => removeService(service));
        const preview = {
          ...service,
          description: service.description[ctx.lang] || Object.values(service.description)[0] || "",
          opening_hours: service.opening_hours[ctx.lang] || Object.values(service.opening_hours)[0] || "",
          notes: service.notes[ctx.lang] || Object.values(service.notes)[0] || "",
          national: !service.city,
        };
        return h("li", { class: "dir-item" }, cardView(ctx, preview, { heading: "h2" }), h("div", { class: "actions" }, editButton, remove));
      }),
    );
  }

  function edit(service) {
    const value = service ?? { name: "", description: {}, needs: [], languages: [], phone: "", email: "", web: "", opening_hours: {}, city: "", notes: {} };
    const input = (name, text, extra = {}) => field(text, h("input", { name, type: "text", value: value[name] ?? "", autocomplete: "off", ...extra }));
    const needs = h(
      "fieldset",
      { dataset: { field: "needs" } },
      h("legend", { text: t("dir.needs") }),
      h("div", { class: "needs" }, ...NEEDS.map((need) => {
        const id = nextId("need");
        return h("label", { for: id }, h("input", { id, type: "checkbox", name: "needs", value: need, checked: value.needs.includes(need) }), t(`care.need.${need}`));
      })),
    );
    const textLanguages = [...new Set([...languages, ...Object.keys(value.description), ...Object.keys(value.opening_hours), ...Object.keys(value.notes)])];
    const texts = textLanguages.map((code) =>
      h(
        "fieldset",
        { lang: code },
        h("legend", { text: t("dir.texts", { language: languageName(code) }) }),
        field(t("dir.description"), h("textarea", { name: `description.${code}`, rows: "2", maxlength: "2000" }, value.description[code] ?? "")),
        field(t("dir.opening_hours"), h("input", { name: `opening_hours.${code}`, type: "text", maxlength: "2000", value: value.opening_hours[code] ?? "" })),
        field(t("dir.notes"), h("textarea", { name: `notes.${code}`, rows: "2", maxlength: "2000" }, value.notes[code] ?? "")),
      ),
    );
    const save = h("button", { type: "submit", class: "primary", text: t("dir.save") });
    const cancel = h("button", { type: "button", text: t("dir.cancel") });
    const form = h(
      "form",
      { class: "dir-form", novalidate: true },
      h("h2", { text: service ? service.name : t("dir.new") }),
      input("name", t("dir.name"), { maxlength: "200", required: true }),
      needs,
      input("languages", t("dir.languages"), { value: value.languages.join(", ") }),
      input("phone", t("dir.phone"), { maxlength: "40", inputmode: "tel" }),
      input("email", t("dir.email"), { maxlength: "254", inputmode: "email" }),
      input("web", t("dir.web"), { maxlength: "500", inputmode: "url" }),
      input("city", t("dir.city"), { maxlength: "100" }),
      ...texts,
      h("div", { class: "actions" }, save, cancel),
    );
    cancel.addEventListener("click", () => formBox.replaceChildren());
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      clearErrors(form);
      const data = new FormData(form);
      const body = {
        name: String(data.get("name") ?? ""),
        needs: data.getAll("needs").map(String),
        languages: String(data.get("languages") ?? "").split(/[\s,;]+/).filter(Boolean),
        phone: String(data.get("phone") ?? ""),
        email: String(data.get("email") ?? ""),
        web: String(data.get("web") ?? ""),
        city: String(data.get("city") ?? ""),
        description: {},
        opening_hours: {},
        notes: {},
      };
      for (const code of textLanguages) {
        for (const kind of ["description", "opening_hours", "notes"]) {
          const text = String(data.get(`${kind}.${code}`) ?? "").trim();
          if (text) body[kind][code] = text;
        }
      }
      const result = service ? await ctx.api("PUT", `/api/directory/${service.id}`, body) : await ctx.api("POST", "/api/directory", body);
      if (!result.ok) {
        showErrors(form, result);
        return;
      }
      formBox.replaceChildren();
      ctx.announce(t("dir.saved", { name: result.data.name }));
      status.textContent = t("dir.saved", { name: result.data.name });
      await load();
    });
    formBox.replaceChildren(form);
    form.querySelector('[name="name"]').focus();
  }

  async function removeService(service) {
    if (!(await confirmAction(t("dir.delete_confirm", { name: service.name }), { confirm: t("dir.delete"), danger: true }))) return;
    const result = await ctx.api("DELETE", `/api/directory/${service.id}`);
    if (result.ok) {
      ctx.announce(t("dir.deleted", { name: service.name }));
      await load();
    }
  }

  async function importCsv() {
    importErrors.replaceChildren();
    const file = fileInput.files?.[0];
    if (!file) {
      fileInput.focus();
      return;
    }
    const text = await file.text();
    // The body is the CSV itself (not JSON): the same CSRF header as every other change.
    let response;
    try {
      response = await fetch("/api/directory/import", {
        method: "POST",
        credentials: "same-origin",
        headers: { "Content-Type": "text/csv; charset=utf-8", "X-CSRF-Token": ctx.me?.csrf_token ?? "", Accept: "application/json" },
        body: text,
      });
    } catch {
      importErrors.append(h("p", { text: ctx.t("error.network") }));
      return;
    }
    const data = await response.json().catch(() => null);
    if (response.ok && data) {
      const done = t("dir.import_done", { created: data.created, updated: data.updated });
      status.textContent = done;
      ctx.announce(done);
      fileInput.value = "";
      await load();
      return;
    }
    const rows = data?.errors ?? [];
    importErrors.append(
      h("p", { text: t("dir.import_failed") }),
      rows.length
        ? h("ul", {}, ...rows.map((e) => h("li", { text: t("dir.import_row", { row: e.row, field: e.field, message: e.message }) })))
        : h("p", { text: data?.detail ?? ctx.t("error.generic", { status: response.status }) }),
    );
  }

  load();
  return () => {};
}
