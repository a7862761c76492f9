// The console shell: sign-in, navigation, languages, and the shared context every view gets.
//
// Contract (docs/console.md): each view module under views/ exports
//   mount(root, ctx) -> cleanup function
// and may export `persistent = true` to stay mounted (hidden) when the person navigates away,
// e.g. the chats view, whose drafts must survive a look at the roster.

const STATIC = "/console/static";
const AREAS = ["core", "coord", "chats", "care", "risk", "mailbox"];
export const LANGUAGES = ["sv", "en"];

// Which permission (from GET /api/staff/me) shows which route; order = navigation order.
export const ROUTES = [
  { name: "chats", permission: "take_chats" },
  { name: "supervise", permission: "supervise" },
  { name: "mailbox", permission: "take_chats" },
  { name: "me", permission: "own_account" },
  { name: "roster", permission: "manage_roster" },
  { name: "staff", permission: "manage_staff" },
  { name: "lines", permission: "manage_lines" },
  { name: "stats", permission: "read_statistics" },
  { name: "practice", permission: "play_visitor" },
  { name: "audit", permission: "read_audit" },
  { name: "directory", permission: "manage_directory" },
  { name: "deployment", permission: "deployment" },
];

const catalogues = {}; // lang -> merged {key: text}
const listeners = new Map();
let reauthPending = null;

export const ctx = {
  me: null,
  lang: pickLanguage(),

  // A text in the console's language (English when missing there, else the key itself). With
  // a numeric `count`, the catalogue's CLDR plural form of the key is used when it has them
  // ("roster.shifts.one", "roster.shifts.other"): "1 shift", "2 shifts".
  t(key, vars) {
    const text = lookup(key, vars) ?? key;
    if (!vars) return text;
    return text.replace(/\{(\w+)\}/g, (whole, name) => (name in vars ? String(vars[name]) : whole));
  },

  async api(method, path, body) {
    let result = await request(method, path, body);
    if (result.status === 401 && ctx.me) {
      await ctx.reauth();
      result = await request(method, path, body);
    }
    return result;
  },

  reauth() {
    if (!reauthPending) {
      reauthPending = signInDialog().finally(() => {
        reauthPending = null;
      });
    }
    return reauthPending;
  },

  on(event, fn) {
    if (!listeners.has(event)) listeners.set(event, new Set());
    listeners.get(event).add(fn);
    return () => listeners.get(event)?.delete(fn);
  },

  emit(event, data) {
    for (const fn of [...(listeners.get(event) ?? [])]) {
      try {
        fn(data);
      } catch (error) {
        console.error(error);
      }
    }
  },

  navigate(route) {
    const target = route.startsWith("#") ? route : `#/${route}`;
    if (location.hash === target) showRoute();
    else location.hash = target;
  },

  announce(text) {
    const region = document.getElementById("live");
    if (!region) return;
    // Clearing first makes screen readers repeat an identical message.
    region.textContent = "";
    window.setTimeout(() => {
      region.textContent = text;
    }, 50);
  },

  can(permission) {
    return Boolean(ctx.me?.permissions?.includes(permission));
  },
};

function lookup(key, vars) {
  for (const lang of [ctx.lang, "en"]) {
    const table = catalogues[lang];
    if (!table) continue;
    if (typeof vars?.count === "number") {
      const form = new Intl.PluralRules(lang).select(vars.count);
      const plural = table[`${key}.${form}`] ?? table[`${key}.other`];
      if (plural !== undefined) return plural;
    }
    if (table[key] !== undefined) return table[key];
  }
  return undefined;
}

// --- Small helpers views share --------------------------------------------------------------

// h("button", {class: "primary", onclick: fn, text: "Save"}, child, ...): a DOM element.
// Text always goes in as text (never HTML), so what the server sends cannot inject markup.
export function h(tag, attrs, ...children) {
  const element = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs ?? {})) {
    if (value === null || value === undefined || value === false) continue;
    if (name === "text") element.textContent = value;
    else if (name === "class") element.className = value;
    else if (name.startsWith("on") && typeof value === "function") {
      element.addEventListener(name.slice(2), value);
    } else if (name === "dataset") Object.assign(element.dataset, value);
    else if (value === true) element.setAttribute(name, "");
    else element.setAttribute(name, String(value));
  }
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    element.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return element;
}

let uid = 0;
export function nextId(prefix = "f") {
  uid += 1;
  return `${prefix}-${uid}`;
}

// A labelled form field: returns the wrapper; the control has `name` so errors can find it.
export function field(label, control, hint) {
  const id = control.id || nextId(control.name || "field");
  control.id = id;
  const wrapper = h("div", { class: "field", dataset: { field: control.name || "" } });
  const labelEl = h("label", { for: id, text: label });
  wrapper.append(labelEl);
  if (hint) {
    const hintEl = h("p", { class: "hint", id: `${id}-hint`, text: hint });
    control.setAttribute("aria-describedby", hintEl.id);
    wrapper.append(hintEl);
  }
  wrapper.append(control);
  return wrapper;
}

export function clearErrors(form) {
  for (const el of form.querySelectorAll(".field-error, .form-error-text")) el.remove();
  for (const el of form.querySelectorAll("[aria-invalid]")) {
    el.removeAttribute("aria-invalid");
    const described = (el.getAttribute("aria-describedby") || "")
      .split(" ")
      .filter((id) => id && !id.endsWith("-error"));
    if (described.length) el.setAttribute("aria-describedby", described.join(" "));
    else el.removeAttribute("aria-describedby");
  }
}

// Show the server's answer next to the fields it names. pydantic's 422 gives a list with
// `loc` (["body", "texts", "sv"]); Lykta's own refusals are one sentence, which goes next to
// the first field the sentence names (or its data-error-words), else at the top of the form.
export function showErrors(form, result) {
  clearErrors(form);
  const detail = result?.data?.detail;
  const problems = Array.isArray(detail)
    ? detail.map((d) => ({ loc: (d.loc || []).filter((p) => p !== "body"), msg: translated(d) }))
    : [{ loc: [], msg: typeof detail === "string" ? detail : ctx.t("error.generic", { status: result?.status ?? "?" }) }];
  let first = null;
  for (const problem of problems) {
    const control = controlFor(form, problem);
    const message = cleanMessage(problem.msg);
    if (control) {
      const id = `${control.id || nextId("c")}-error`;
      if (!control.id) control.id = id.replace(/-error$/, "");
      if (!form.querySelector(`#${CSS.escape(id)}`)) {
        const error = h("p", { class: "field-error", id, text: message });
        const wrapper = control.closest(".field") || control.parentElement;
        wrapper.append(error);
      } else {
        form.querySelector(`#${CSS.escape(id)}`).textContent += ` ${message}`;
      }
      control.setAttribute("aria-invalid", "true");
      const described = (control.getAttribute("aria-describedby") || "").split(" ").filter(Boolean);
      if (!described.includes(id)) described.push(id);
      control.setAttribute("aria-describedby", described.join(" "));
      first = first || control;
    } else {
      const box = form.querySelector(".form-error") || form.prepend(h("div", { class: "form-error" })) || form.querySelector(".form-error");
      box.append(h("p", { class: "form-error-text", role: "alert", text: problem.loc.length ? `${problem.loc.join(" › ")}: ${message}` : message }));
    }
  }
  if (first) first.focus();
  ctx.announce(problems.map((p) => cleanMessage(p.msg)).join(" "));
}

// pydantic's common refusals in the console's language; anything else as the server said it.
function translated(problem) {
  const key = `error.${problem.type}`;
  // The limit a refusal names is what its text counts ("at least 1 character").
  const vars = { ...(problem.ctx || {}) };
  const limit = Object.values(vars).find((value) => typeof value === "number");
  if (limit !== undefined) vars.count = limit;
  const text = ctx.t(key, vars);
  return text !== key && !/\{\w+\}/.test(text) ? text : problem.msg;
}

function cleanMessage(msg) {
  return String(msg ?? "").replace(/^Value error, /, "");
}

function controlFor(form, problem) {
  const { loc, msg } = problem;
  // The most specific name first: texts.sv, then texts, then walk up.
  for (let n = loc.length; n > 0; n -= 1) {
    const name = loc.slice(0, n).join(".");
    const control = form.querySelector(`[name="${CSS.escape(name)}"]`);
    if (control) return control;
    const group = form.querySelector(`[data-field="${CSS.escape(name)}"] input, [data-field="${CSS.escape(name)}"] select, [data-field="${CSS.escape(name)}"] textarea`);
    if (group) return group;
  }
  if (loc.length) return null;
  // A sentence: the field it names first (the earliest, then the longest name) gets it.
  const text = String(msg || "").toLowerCase();
  let best = null;
  const consider = (control, words) => {
    for (const raw of words) {
      const word = raw.trim().toLowerCase();
      const at = word ? text.indexOf(word) : -1;
      if (at >= 0 && (!best || at < best.at || (at === best.at && word.length > best.length))) {
        best = { control, at, length: word.length };
      }
    }
  };
  for (const control of form.querySelectorAll("[name]")) {
    if (control.type === "hidden") continue;
    const words = control.dataset.errorWords ? control.dataset.errorWords.split(",") : [control.name, control.name.replace(/_/g, " ")];
    consider(control, words);
  }
  for (const group of form.querySelectorAll("[data-field]")) {
    const name = group.dataset.field;
    const control = group.querySelector("input, select, textarea");
    if (name && control) consider(control, [name, name.replace(/_/g, " ")]);
  }
  return best ? best.control : null;
}

// A yes/no question in a modal dialog (not window.confirm: that one cannot be styled or translated).
export function confirmAction(question, { confirm, danger = false } = {}) {
  return new Promise((resolve) => {
    const dialog = h("dialog", { class: "confirm-dialog", "aria-labelledby": "confirm-text" });
    const yes = h("button", { type: "button", class: danger ? "danger" : "primary", text: confirm || ctx.t("common.yes") });
    const no = h("button", { type: "button", text: ctx.t("common.cancel") });
    const finish = (answer) => {
      dialog.close();
      dialog.remove();
      resolve(answer);
    };
    yes.addEventListener("click", () => finish(true));
    no.addEventListener("click", () => finish(false));
    dialog.addEventListener("cancel", (event) => {
      event.preventDefault();
      finish(false);
    });
    dialog.append(h("p", { id: "confirm-text", text: question }), h("div", { class: "actions" }, yes, no));
    document.body.append(dialog);
    dialog.showModal();
    no.focus();
  });
}

// A local calendar date as YYYY-MM-DD (what the roster API takes), and date arithmetic on it.
export function isoDate(date) {
  const pad = (n) => String(n).padStart(2, "0");
  return `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())}`;
}

// Today's date as YYYY-MM-DD where the clock shows `zone`'s time (a line's roster is in its
// own zone, whatever the browser's), or the browser's own date without a zone.
export function todayIn(zone) {
  if (!zone) return isoDate(new Date());
  return new Intl.DateTimeFormat("en-CA", { timeZone: zone, year: "numeric", month: "2-digit", day: "2-digit" }).format(new Date());
}

export function addDays(day, days) {
  const [y, m, d] = day.split("-").map(Number);
  return isoDate(new Date(y, m - 1, d + days));
}

export function formatDay(day, options) {
  const [y, m, d] = day.split("-").map(Number);
  return new Intl.DateTimeFormat(ctx.lang === "sv" ? "sv-SE" : "en-GB", options ?? { weekday: "short", day: "numeric", month: "short" }).format(new Date(y, m - 1, d));
}

// The message of a refused request, for a notice (not next to a field).
export function problemText(result) {
  const detail = result?.data?.detail;
  if (typeof detail === "string") return detail;
  if (Array.isArray(detail)) return detail.map((d) => `${(d.loc || []).filter((p) => p !== "body").join(" › ")}: ${cleanMessage(d.msg)}`).join(" ");
  return ctx.t("error.generic", { status: result?.status ?? "?" });
}

// "Svenska (sv)": a language code as people read it, in the console's language.
export function languageName(code) {
  try {
    const name = new Intl.DisplayNames([ctx.lang], { type: "language" }).of(code);
    return name && name !== code ? `${name} (${code})` : code;
  } catch {
    return code;
  }
}

export function formatDateTime(iso, options) {
  if (!iso) return "";
  const date = new Date(iso);
  return new Intl.DateTimeFormat(ctx.lang === "sv" ? "sv-SE" : "en-GB", options ?? { dateStyle: "medium", timeStyle: "short" }).format(date);
}

export function formatTime(iso) {
  return formatDateTime(iso, { hour: "2-digit", minute: "2-digit" });
}

// --- Time zones -----------------------------------------------------------------------------
// A line's roster is in the line's zone. Times are shown there, as the roster has them, and
// carry the zone's short name ("CET") wherever it differs from the browser's own zone.

function offsetMinutes(zone, date) {
  const parts = new Intl.DateTimeFormat("en-US", {
    timeZone: zone, hourCycle: "h23", year: "numeric", month: "numeric", day: "numeric", hour: "numeric", minute: "numeric",
  }).formatToParts(date);
  const get = (type) => Number(parts.find((p) => p.type === type)?.value);
  const asUtc = Date.UTC(get("year"), get("month") - 1, get("day"), get("hour"), get("minute"));
  return Math.round((asUtc - Math.floor(date.getTime() / 60000) * 60000) / 60000);
}

// The zone's short name at that moment if its clock differs from the browser's, else "".
export function zoneLabel(zone, when) {
  if (!zone) return "";
  const date = when instanceof Date ? when : new Date(when ?? Date.now());
  try {
    if (offsetMinutes(zone, date) === -date.getTimezoneOffset()) return "";
    const parts = new Intl.DateTimeFormat(locale(), { timeZone: zone, timeZoneName: "short" }).formatToParts(date);
    return parts.find((p) => p.type === "timeZoneName")?.value ?? zone;
  } catch {
    return "";
  }
}

// "18:00" as the clock shows it in `zone` (the browser's own zone without one).
export function clockIn(when, zone) {
  const date = when instanceof Date ? when : new Date(when);
  const options = { hour: "2-digit", minute: "2-digit", hourCycle: "h23" };
  if (zone) options.timeZone = zone;
  try {
    return new Intl.DateTimeFormat(locale(), options).format(date);
  } catch {
    return new Intl.DateTimeFormat(locale(), { hour: "2-digit", minute: "2-digit", hourCycle: "h23" }).format(date);
  }
}

// "18:00–21:00", plus " CET" when the line's zone is not the browser's.
export function spanIn(start, end, zone, at) {
  const label = zoneLabel(zone, at);
  return label ? `${start}–${end} ${label}` : `${start}–${end}`;
}

function locale() {
  return ctx.lang === "sv" ? "sv-SE" : "en-GB";
}

// --- Dates and times typed in the console's language ----------------------------------------
// A native date or time input follows the browser's own locale (mm/dd/yyyy and 6:00 PM in an
// American browser), not the console's: these are text fields that read and write dates as
// the console's language does (2025-03-10 in Swedish, 10/03/2025 in English) and accept ISO
// dates in either. dateValue() gives what the API takes: "2025-03-10", "" when empty, or the
// text as typed when it is no date (the server's refusal then appears next to the field).

export function parseDate(text) {
  const value = String(text ?? "").trim();
  let y;
  let m;
  let d;
  let match = /^(\d{4})-(\d{1,2})-(\d{1,2})$/.exec(value);
  if (match) [, y, m, d] = match.map(Number);
  else if ((match = /^(\d{1,2})[./-](\d{1,2})[./-](\d{4})$/.exec(value))) [, d, m, y] = match.map(Number);
  else return null;
  const date = new Date(Date.UTC(y, m - 1, d));
  if (date.getUTCFullYear() !== y || date.getUTCMonth() !== m - 1 || date.getUTCDate() !== d) return null;
  return `${String(y).padStart(4, "0")}-${String(m).padStart(2, "0")}-${String(d).padStart(2, "0")}`;
}

export function parseTime(text) {
  const value = String(text ?? "").trim();
  const match = /^(\d{1,2})(?:[:.]?(\d{2}))?$/.exec(value);
  if (!match) return null;
  const hours = Number(match[1]);
  const minutes = Number(match[2] ?? 0);
  if (hours > 23 || minutes > 59) return null;
  return `${String(hours).padStart(2, "0")}:${String(minutes).padStart(2, "0")}`;
}

export function showDate(iso) {
  if (!iso) return "";
  const [y, m, d] = String(iso).split("-");
  if (!d) return String(iso);
  return ctx.lang === "sv" ? `${y}-${m}-${d}` : `${d}/${m}/${y}`;
}

function typedField(kind, attrs, shown, parse) {
  const { value, ...rest } = attrs ?? {};
  const input = h("input", { type: "text", autocomplete: "off", spellcheck: "false", placeholder: ctx.t(`${kind}.placeholder`), ...rest, dataset: { kind } });
  input.value = shown(value);
  // Once the person leaves the field, a date or time written another way is shown the
  // console's way; anything else stays as typed.
  input.addEventListener("change", () => {
    const parsed = parse(input.value);
    if (parsed) input.value = shown(parsed);
  });
  return input;
}

export function dateInput(attrs) {
  return typedField("date", attrs, showDate, parseDate);
}

export function timeInput(attrs) {
  return typedField("time", attrs, (value) => value ?? "", parseTime);
}

export function dateValue(input) {
  const text = input.value.trim();
  return text ? parseDate(text) ?? text : "";
}

export function timeValue(input) {
  const text = input.value.trim();
  return text ? parseTime(text) ?? text : "";
}

export function setDate(input, iso) {
  input.value = showDate(iso);
}

// --- HTTP -----------------------------------------------------------------------------------

async function request(method, path, body) {
  const headers = { Accept: "application/json" };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  if (method !== "GET" && ctx.me?.csrf_token) headers["X-CSRF-Token"] = ctx.me.csrf_token;
  let response;
  try {
    response = await fetch(path, {
      method,
      headers,
      credentials: "same-origin",
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch (error) {
    return { ok: false, status: 0, data: { detail: ctx.t("error.network") } };
  }
  let data = null;
  const type = response.headers.get("content-type") || "";
  if (type.includes("json")) {
    try {
      data = await response.json();
    } catch {
      data = null;
    }
  } else if (response.status !== 204) {
    data = await response.text();
  }
  return { ok: response.ok, status: response.status, data, headers: response.headers };
}

// --- Languages ------------------------------------------------------------------------------

function pickLanguage() {
  const stored = sessionStorage.getItem("lykta.lang");
  if (LANGUAGES.includes(stored)) return stored;
  const browser = (navigator.language || "en").slice(0, 2);
  return LANGUAGES.includes(browser) ? browser : "sv";
}

export async function loadLanguage(lang) {
  if (catalogues[lang]) return;
  const merged = {};
  await Promise.all(
    AREAS.map(async (area) => {
      try {
        const response = await fetch(`${STATIC}/i18n/${lang}.${area}.json`, { credentials: "same-origin" });
        if (response.ok) merged[area] = await response.json();
      } catch {
        // A missing area (another part not written yet) falls back to English, then the key.
      }
    }),
  );
  catalogues[lang] = Object.assign({}, ...AREAS.map((area) => merged[area] || {}));
}

// The language asked for last wins, even when an earlier one's catalogue arrives after it.
let languageWanted = null;

async function setLanguage(lang) {
  languageWanted = lang;
  await Promise.all([loadLanguage("en"), loadLanguage(lang)]);
  if (languageWanted !== lang) return false;
  ctx.lang = lang;
  sessionStorage.setItem("lykta.lang", lang);
  document.documentElement.lang = lang;
  translateStatic();
  return true;
}

function translateStatic() {
  for (const el of document.querySelectorAll("[data-i18n]")) el.textContent = ctx.t(el.dataset.i18n);
  for (const el of document.querySelectorAll("[data-i18n-label]")) el.setAttribute("aria-label", ctx.t(el.dataset.i18nLabel));
  document.title = ctx.t("app.title");
  const select = document.getElementById("lang");
  if (select) select.value = ctx.lang;
}

// --- Sign-in --------------------------------------------------------------------------------

// The sign-in form, used on the page at start and in the dialog when a session ended.
function signInForm(onSignedIn, { username } = {}) {
  const user = h("input", { name: "username", autocomplete: "username", required: true, autocapitalize: "none", spellcheck: "false", value: username || null });
  const password = h("input", { name: "password", type: "password", autocomplete: "current-password", required: true });
  const code = h("input", { name: "code", autocomplete: "one-time-code", inputmode: "numeric", "data-error-words": "code" });
  const submit = h("button", { type: "submit", class: "primary", text: ctx.t("signin.submit") });
  const form = h(
    "form",
    { class: "signin-form", novalidate: true },
    h("div", { class: "form-error" }),
    field(ctx.t("signin.username"), user),
    field(ctx.t("signin.password"), password),
    field(ctx.t("signin.code"), code, codeHint()),
    h("div", { class: "actions" }, submit),
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    clearErrors(form);
    submit.disabled = true;
    const body = { username: user.value.trim(), password: password.value };
    if (code.value.trim()) body.code = code.value.trim();
    const result = await request("POST", "/api/staff/session", body);
    submit.disabled = false;
    if (result.ok) {
      password.value = "";
      code.value = "";
      await onSignedIn(result.data);
      return;
    }
    const message = signInRefusal(result);
    const box = form.querySelector(".form-error");
    box.replaceChildren(h("p", { class: "form-error-text", role: "alert", text: message }));
    code.value = "";
    if (result.status === 422) showErrors(form, result);
    (result.status === 429 ? submit : password).focus();
  });
  return form;
}

// The code's hint; where this deployment lets accounts go without a code (the demo), it says
// so for everyone alike: the page never tells whether one account has an authenticator.
let codeHintKind = null;

function codeHint() {
  const base = ctx.t("signin.code_hint");
  return codeHintKind ? `${base} ${ctx.t(`signin.code_hint.${codeHintKind}`)}` : base;
}

function signInRefusal(result) {
  const reason = result.data?.reason;
  if (result.status === 429) {
    const wait = Number(result.headers?.get("Retry-After")) || null;
    if (wait && wait > 90) return ctx.t("signin.locked_for", { count: Math.ceil(wait / 60) });
    return wait ? ctx.t("signin.slow", { count: wait }) : ctx.t("signin.locked");
  }
  if (reason && ctx.t(`signin.reason.${reason}`) !== `signin.reason.${reason}`) {
    return ctx.t(`signin.reason.${reason}`);
  }
  if (result.status === 401) return ctx.t("signin.refused");
  if (result.status === 0) return ctx.t("error.network");
  return typeof result.data?.detail === "string" ? result.data.detail : ctx.t("error.generic", { status: result.status });
}

async function loadMe() {
  const result = await request("GET", "/api/staff/me");
  if (!result.ok) return null;
  return result.data;
}

function signInPage() {
  const main = document.getElementById("main");
  document.getElementById("topbar").hidden = true;
  const heading = h("h1", { text: ctx.t("signin.title") });
  const form = signInForm(async () => {
    ctx.me = await loadMe();
    await startConsole();
  });
  main.replaceChildren(
    h("section", { class: "signin-page" },
      h("div", { class: "card signin-card" },
        h("p", { class: "brand-large", text: "Lykta" }),
        heading,
        languagePicker("lang-signin"),
        form)),
  );
  form.querySelector("input[name=username]").focus();
}

// Shown over the current screen when the session ended: views stay mounted underneath.
function signInDialog() {
  return new Promise((resolve) => {
    const dialog = document.getElementById("signin-dialog");
    const before = ctx.me;
    const form = signInForm(
      async () => {
        const me = await loadMe();
        dialog.close();
        dialog.replaceChildren();
        if (me && before && me.id !== before.id) {
          // Someone else signed in at this desk: nothing of the previous person may stay.
          location.reload();
          return;
        }
        ctx.me = me;
        ctx.emit("session", me);
        ctx.announce(ctx.t("signin.again_done"));
        resolve();
      },
      { username: before?.username },
    );
    dialog.replaceChildren(
      h("h2", { id: "signin-dialog-title", text: ctx.t("signin.expired_title") }),
      h("p", { text: ctx.t("signin.expired_text") }),
      form,
    );
    dialog.setAttribute("aria-labelledby", "signin-dialog-title");
    // Esc must not dismiss it: without a session nothing works.
    dialog.addEventListener("cancel", (event) => event.preventDefault());
    if (!dialog.open) dialog.showModal();
    (form.querySelector("input[name=password]")).focus();
  });
}

function languagePicker(id) {
  const select = h(
    "select",
    { id, class: "lang-select" },
    LANGUAGES.map((lang) => h("option", { value: lang, text: ctx.t(`lang.${lang}`), lang, selected: lang === ctx.lang })),
  );
  select.addEventListener("change", async () => {
    if (!(await setLanguage(select.value))) return;
    if (ctx.me) {
      renderNav();
      // After the navigation is drawn again, so views may put their badges back on it.
      ctx.emit("lang", ctx.lang);
      remountCurrent();
    } else {
      ctx.emit("lang", ctx.lang);
      signInPage();
    }
  });
  return h("div", { class: "lang-picker" }, h("label", { for: id, text: ctx.t("lang.label") }), select);
}

// --- Shell: navigation and views ------------------------------------------------------------

const mounted = new Map(); // route name -> {root, cleanup, persistent}
const loadAttempts = new Map(); // route name -> failed loads of its module so far
const unread = new Map(); // route name -> count, for the navigation's badges

ctx.on("unread", (event) => {
  if (!event?.route) return;
  unread.set(event.route, Number(event.count) || 0);
  paintBadge(event.route);
});

function paintBadge(route) {
  const badge = document.querySelector(`[data-badge="${route}"]`);
  if (!badge) return;
  const count = unread.get(route) || 0;
  badge.hidden = count === 0;
  badge.textContent = String(count);
}
let current = null;

function visibleRoutes() {
  const routes = ROUTES.filter((route) => ctx.can(route.permission));
  // Without shifts of their own (coordinators, admins), "me" is only the account: last.
  if (ctx.can("own_shifts")) return routes;
  return [...routes.filter((r) => r.name !== "me"), ...routes.filter((r) => r.name === "me")];
}

function routeLabel(name) {
  return name === "me" && !ctx.can("own_shifts") ? ctx.t("nav.account") : ctx.t(`nav.${name}`);
}

function renderNav() {
  const nav = document.getElementById("nav");
  const routes = visibleRoutes();
  nav.replaceChildren(
    ...routes.map((route, index) =>
      h("li", {},
        h("a", {
          href: `#/${route.name}`,
          id: `nav-${route.name}`,
          "aria-current": current === route.name ? "page" : null,
          "aria-keyshortcuts": index < 9 ? `Alt+${index + 1}` : null,
        },
        h("span", { text: routeLabel(route.name) }),
        h("span", { class: "badge", hidden: true, "data-badge": route.name }))),
    ),
  );
  for (const route of unread.keys()) paintBadge(route);
  // An interpreter's account is a counsellor's with the interpreter qualification.
  const role = ctx.me?.qualification === "interpreter" ? "interpreter" : ctx.me?.role;
  document.getElementById("who-name").textContent = ctx.me ? `${ctx.me.alias} (${ctx.t(`role.${role}`)})` : "";
  const picker = document.getElementById("lang-slot");
  picker.replaceChildren(languagePicker("lang"));
  translateStatic();
}

function routeName() {
  const match = /^#\/([a-z-]+)/.exec(location.hash);
  return match ? match[1] : null;
}

async function showRoute() {
  if (!ctx.me) return;
  const routes = visibleRoutes();
  let name = routeName();
  if (!routes.some((route) => route.name === name)) {
    name = routes[0]?.name ?? "me";
    history.replaceState(null, "", `#/${name}`);
  }
  if (current && current !== name) {
    const previous = mounted.get(current);
    if (previous?.persistent) previous.root.hidden = true;
    else if (previous) unmount(current);
  }
  current = name;
  for (const link of document.querySelectorAll("#nav a")) {
    if (link.id === `nav-${name}`) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
  document.title = `${routeLabel(name)} · ${ctx.t("app.title")}`;
  const existing = mounted.get(name);
  if (existing) {
    existing.root.hidden = false;
  } else {
    await mountView(name);
  }
  const main = document.getElementById("main");
  main.focus({ preventScroll: true });
}

async function mountView(name) {
  const main = document.getElementById("main");
  const root = h("section", { class: "view", id: `view-${name}`, "aria-labelledby": `view-${name}-title` });
  main.append(root);
  const entry = { root, cleanup: null, persistent: false };
  mounted.set(name, entry);
  let module = null;
  try {
    // A failed fetch may stay in the browser's module map: a retry asks under a new URL.
    const retry = loadAttempts.get(name);
    module = await import(`${STATIC}/views/${name}.js${retry ? `?attempt=${retry}` : ""}`);
  } catch (error) {
    loadAttempts.set(name, (loadAttempts.get(name) ?? 0) + 1);
    console.warn(`view ${name} could not be loaded`, error);
  }
  if (mounted.get(name) !== entry) return; // navigated away while loading
  if (!module?.mount) {
    // A network hiccup or a refused request: say so and offer to try again, in place.
    const again = h("button", { type: "button", class: "secondary", text: ctx.t("view.retry") });
    again.addEventListener("click", () => {
      unmount(name);
      if (current === name) showRoute();
    });
    root.append(
      h("h1", { id: `view-${name}-title`, text: routeLabel(name) }),
      h("p", { class: "form-error-text", role: "alert", text: ctx.t("view.unloaded") }),
      again,
    );
    return;
  }
  entry.persistent = Boolean(module.persistent);
  try {
    entry.cleanup = module.mount(root, ctx) || null;
  } catch (error) {
    console.error(error);
    root.append(h("p", { class: "form-error-text", role: "alert", text: ctx.t("view.failed") }));
  }
}

function unmount(name) {
  const entry = mounted.get(name);
  if (!entry) return;
  mounted.delete(name);
  try {
    entry.cleanup?.();
  } catch (error) {
    console.error(error);
  }
  entry.root.remove();
}

function remountCurrent() {
  // Persistent views stay (they listen to "lang"); the others are drawn again in the new language.
  for (const [name, entry] of [...mounted]) if (!entry.persistent) unmount(name);
  showRoute();
}

async function signOut() {
  for (const name of [...mounted.keys()]) unmount(name);
  await request("DELETE", "/api/staff/session");
  ctx.me = null;
  ctx.emit("signout");
  location.hash = "";
  location.reload();
}

async function startConsole() {
  document.getElementById("topbar").hidden = false;
  const main = document.getElementById("main");
  main.replaceChildren();
  renderNav();
  ctx.emit("session", ctx.me);
  await showRoute();
}

function shortcuts(event) {
  if (!ctx.me || !event.altKey || event.ctrlKey || event.metaKey) return;
  if (document.getElementById("signin-dialog").open) return;
  const digit = Number(event.key);
  if (!Number.isInteger(digit) || digit < 1) return;
  const route = visibleRoutes()[digit - 1];
  if (route) {
    event.preventDefault();
    ctx.navigate(route.name);
  }
}

async function boot() {
  await setLanguage(ctx.lang);
  document.getElementById("signout").addEventListener("click", signOut);
  // The skip link must not change the hash: the hash is the router's.
  document.querySelector(".skip-link")?.addEventListener("click", (event) => {
    event.preventDefault();
    document.getElementById("main").focus();
  });
  window.addEventListener("hashchange", showRoute);
  document.addEventListener("keydown", shortcuts);
  // Asked first so that a browser without a session meets no 401 (logged as an error).
  const page = await request("GET", "/api/staff/session");
  codeHintKind = page.ok ? page.data?.code_hint ?? null : null;
  ctx.me = page.ok && page.data?.signed_in ? await loadMe() : null;
  if (ctx.me) await startConsole();
  else signInPage();
  document.body.dataset.ready = "true";
}

if (document.getElementById("main")?.dataset.shell === "console") boot();
