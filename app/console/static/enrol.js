// The enrolment page: /enrol#<token>. Sets the password and TOTP, then shows recovery codes once.
// The token stays in the fragment (never sent in a URL); it travels only in POST bodies.
import { ctx, h, field, showErrors, clearErrors, formatDateTime, loadLanguage, LANGUAGES } from "./core.js";

const main = document.getElementById("main");
let token = decodeURIComponent(location.hash.replace(/^#/, ""));
let status = null;
let totp = null;
let enrolled = null; // kept in memory only, so a language switch can show the codes again

async function start() {
  const stored = sessionStorage.getItem("lykta.lang");
  const browser = (navigator.language || "sv").slice(0, 2);
  ctx.lang = LANGUAGES.includes(stored) ? stored : LANGUAGES.includes(browser) ? browser : "sv";
  await Promise.all([loadLanguage("en"), loadLanguage(ctx.lang)]);
  // The fragment has done its job: keep it out of the history and of anyone looking later.
  history.replaceState(null, "", location.pathname);
  await render();
  document.body.dataset.ready = "true";
}

function page(...children) {
  document.documentElement.lang = ctx.lang;
  document.title = ctx.t("enrol.title");
  const select = h(
    "select",
    { id: "lang" },
    LANGUAGES.map((lang) => h("option", { value: lang, lang, text: ctx.t(`lang.${lang}`), selected: lang === ctx.lang })),
  );
  select.addEventListener("change", async () => {
    ctx.lang = select.value;
    sessionStorage.setItem("lykta.lang", ctx.lang);
    await loadLanguage(ctx.lang);
    await render(true);
  });
  main.replaceChildren(
    h("div", { class: "signin-page" },
      h("div", { class: "card enrol-card" },
        h("p", { class: "brand-large", text: "Lykta" }),
        h("h1", { text: ctx.t("enrol.title") }),
        h("div", { class: "lang-picker" }, h("label", { for: "lang", text: ctx.t("lang.label") }), select),
        ...children)),
  );
}

async function render(keep = false) {
  if (enrolled) {
    done(enrolled);
    return;
  }
  if (!token) {
    page(h("p", { class: "notice warn", role: "alert", text: ctx.t("enrol.no_token") }));
    return;
  }
  if (!keep || !status) {
    page(h("p", { text: ctx.t("enrol.checking") }));
    const result = await ctx.api("POST", "/api/enrolment/status", { token });
    if (!result.ok) {
      page(h("p", { class: "notice warn", role: "alert", text: result.status === 410 || result.status === 404 ? ctx.t("enrol.link_invalid") : String(result.data?.detail ?? ctx.t("error.generic", { status: result.status })) }));
      return;
    }
    status = result.data;
  }
  if (!status.needs_password && !status.needs_totp) {
    page(h("p", { class: "notice", text: ctx.t("enrol.nothing") }), h("p", {}, h("a", { href: "/console", text: ctx.t("enrol.to_console") })));
    return;
  }
  if (status.needs_totp && !totp) {
    const result = await ctx.api("POST", "/api/enrolment/totp", { token });
    if (!result.ok) {
      page(h("p", { class: "notice warn", role: "alert", text: String(result.data?.detail ?? ctx.t("error.generic", { status: result.status })) }));
      return;
    }
    totp = result.data;
  }
  page(...enrolForm());
}

function enrolForm() {
  const parts = [
    h("p", { text: ctx.t("enrol.welcome", { alias: status.alias, username: status.username }) }),
    h("p", { class: "muted", text: ctx.t("enrol.expires", { when: formatDateTime(status.expires_at) }) }),
  ];
  const form = h("form", { class: "enrol-form", novalidate: true }, h("div", { class: "form-error" }));
  let password = null;
  let again = null;
  if (status.needs_password) {
    password = h("input", { name: "password", type: "password", autocomplete: "new-password", required: true, minlength: status.password_min_length });
    again = h("input", { name: "password_again", type: "password", autocomplete: "new-password", required: true });
    form.append(
      field(ctx.t("enrol.password"), password, ctx.t("enrol.password_hint", { min: status.password_min_length })),
      field(ctx.t("enrol.password_again"), again),
    );
  }
  let code = null;
  if (status.needs_totp) {
    code = h("input", { name: "code", autocomplete: "one-time-code", inputmode: "numeric", required: true, "data-error-words": "code,totp" });
    form.append(
      h("h2", { text: ctx.t("enrol.totp_title") }),
      h("p", { text: ctx.t("enrol.totp_text") }),
      h("img", { class: "qr", src: totp.qr_png, alt: ctx.t("enrol.qr_alt"), width: 220, height: 220 }),
      h("p", {}, h("span", { text: `${ctx.t("enrol.secret")}: ` }), h("code", { class: "secret", id: "totp-secret", text: totp.secret })),
      field(ctx.t("enrol.code"), code, ctx.t("enrol.code_hint")),
    );
  }
  const submit = h("button", { type: "submit", class: "primary", text: ctx.t("enrol.submit") });
  form.append(h("div", { class: "actions" }, submit));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    clearErrors(form);
    if (password && password.value !== again.value) {
      showErrors(form, { status: 422, data: { detail: [{ loc: ["password_again"], msg: ctx.t("enrol.mismatch") }] } });
      return;
    }
    const body = { token };
    if (password) body.password = password.value;
    if (code) body.code = code.value.trim();
    submit.disabled = true;
    const result = await ctx.api("POST", "/api/enrolment/complete", body);
    submit.disabled = false;
    if (!result.ok) {
      if (result.status === 410) {
        page(h("p", { class: "notice warn", role: "alert", text: ctx.t("enrol.link_invalid") }));
        return;
      }
      showErrors(form, result);
      return;
    }
    done(result.data);
  });
  parts.push(form);
  return parts;
}

function done(result) {
  enrolled = result;
  token = "";
  const codes = result.recovery_codes;
  page(
    h("p", { class: "notice ok", role: "status", text: ctx.t("enrol.done_title") }),
    ...(codes.length
      ? [
          h("h2", { text: ctx.t("enrol.codes_title") }),
          h("p", { text: ctx.t("enrol.codes_text") }),
          h("ol", { class: "recovery-codes" }, codes.map((c) => h("li", {}, h("code", { class: "secret", text: c })))),
        ]
      : []),
    h("p", {}, h("a", { class: "button primary", href: "/console", text: ctx.t("enrol.to_console") })),
  );
  main.focus();
}

// A link pasted into a tab that already shows this page only changes the fragment.
window.addEventListener("hashchange", () => {
  const fresh = decodeURIComponent(location.hash.replace(/^#/, ""));
  if (!fresh) return;
  token = fresh;
  status = null;
  totp = null;
  enrolled = null;
  history.replaceState(null, "", location.pathname);
  render();
});

start();
