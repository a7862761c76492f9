// Staff: list, invite (the enrolment link is shown once), edit, deactivate and reactivate,
// reset password and TOTP (docs/staff.md).
import { h, field, showErrors, clearErrors, confirmAction, formatDateTime, problemText } from "../core.js";

const ROLES = ["counsellor", "coordinator", "admin"];
// An interpreter answers no chat: they join others' chats in the languages they interpret.
const QUALIFICATIONS = ["psychologist", "volunteer", "interpreter"];

export function mount(root, ctx) {
  const t = ctx.t;
  let alive = true;
  let staff = [];
  let lines = [];
  const panel = h("div", { id: "staff-panel" });
  const notice = h("div", { id: "staff-notice" });
  const list = h("div", { class: "table-wrap", id: "staff-list" });
  const search = h("input", { type: "search", id: "staff-search", autocomplete: "off" });
  const showInactive = h("input", { type: "checkbox", id: "staff-show-inactive", checked: true });
  search.addEventListener("input", () => renderList());
  showInactive.addEventListener("change", () => renderList());
  const inviteButton = h("button", { type: "button", class: "primary", id: "staff-invite", text: t("staff.invite"), onclick: () => openForm(null) });
  root.append(
    h("div", { class: "view-head" }, h("h1", { id: "view-staff-title", text: t("nav.staff") }), inviteButton),
    notice,
    panel,
    h("div", { class: "toolbar" },
      h("div", { class: "field" }, h("label", { for: search.id, text: t("staff.search") }), search),
      h("label", { class: "check", for: showInactive.id }, showInactive, t("staff.show_inactive"))),
    list,
  );

  async function load() {
    const [people, roster] = await Promise.all([ctx.api("GET", "/api/staff"), ctx.api("GET", "/api/roster/lines")]);
    if (!alive) return;
    if (!people.ok) {
      notice.replaceChildren(h("p", { class: "notice warn", role: "alert", text: problemText(people) }));
      return;
    }
    staff = people.data;
    lines = roster.ok ? roster.data : [];
    renderList();
  }

  function flags(person) {
    const out = [];
    if (person.qualification) out.push(t(`qualification.${person.qualification}`));
    if (person.is_peer) out.push(t("staff.peer"));
    if (person.is_supervisor) out.push(t("staff.supervisor"));
    return out;
  }

  function renderList() {
    const needle = search.value.trim().toLowerCase();
    const shown = staff.filter((p) =>
      (showInactive.checked || p.is_active) &&
      (!needle || p.alias.toLowerCase().includes(needle) || p.username.includes(needle)));
    const sorted = [...shown].sort((a, b) => Number(b.is_active) - Number(a.is_active) || a.alias.localeCompare(b.alias));
    list.replaceChildren(
      h("table", { class: "staff-table" },
        h("caption", { class: "visually-hidden", text: t("nav.staff") }),
        h("thead", {}, h("tr", {}, ...["staff.alias", "staff.role", "staff.details", "staff.languages", "staff.capacity", "staff.lines", "staff.state", "common.actions"].map((k) => h("th", { scope: "col", text: t(k) })))),
        h("tbody", {}, sorted.map((person) => h("tr", { dataset: { staff: person.username }, class: person.is_active ? "" : "inactive" },
          h("th", { scope: "row" }, h("span", { text: person.alias }), h("br"), h("span", { class: "muted", text: person.username })),
          h("td", { text: t(`role.${person.role}`) }),
          h("td", {}, flags(person).map((f) => h("span", { class: "tag", text: f }))),
          h("td", { text: person.languages.join(", ") || "—" }),
          h("td", { text: person.role === "counsellor" ? String(person.capacity) : "—" }),
          h("td", { text: person.lines.map((l) => lineName(l.key)).join(", ") || "—" }),
          h("td", {}, stateTags(person)),
          h("td", { class: "row-actions" }, mayManage(person) ? actions(person) : h("span", { class: "muted", text: person.id === ctx.me.id ? t("staff.you") : "—" })))))),
    );
  }

  // The server decides; the console only leaves out buttons that would certainly be refused:
  // one's own account, and coordinators' and admins' accounts for a coordinator.
  function mayManage(person) {
    if (person.id === ctx.me.id) return false;
    return person.role === "counsellor" || ctx.can("manage_privileged");
  }

  function actions(person) {
    return [
            h("button", { type: "button", class: "small", text: t("staff.edit"), "aria-label": t("staff.edit_who", { who: person.alias }), onclick: () => openForm(person) }),
            person.is_active
              ? h("button", { type: "button", class: "small danger", text: t("staff.deactivate"), "aria-label": t("staff.deactivate_who", { who: person.alias }), onclick: () => deactivate(person) })
              : h("button", { type: "button", class: "small", text: t("staff.reactivate"), "aria-label": t("staff.reactivate_who", { who: person.alias }), onclick: () => reactivate(person) }),
            h("button", { type: "button", class: "small", text: t("staff.reset"), "aria-label": t("staff.reset_who", { who: person.alias }), onclick: () => openReset(person) }),
    ];
  }

  function stateTags(person) {
    const tags = [];
    if (!person.is_active) tags.push(h("span", { class: "tag off", text: t("staff.inactive") }));
    else if (!person.password_set || !person.totp_enrolled) tags.push(h("span", { class: "tag gap", text: t("staff.not_enrolled") }));
    else tags.push(h("span", { class: "tag full", text: t("staff.active") }));
    if (person.is_demo) tags.push(h("span", { class: "tag off", text: "demo" }));
    return tags;
  }

  function lineName(key) {
    return lines.find((l) => l.key === key)?.name ?? key;
  }

  function closePanel() {
    panel.replaceChildren();
  }

  // Invite or edit: one form; username only when inviting (it never changes).
  function openForm(person) {
    notice.replaceChildren();
    const editing = Boolean(person);
    const username = editing ? null : h("input", { name: "username", "data-error-words": "username,named", autocomplete: "off", autocapitalize: "none", spellcheck: "false", required: true });
    const alias = h("input", { name: "alias", required: true, value: person?.alias ?? "", maxlength: 40 });
    const grantable = ROLES.filter((r) => r === "counsellor" || ctx.can("manage_privileged"));
    const role = h("select", { name: "role" }, grantable.map((r) => h("option", { value: r, text: t(`role.${r}`), selected: (person?.role ?? "counsellor") === r })));
    const qualification = h("select", { name: "qualification" },
      h("option", { value: "", text: "—" }),
      QUALIFICATIONS.map((q) => h("option", { value: q, text: t(`qualification.${q}`), selected: person?.qualification === q })));
    const peer = h("input", { type: "checkbox", name: "is_peer", id: "staff-peer", checked: person?.is_peer ?? false });
    const supervisor = h("input", { type: "checkbox", name: "is_supervisor", id: "staff-supervisor", checked: person?.is_supervisor ?? false });
    const languages = h("input", { name: "languages", value: (person?.languages ?? ["sv"]).join(", "), "data-error-words": "languages,language" });
    const capacity = h("input", { type: "number", name: "capacity", min: 1, max: 5, value: person?.capacity ?? 2 });
    const mine = new Set((person?.lines ?? []).map((l) => l.key));
    const lineBoxes = lines.map((l) => h("input", { type: "checkbox", name: "line", value: l.key, id: `staff-line-${l.key}`, checked: mine.has(l.key) }));
    const counsellorOnly = h("div", { class: "counsellor-only" },
      h("div", { class: "field-row" }, field(t("staff.qualification"), qualification), field(t("staff.capacity"), capacity, t("staff.capacity_hint"))),
      h("fieldset", { dataset: { field: "flags" } },
        h("legend", { text: t("staff.flags") }),
        h("label", { class: "check", for: peer.id }, peer, t("staff.peer_long")),
        h("label", { class: "check", for: supervisor.id }, supervisor, t("staff.supervisor_long"))),
      h("fieldset", { dataset: { field: "lines" } },
        h("legend", { text: t("staff.lines") }),
        lineBoxes.length ? h("div", { class: "checks" }, lineBoxes.map((box) => h("label", { class: "check", for: box.id }, box, lineName(box.value)))) : h("p", { class: "muted", text: t("roster.no_lines") })));
    const syncRole = () => {
      counsellorOnly.hidden = role.value !== "counsellor";
    };
    role.addEventListener("change", syncRole);
    syncRole();
    const title = editing ? t("staff.edit_title", { who: person.alias }) : t("staff.invite_title");
    const form = h("form", { class: "card staff-form", novalidate: true, "aria-labelledby": "staff-form-title" },
      h("h2", { id: "staff-form-title", text: title }),
      h("div", { class: "form-error" }),
      h("div", { class: "field-row" },
        username ? field(t("staff.username"), username, t("staff.username_hint")) : null,
        field(t("staff.alias"), alias, t("staff.alias_hint")),
        field(t("staff.role"), role)),
      field(t("staff.languages"), languages, t("staff.languages_hint")),
      counsellorOnly,
      h("div", { class: "actions" },
        h("button", { type: "submit", class: "primary", text: editing ? t("common.save") : t("staff.send_invite") }),
        h("button", { type: "button", text: t("common.cancel"), onclick: closePanel })));
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      clearErrors(form);
      const counsellor = role.value === "counsellor";
      const body = {
        alias: alias.value,
        role: role.value,
        languages: languages.value.split(/[\s,]+/).filter(Boolean),
        qualification: counsellor ? qualification.value || null : null,
        is_peer: counsellor && peer.checked,
        is_supervisor: counsellor && supervisor.checked,
        lines: counsellor ? lineBoxes.filter((b) => b.checked).map((b) => ({ key: b.value })) : [],
      };
      if (counsellor) body.capacity = Number(capacity.value);
      if (!editing) body.username = username.value;
      if (editing && body.role === person.role) delete body.role;
      const result = editing
        ? await ctx.api("PATCH", `/api/staff/${person.id}`, body)
        : await ctx.api("POST", "/api/staff", body);
      if (!result.ok) {
        showErrors(form, result);
        return;
      }
      closePanel();
      if (editing) {
        notice.replaceChildren(h("p", { class: "notice ok", role: "status", text: t("staff.saved", { who: result.data.alias }) }));
      } else {
        showLink(result.data, t("staff.invited", { who: result.data.staff.alias }));
      }
      await load();
    });
    panel.replaceChildren(form);
    (username || alias).focus();
  }

  // The link is the person's key to set a password: shown once, never stored by the console.
  function showLink(withLink, message) {
    const input = h("input", { id: "enrolment-link", readonly: true, value: withLink.enrolment.link, class: "link-field" });
    const copy = h("button", { type: "button", text: t("staff.copy"), onclick: async () => {
      input.select();
      try {
        await navigator.clipboard.writeText(input.value);
        ctx.announce(t("staff.copied"));
      } catch {
        document.execCommand?.("copy");
      }
    } });
    notice.replaceChildren(
      h("div", { class: "notice ok", role: "status" },
        h("p", { text: message }),
        h("p", { text: t("staff.link_once", { until: formatDateTime(withLink.enrolment.expires_at) }) }),
        h("div", { class: "field" }, h("label", { for: input.id, text: t("staff.link") }), h("div", { class: "link-row" }, input, copy)),
        h("button", { type: "button", class: "small", text: t("common.close"), onclick: () => notice.replaceChildren() })),
    );
    input.focus();
    input.select();
  }

  async function deactivate(person) {
    if (!(await confirmAction(t("staff.deactivate_confirm", { who: person.alias }), { danger: true, confirm: t("staff.deactivate") }))) return;
    const result = await ctx.api("POST", `/api/staff/${person.id}/deactivate`);
    notice.replaceChildren(h("p", { class: result.ok ? "notice ok" : "notice warn", role: "status", text: result.ok ? t("staff.deactivated", { who: person.alias }) : problemText(result) }));
    await load();
  }

  async function reactivate(person) {
    const result = await ctx.api("POST", `/api/staff/${person.id}/reactivate`);
    notice.replaceChildren(h("p", { class: result.ok ? "notice ok" : "notice warn", role: "status", text: result.ok ? t("staff.reactivated", { who: person.alias }) : problemText(result) }));
    await load();
  }

  function openReset(person) {
    notice.replaceChildren();
    const password = h("input", { type: "checkbox", name: "password", id: "reset-password" });
    const totp = h("input", { type: "checkbox", name: "totp", id: "reset-totp" });
    const form = h("form", { class: "card", novalidate: true, "aria-labelledby": "reset-title" },
      h("h2", { id: "reset-title", text: t("staff.reset_title", { who: person.alias }) }),
      h("p", { text: t("staff.reset_help") }),
      h("div", { class: "form-error" }),
      h("label", { class: "check", for: password.id }, password, t("staff.reset_password")),
      h("label", { class: "check", for: totp.id }, totp, t("staff.reset_totp")),
      h("div", { class: "actions" },
        h("button", { type: "submit", class: "primary", text: t("staff.reset_submit") }),
        h("button", { type: "button", text: t("common.cancel"), onclick: closePanel })));
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      const result = await ctx.api("POST", `/api/staff/${person.id}/reset`, { password: password.checked, totp: totp.checked });
      if (!result.ok) return showErrors(form, result);
      closePanel();
      showLink(result.data, t("staff.reset_done", { who: person.alias }));
      await load();
    });
    panel.replaceChildren(form);
    password.focus();
  }

  load();
  return () => {
    alive = false;
  };
}
