// Lines: every setting of a line (LineSettings in app/lines/schemas.py), texts per language,
// wrap-up topics and outcomes, retention, privacy note and canned responses; and new lines.
import { h, field, showErrors, clearErrors, problemText, languageName, formatDateTime } from "../core.js";

const NUMBERS = [
  ["max_queue_length", 1, 10000],
  ["offer_timeout_seconds", 2, 600],
  ["visitor_grace_seconds", 1, 3600],
  ["counsellor_grace_seconds", 1, 3600],
  ["language_relax_seconds", 0, 86400],
  ["peer_relax_seconds", 0, 86400],
  ["max_message_length", 1, 10000],
  ["transcript_retention_seconds", 0, 86400],
  ["care_pause_seconds", 0, 7200],
];
const TEXTS = [
  ["closed_message", 4000],
  ["alternatives", 4000],
  ["opening_hours", 4000],
  ["privacy_note", 300],
  ["emergency_text", 300],
];

export function mount(root, ctx) {
  const t = ctx.t;
  let alive = true;
  let lines = [];
  let current = null; // the settings as loaded
  const lineSelect = h("select", { id: "lines-line" });
  const notice = h("div", { id: "lines-notice" });
  const body = h("div", { id: "lines-body" });
  root.append(
    h("div", { class: "view-head" },
      h("h1", { id: "view-lines-title", text: t("nav.lines") }),
      h("button", { type: "button", id: "lines-new", text: t("lines.new"), onclick: () => newLineForm() })),
    h("div", { class: "toolbar" }, field(t("common.line"), lineSelect)),
    notice,
    body,
  );
  lineSelect.addEventListener("change", () => loadLine(lineSelect.value));

  async function loadLines(select) {
    const result = await ctx.api("GET", "/api/roster/lines");
    if (!alive) return;
    if (!result.ok) {
      notice.replaceChildren(h("p", { class: "notice warn", role: "alert", text: problemText(result) }));
      return;
    }
    lines = result.data;
    lineSelect.replaceChildren(...lines.map((l) => h("option", { value: l.key, text: l.name })));
    const key = select ?? lines[0]?.key;
    if (key) {
      lineSelect.value = key;
      await loadLine(key);
    }
  }

  // Only the latest line asked for is drawn: a slow answer for the line shown before must not
  // fill the form under the line now chosen.
  let lineRequest = 0;
  async function loadLine(key) {
    lineRequest += 1;
    const mine = lineRequest;
    const result = await ctx.api("GET", `/api/lines/${encodeURIComponent(key)}/settings`);
    if (!alive || mine !== lineRequest) return;
    if (!result.ok) {
      notice.replaceChildren(h("p", { class: "notice warn", role: "alert", text: problemText(result) }));
      return;
    }
    current = result.data;
    body.replaceChildren(settingsForm(current));
    // First, where a coordinator handing a thread over finds it without scrolling the form.
    if (ctx.can("manage_roster")) body.prepend(handoverPanel(current));
  }

  function settingsForm(settings) {
    const controls = {};
    const input = (name, attrs = {}) => {
      controls[name] = h("input", { name, ...attrs });
      return controls[name];
    };
    const name = input("name", { value: settings.name, maxlength: 100, required: true });
    const languages = input("languages", { value: settings.languages.join(", "), "data-error-words": "languages,language" });
    const qualification = h("select", { name: "required_qualification" },
      ["psychologist", "volunteer"].map((q) => h("option", { value: q, text: t(`qualification.${q}`), selected: settings.required_qualification === q })));
    const zones = typeof Intl.supportedValuesOf === "function" ? Intl.supportedValuesOf("timeZone") : [];
    const timeZone = input("time_zone", { value: settings.time_zone, list: "time-zones", "data-error-words": "time_zone,time zone,zone" });
    const autoAccept = h("input", { type: "checkbox", name: "auto_accept", id: "line-auto-accept", checked: settings.auto_accept });
    const signup = h("input", { type: "checkbox", name: "roster_signup", id: "line-signup", checked: settings.roster_signup });
    // How chats reach counsellors, and the practice line's flag and scripted openings.
    const assignment = h("select", { name: "assignment", id: "line-assignment" },
      ["offered", "taken", "both"].map((a) => h("option", { value: a, text: t(`lines.assignment.${a}`), selected: (settings.assignment ?? "offered") === a })));
    const practice = h("input", { type: "checkbox", name: "practice", id: "line-practice", checked: Boolean(settings.practice) });
    const openings = Object.fromEntries(settings.languages.map((lang) => [lang, h("textarea", { name: `practice_openings.${lang}`, rows: 3 }, (settings.practice_openings?.[lang] ?? []).join("\n"))]));
    const numbers = NUMBERS.map(([key, min, max]) => field(t(`lines.${key}`), input(key, { type: "number", min, max, value: settings[key] }), t(`lines.${key}_hint`)));
    const topics = h("textarea", { name: "wrapup_topics", rows: 5 }, settings.wrapup_topics.join("\n"));
    const outcomes = h("textarea", { name: "wrapup_outcomes", rows: 4 }, settings.wrapup_outcomes.join("\n"));

    // Texts per language: drawn again when the languages change, keeping what was typed.
    const typed = {};
    for (const [key] of TEXTS) typed[key] = { ...settings[key] };
    const textsBox = h("div", { class: "texts" });
    const canned = settings.canned_responses.map((c) => ({ ...c }));
    // The mailbox (docs/mailbox.md): when visitors may write, the answer time they are told
    // per language, and how many days a thread is kept after its last message.
    const mailboxMode = h("select", { name: "mailbox" },
      ["off", "closed", "always"].map((mode) => h("option", { value: mode, text: t(`lines.mailbox.${mode}`), selected: (settings.mailbox ?? "closed") === mode })));
    const mailboxRetention = input("mailbox_retention_days", { type: "number", min: 1, max: 60, value: settings.mailbox_retention_days ?? 14 });
    const answerTimes = { ...(settings.mailbox_answer_time ?? {}) };
    const answerBox = h("div", { class: "texts" });
    const cannedBox = h("div", { class: "canned" });
    // Risk and care (docs/risk.md): the procedure and contact for an acute chat with nobody to
    // reach, and the staff on call (supervisors of the line, from the staff list if allowed).
    const procedure = h("textarea", { name: "emergency_procedure", rows: 4, maxlength: 4000 }, settings.emergency_procedure ?? "");
    const contact = h("input", { name: "emergency_contact", maxlength: 300, value: settings.emergency_contact ?? "" });
    const onCall = new Set(settings.on_call ?? []);
    const onCallBox = h("fieldset", { class: "on-call", dataset: { field: "on_call" } }, h("legend", { text: t("lines.on_call") }), h("p", { class: "hint", text: t("lines.on_call_hint") }));
    (async () => {
      const result = ctx.can("manage_staff") ? await ctx.api("GET", "/api/staff") : { ok: false };
      const people = result.ok ? result.data.filter((s) => (s.is_active && s.is_supervisor) || onCall.has(s.id)) : [];
      const known = new Set(people.map((s) => s.id));
      // Whoever is on the list but may no longer be (deactivated, no longer a supervisor, an
      // account not shown) stays a box to untick: the server refuses the list until then.
      const strays = [...onCall].filter((id) => !known.has(id)).map((id) => ({ id, alias: id, is_active: false }));
      const choice = (person) => {
        const box = h("input", { type: "checkbox", name: `on_call.${person.id}`, id: `on-call-${person.id}`, checked: onCall.has(person.id) });
        box.addEventListener("change", () => (box.checked ? onCall.add(person.id) : onCall.delete(person.id)));
        const eligible = person.is_active && person.is_supervisor;
        return h("label", { class: "check", for: box.id }, box, eligible ? person.alias : t("lines.on_call_ineligible", { name: person.alias }));
      };
      const choices = [...people, ...strays].map(choice);
      onCallBox.append(...(choices.length ? choices : [h("p", { class: "muted", text: t("lines.on_call_none") })]));
    })();

    const currentLanguages = () => languages.value.split(/[\s,]+/).filter(Boolean);

    function renderTexts() {
      const langs = currentLanguages();
      textsBox.replaceChildren(
        ...TEXTS.map(([key, max]) =>
          h("fieldset", { dataset: { field: key } },
            h("legend", { text: t(`lines.${key}`) }),
            h("p", { class: "hint", text: t(`lines.${key}_hint`) }),
            langs.map((lang) => {
              const control = key === "privacy_note" || key === "emergency_text"
                ? h("input", { name: `${key}.${lang}`, maxlength: max, value: typed[key][lang] ?? "", lang })
                : h("textarea", { name: `${key}.${lang}`, rows: 2, maxlength: max, lang }, typed[key][lang] ?? "");
              control.addEventListener("input", () => {
                typed[key][lang] = control.value;
              });
              return field(languageName(lang), control);
            }))),
      );
    }

    function renderAnswerTimes() {
      answerBox.replaceChildren(
        h("fieldset", { dataset: { field: "mailbox_answer_time" } },
          h("legend", { text: t("lines.mailbox_answer_time") }),
          h("p", { class: "hint", text: t("lines.mailbox_answer_time_hint") }),
          currentLanguages().map((lang) => {
            const control = h("input", { name: `mailbox_answer_time.${lang}`, maxlength: 300, value: answerTimes[lang] ?? "", lang });
            control.addEventListener("input", () => {
              answerTimes[lang] = control.value;
            });
            return field(languageName(lang), control);
          })),
      );
    }

    function renderCanned() {
      const langs = currentLanguages();
      cannedBox.replaceChildren(
        canned.length ? h("ol", { class: "canned-list" }, canned.map((item, index) => {
          const lang = h("select", { name: `canned_responses.${index}.language` },
            [...new Set([...langs, item.language])].filter(Boolean).map((l) => h("option", { value: l, text: languageName(l), selected: item.language === l })));
          const title = h("input", { name: `canned_responses.${index}.title`, value: item.title, maxlength: 80 });
          const text = h("textarea", { name: `canned_responses.${index}.text`, rows: 2, maxlength: 4000 }, item.text);
          lang.addEventListener("change", () => { item.language = lang.value; });
          title.addEventListener("input", () => { item.title = title.value; });
          text.addEventListener("input", () => { item.text = text.value; });
          return h("li", { class: "canned-item" },
            h("div", { class: "field-row" }, field(t("lines.canned_language"), lang), field(t("lines.canned_title"), title)),
            field(t("lines.canned_text"), text),
            h("button", { type: "button", class: "small danger", text: t("lines.canned_remove"), "aria-label": t("lines.canned_remove_which", { title: item.title || index + 1 }), onclick: () => { canned.splice(index, 1); renderCanned(); } }));
        })) : h("p", { class: "muted", text: t("lines.canned_none") }),
        h("button", { type: "button", class: "small", id: "canned-add", text: t("lines.canned_add"), onclick: () => {
          canned.push({ language: langs[0] ?? "sv", title: "", text: "" });
          renderCanned();
          cannedBox.querySelector(`[name="canned_responses.${canned.length - 1}.title"]`)?.focus();
        } }),
      );
    }

    // Redrawn shortly after typing stops, so the layout has settled before anyone clicks Save.
    let redraw = null;
    const relayout = () => {
      window.clearTimeout(redraw);
      renderTexts();
      renderAnswerTimes();
      renderCanned();
    };
    languages.addEventListener("input", () => {
      window.clearTimeout(redraw);
      redraw = window.setTimeout(relayout, 400);
    });
    languages.addEventListener("change", relayout);
    renderTexts();
    renderAnswerTimes();
    renderCanned();

    const save = h("button", { type: "submit", class: "primary", text: t("common.save") });
    const form = h("form", { class: "line-form", novalidate: true, "aria-labelledby": "line-form-title" },
      h("h2", { id: "line-form-title", text: t("lines.settings_of", { name: settings.name, key: settings.key }) }),
      h("div", { class: "form-error" }),
      h("section", { class: "card" },
        h("h3", { text: t("lines.general") }),
        h("div", { class: "field-row" }, field(t("lines.name"), name), field(t("lines.languages"), languages, t("lines.languages_hint"))),
        h("div", { class: "field-row" }, field(t("lines.required_qualification"), qualification), field(t("lines.time_zone"), timeZone, t("lines.time_zone_hint"))),
        h("datalist", { id: "time-zones" }, zones.map((z) => h("option", { value: z }))),
        h("label", { class: "check", for: autoAccept.id }, autoAccept, t("lines.auto_accept")),
        h("label", { class: "check", for: signup.id }, signup, t("lines.roster_signup"))),
      h("section", { class: "card" },
        h("h3", { text: t("lines.limits") }),
        h("div", { class: "number-grid" }, numbers)),
      h("section", { class: "card" },
        h("h3", { text: t("lines.texts") }),
        textsBox),
      h("section", { class: "card" },
        h("h3", { text: t("lines.wrapup") }),
        h("div", { class: "field-row" },
          field(t("lines.wrapup_topics"), topics, t("lines.one_per_line")),
          field(t("lines.wrapup_outcomes"), outcomes, t("lines.one_per_line")))),
      h("section", { class: "card", id: "line-risk" },
        h("h3", { text: t("lines.risk") }),
        field(t("lines.emergency_procedure"), procedure, t("lines.emergency_procedure_hint")),
        field(t("lines.emergency_contact"), contact, t("lines.emergency_contact_hint")),
        onCallBox),
      h("section", { class: "card", dataset: { field: "practice_openings" } },
        h("h3", { text: t("lines.assignment_practice") }),
        field(t("lines.assignment"), assignment, t("lines.assignment_hint")),
        h("label", { class: "check", for: practice.id }, practice, t("lines.practice")),
        h("p", { class: "hint", text: t("lines.practice_hint") }),
        h("div", { class: "field-row" }, Object.entries(openings).map(([lang, box]) => field(t("lines.practice_openings", { lang }), box, t("lines.one_per_line"))))),
      h("section", { class: "card", id: "line-mailbox" },
        h("h3", { text: t("lines.mailbox") }),
        h("p", { class: "hint", text: t("lines.mailbox_hint") }),
        h("div", { class: "field-row" },
          field(t("lines.mailbox_mode"), mailboxMode),
          field(t("lines.mailbox_retention_days"), mailboxRetention, t("lines.mailbox_retention_days_hint"))),
        answerBox),
      h("section", { class: "card", dataset: { field: "canned_responses" } },
        h("h3", { text: t("lines.canned") }),
        h("p", { class: "hint", text: t("lines.canned_hint") }),
        cannedBox),
      h("div", { class: "actions form-end" }, save));

    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      clearErrors(form);
      const langs = currentLanguages();
      const payload = {
        key: settings.key,
        name: name.value,
        languages: langs,
        required_qualification: qualification.value,
        auto_accept: autoAccept.checked,
        roster_signup: signup.checked,
        time_zone: timeZone.value,
        wrapup_topics: topics.value.split("\n").map((s) => s.trim()).filter(Boolean),
        wrapup_outcomes: outcomes.value.split("\n").map((s) => s.trim()).filter(Boolean),
        canned_responses: canned,
        emergency_procedure: procedure.value.trim(),
        emergency_contact: contact.value.trim(),
        on_call: [...onCall],
        assignment: assignment.value,
        practice: practice.checked,
        practice_openings: Object.fromEntries(Object.entries(openings)
          .filter(([lang]) => langs.includes(lang))
          .map(([lang, box]) => [lang, box.value.split("\n").map((s) => s.trim()).filter(Boolean)])
          .filter(([, list]) => list.length)),
        mailbox: mailboxMode.value,
        mailbox_answer_time: Object.fromEntries(langs.map((lang) => [lang, (answerTimes[lang] ?? "").trim()]).filter(([, text]) => text)),
      };
      const days = mailboxRetention.value.trim();
      payload.mailbox_retention_days = days === "" ? null : Number(days);
      for (const [key] of NUMBERS) {
        const raw = controls[key].value.trim();
        payload[key] = raw === "" ? null : Number(raw);
      }
      for (const [key] of TEXTS) {
        // Only the line's languages, and no empty texts (an empty one means "none").
        payload[key] = Object.fromEntries(langs.map((lang) => [lang, (typed[key][lang] ?? "").trim()]).filter(([, text]) => text));
      }
      save.disabled = true;
      const result = await ctx.api("PUT", `/api/lines/${encodeURIComponent(settings.key)}/settings`, payload);
      save.disabled = false;
      if (!result.ok) {
        showErrors(form, result);
        return;
      }
      current = result.data;
      notice.replaceChildren(h("p", { class: "notice ok", role: "status", text: t("lines.saved", { name: result.data.name }) }));
      ctx.announce(t("lines.saved", { name: result.data.name }));
    });
    return form;
  }

  // The line's mailbox threads for a coordinator: no content, only where each stands, and
  // "Hand to…" a colleague when its counsellor is away for days.
  function handoverPanel(settings) {
    const status = h("div", { class: "handover-status", role: "status" });
    const box = h("div", { class: "table-wrap" });
    const section = h("section", { class: "card mailbox-handover", id: "line-mailbox-threads", "aria-labelledby": "handover-title" },
      h("h2", { id: "handover-title", text: t("lines.handover_title") }),
      h("p", { class: "hint", text: t("lines.handover_hint") }),
      status,
      box);

    async function load() {
      const [threads, staff] = await Promise.all([
        ctx.api("GET", `/api/mailbox/lines/${encodeURIComponent(settings.key)}/threads`),
        ctx.can("manage_staff") ? ctx.api("GET", "/api/staff") : Promise.resolve({ ok: true, data: [] }),
      ]);
      if (!alive) return;
      if (!threads.ok) {
        box.replaceChildren(h("p", { class: "notice warn", role: "alert", text: problemText(threads) }));
        return;
      }
      // Who may take a thread over: active counsellors of the line with its qualification.
      const members = (staff.ok ? staff.data : []).filter((s) => s.role === "counsellor" && s.is_active && s.qualification === settings.required_qualification && (s.lines ?? []).some((l) => l.key === settings.key));
      if (!threads.data.length) {
        box.replaceChildren(h("p", { class: "muted", text: t("lines.handover_none") }));
        return;
      }
      box.replaceChildren(h("table", {},
        h("caption", { text: t("lines.handover_caption", { name: settings.name }) }),
        h("thead", {}, h("tr", {}, ["lines.handover_status", "lines.handover_counsellor", "lines.handover_last", "lines.handover_to"].map((key) => h("th", { scope: "col", text: t(key) })))),
        h("tbody", {}, threads.data.map((thread) => row(thread, members)))));
    }

    function row(thread, members) {
      const others = members.filter((m) => m.id !== thread.counsellor_id);
      const last = formatDateTime(thread.last_at);
      const who = h("select", { name: "staff_id", "aria-label": t("lines.handover_who", { last }) },
        others.map((m) => h("option", { value: m.id, text: m.alias })));
      const error = h("p", { class: "field-error", role: "alert", hidden: true });
      const hand = h("button", { type: "submit", class: "small", text: t("lines.handover_hand"), disabled: !others.length });
      const form = h("form", { class: "hand-form", novalidate: true }, who, hand, error);
      form.addEventListener("submit", async (event) => {
        event.preventDefault();
        if (!who.value) return;
        const name = who.selectedOptions[0]?.textContent ?? "";
        hand.disabled = true;
        const result = await ctx.api("POST", `/api/mailbox/${encodeURIComponent(thread.id)}/hand`, { staff_id: who.value });
        hand.disabled = false;
        if (!result.ok) {
          error.textContent = problemText(result);
          error.hidden = false;
          return;
        }
        // What went with the thread: its booked chat and offered times lay in the first
        // counsellor's shifts, so they are cancelled (the visitor reads so in the thread).
        const { booked = 0, offered = 0 } = result.data.cancelled ?? {};
        const cancelled = booked && offered ? t("lines.handover_cancelled_both")
          : booked ? t("lines.handover_cancelled_booked")
          : offered ? t("lines.handover_cancelled_offered", { count: offered })
          : "";
        const done = [t("lines.handover_done", { name }), cancelled].filter(Boolean).join(" ");
        status.replaceChildren(h("p", { class: "notice ok", text: done }));
        ctx.announce(done);
        await load();
      });
      return h("tr", { dataset: { thread: thread.id } },
        h("td", { text: t(`mailbox.status.${thread.status}`) }),
        h("td", { text: thread.counsellor ?? t("lines.handover_nobody") }),
        h("td", {}, h("time", { datetime: thread.last_at, text: last })),
        h("td", {}, others.length ? form : h("span", { class: "muted", text: t("lines.handover_no_colleague") })));
    }

    load();
    return section;
  }

  function newLineForm() {
    const key = h("input", { name: "key", required: true, maxlength: 32, autocapitalize: "none", spellcheck: "false" });
    const name = h("input", { name: "name", required: true, maxlength: 100 });
    const languages = h("input", { name: "languages", value: "sv, en", "data-error-words": "languages,language" });
    const qualification = h("select", { name: "required_qualification" }, ["psychologist", "volunteer"].map((q) => h("option", { value: q, text: t(`qualification.${q}`) })));
    const form = h("form", { class: "card", novalidate: true, "aria-labelledby": "new-line-title" },
      h("h2", { id: "new-line-title", text: t("lines.new") }),
      h("div", { class: "form-error" }),
      h("div", { class: "field-row" },
        field(t("lines.key"), key, t("lines.key_hint")),
        field(t("lines.name"), name),
        field(t("lines.languages"), languages),
        field(t("lines.required_qualification"), qualification)),
      h("div", { class: "actions" },
        h("button", { type: "submit", class: "primary", text: t("lines.create") }),
        h("button", { type: "button", text: t("common.cancel"), onclick: () => loadLine(lineSelect.value) })));
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      const result = await ctx.api("POST", "/api/lines", {
        key: key.value.trim(),
        name: name.value.trim(),
        languages: languages.value.split(/[\s,]+/).filter(Boolean),
        required_qualification: qualification.value,
      });
      if (!result.ok) return showErrors(form, result);
      notice.replaceChildren(h("p", { class: "notice ok", role: "status", text: t("lines.created", { name: result.data.name }) }));
      await loadLines(result.data.key);
    });
    body.replaceChildren(form);
    key.focus();
  }

  loadLines();
  return () => {
    alive = false;
  };
}
