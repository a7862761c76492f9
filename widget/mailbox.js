// The visitor's side of the line's mailbox (docs/widget.md, "Writing when the line is
// closed"): write, get the mailbox code once, read the thread with it, write again, delete.
// Loaded by chat.js only when the visitor asks for it. The code lives in this module's memory
// for the page's life at most: never in storage, a cookie or a URL, only in request bodies.
// Every text is set with textContent.

// What chat.js lends: t, lang, line, root, limit, length, referralItem, credentials, back.
let ctx = null;
let code = null; // the thread's mailbox code, once shown or typed
let thread = null; // the thread as last read

// Pure helpers (tests/test_mailbox_browser.py runs them in Chromium) ----------------------

// The line's answer-time text in the visitor's language, else in the line's first language
// that has one.
export function answerTime(mailbox, lang, languages) {
  const all = (mailbox && mailbox.answer_time) || {};
  if (all[lang]) return all[lang];
  for (const other of languages || []) if (all[other]) return all[other];
  return Object.values(all).find(Boolean) || '';
}

// A calendar day from the server ("YYYY-MM-DD"), as the visitor's language writes it; the
// same day wherever the browser's clock is set.
export function formatDay(day, lang) {
  const [y, m, d] = String(day).split('-').map(Number);
  if (!y || !m || !d) return '';
  return new Intl.DateTimeFormat(lang, { day: 'numeric', month: 'long', year: 'numeric', timeZone: 'UTC' })
    .format(new Date(Date.UTC(y, m - 1, d)));
}

// A moment (ISO 8601) with its day, in the visitor's language and the line's time zone.
export function formatMoment(iso, lang, timeZone) {
  const at = new Date(iso);
  if (Number.isNaN(at.getTime())) return '';
  const options = { weekday: 'short', day: 'numeric', month: 'short', hour: '2-digit', minute: '2-digit' };
  if (timeZone) options.timeZone = timeZone;
  return new Intl.DateTimeFormat(lang, options).format(at);
}

// The catalogue key saying where a thread stands.
export function statusKey(status) {
  return { waiting: 'mailbox_status_waiting', answered: 'mailbox_status_answered', closed: 'mailbox_status_closed' }[status] || 'mailbox_status_waiting';
}

// What a failed request tells the visitor (the server's wording is never shown).
export function failureKey(status, body) {
  if (status === 404) return 'mailbox_no_thread';
  if (status === 429) return 'code_rate_limited';
  if (status === 409 && body && body.code === 'mailbox_closed') return 'mailbox_closed_now';
  return 'error';
}

// The page ---------------------------------------------------------------------------------

const t = (key, values) => ctx.t(key, values);

// An element with text from the catalogue (`t`), plain text (`text`) and attributes.
function h(tag, props, ...children) {
  const el = document.createElement(tag);
  for (const [name, value] of Object.entries(props || {})) {
    if (value == null || value === false) continue;
    if (name === 't') {
      el.dataset.t = value;
      el.textContent = t(value);
    } else if (name === 'text') {
      el.textContent = value;
    } else if (name === 'class') {
      el.className = value;
    } else {
      el.setAttribute(name, value === true ? '' : value);
    }
  }
  el.append(...children.filter(Boolean));
  return el;
}

const $ = (id) => document.getElementById(id);

function button(id, key, kind, type = 'button') {
  return h('button', { id, type, class: kind, t: key });
}

function heading(key) {
  return h('h1', { id: 'mb-heading', tabindex: '-1', t: key });
}

// Replace the view's content and tell screen readers where the visitor is now. Children left
// out (null) are skipped: replaceChildren would show them as the text "null".
function render(...children) {
  ctx.root.replaceChildren(...children.filter(Boolean));
  $('mb-heading').focus();
}

function mailboxOf() {
  return (ctx.line && ctx.line.mailbox) || {};
}

function retentionText(days) {
  return t('mailbox_kept', { days: days || mailboxOf().retention_days || '' });
}

// A message box with the chat's limit and counter.
function composer(prefix, labelKey, sendKey) {
  const text = h('textarea', {
    id: prefix + '-text',
    rows: '5',
    autocomplete: 'off',
    autocapitalize: 'sentences',
    spellcheck: 'false',
    'aria-describedby': prefix + '-count',
  });
  const count = h('p', { id: prefix + '-count', class: 'count', 'aria-live': 'polite' });
  const update = () => {
    const n = ctx.length(text.value);
    const over = n > ctx.limit();
    count.textContent = over ? t('too_long', { over: n - ctx.limit() }) : t('count', { count: n, limit: ctx.limit() });
    count.classList.toggle('over', over);
    text.setAttribute('aria-invalid', over ? 'true' : 'false');
  };
  text.addEventListener('input', update);
  update();
  const form = h('form', { id: prefix + '-form', class: 'mb-form', autocomplete: 'off', novalidate: true },
    h('label', { for: prefix + '-text', t: labelKey }),
    text,
    count,
  );
  // The text to send, or null after saying why not (empty, too long).
  form.ready = () => {
    count.removeAttribute('role');
    if (!text.value.trim()) {
      count.textContent = t('empty');
      text.focus();
      return null;
    }
    if (ctx.length(text.value) > ctx.limit()) {
      update();
      count.setAttribute('role', 'alert');
      text.focus();
      return null;
    }
    return text.value;
  };
  form.clear = () => {
    text.value = '';
    update();
  };
  form.send = button(prefix + '-send', sendKey, 'primary', 'submit');
  return form;
}

async function post(path, body) {
  try {
    const answer = await fetch('/api/visitor/mailbox/' + path, {
      method: 'POST',
      credentials: ctx.credentials,
      cache: 'no-store',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify(body),
    });
    let data = null;
    try {
      data = await answer.json();
    } catch { /* no body */ }
    return { status: answer.status, data };
  } catch {
    return { status: 0, data: null }; // offline, or Lykta unreachable
  }
}

function status(id) {
  return h('p', { id, class: 'mb-status', role: 'status' });
}

function say(id, key) {
  $(id).textContent = key ? t(key) : '';
}

// Writing a first message ------------------------------------------------------------------

function showWrite() {
  const form = composer('mb', 'message_label', 'mailbox_send');
  form.append(h('div', { class: 'code-buttons' }, form.send, button('mb-back', 'mailbox_back', 'secondary')), status('mb-result'));
  const when = answerTime(mailboxOf(), ctx.lang, ctx.line && ctx.line.languages);
  render(
    heading('mailbox_write_heading'),
    when ? h('p', { class: 'mb-answer-time', text: when }) : null,
    h('p', { text: retentionText() }),
    h('p', { t: 'mailbox_no_notice' }),
    form,
  );
  $('mb-back').addEventListener('click', leave);
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    const text = form.ready();
    if (text == null) return;
    form.send.disabled = true;
    say('mb-result', 'sending');
    const answer = await post('threads', { line: ctx.line.key, language: ctx.lang, text });
    form.send.disabled = false;
    if (answer.status === 201 && answer.data && answer.data.code) {
      code = answer.data.code;
      showCode(answer.data);
    } else {
      say('mb-result', failureKey(answer.status, answer.data));
    }
  });
}

// The code, shown once ---------------------------------------------------------------------

function showCode(created) {
  const words = h('p', { id: 'mb-code', class: 'code-words', lang: ctx.lang, text: code });
  const saved = h('input', { type: 'checkbox', id: 'mb-saved', autocomplete: 'off' });
  render(
    heading('mailbox_code_heading'),
    h('p', { t: 'mailbox_code_intro' }),
    h('div', { class: 'continuity' },
      words,
      h('div', { class: 'code-buttons' }, button('mb-copy', 'mailbox_copy', 'secondary')),
      status('mb-copied'),
    ),
    h('p', { class: 'mb-warning', t: 'mailbox_code_keep' }),
    created.answer_time ? h('p', { text: created.answer_time }) : null,
    h('p', { text: retentionText(created.retention_days) }),
    h('div', { class: 'field check' }, saved, h('label', { for: 'mb-saved', t: 'mailbox_saved_label' })),
    h('p', { id: 'mb-saved-needed', class: 'mb-alert', role: 'alert' }),
    button('mb-continue', 'mailbox_continue', 'primary'),
  );
  $('mb-copy').addEventListener('click', copyCode);
  saved.addEventListener('change', () => { if (saved.checked) say('mb-saved-needed', ''); });
  // Leaving is the one way on: without the tick, the visitor is asked again.
  $('mb-continue').addEventListener('click', () => {
    if (!saved.checked) {
      say('mb-saved-needed', 'mailbox_saved_needed');
      saved.focus();
      return;
    }
    words.textContent = '';
    read(code, null);
  });
}

async function copyCode() {
  try {
    await navigator.clipboard.writeText(code);
    say('mb-copied', 'mailbox_copied');
  } catch {
    // No clipboard here (an embedding page that does not allow it, an old browser): the words
    // are selected, for the visitor to copy or write down.
    const range = document.createRange();
    range.selectNodeContents($('mb-code'));
    const selection = getSelection();
    selection.removeAllRanges();
    selection.addRange(range);
    say('mb-copied', 'mailbox_copy_failed');
  }
}

// Reading with the code --------------------------------------------------------------------

function showRead() {
  const input = h('input', {
    type: 'text',
    id: 'mb-code-input',
    maxlength: '200',
    autocomplete: 'off',
    autocapitalize: 'none',
    autocorrect: 'off',
    spellcheck: 'false',
    'aria-describedby': 'mb-code-help',
  });
  const form = h('form', { id: 'mb-read-form', class: 'mb-form', autocomplete: 'off', novalidate: true },
    h('label', { for: 'mb-code-input', t: 'mailbox_code_label' }),
    h('p', { id: 'mb-code-help', class: 'hint', t: 'code_help' }),
    input,
    h('div', { class: 'code-buttons' }, button('mb-open', 'mailbox_open', 'primary', 'submit'), button('mb-back', 'mailbox_back', 'secondary')),
    status('mb-result'),
  );
  render(heading('mailbox_read_heading'), h('p', { t: 'mailbox_read_text' }), form);
  $('mb-back').addEventListener('click', leave);
  form.addEventListener('submit', (e) => {
    e.preventDefault();
    const typed = input.value.trim();
    if (!typed) {
      say('mb-result', 'code_empty');
      input.focus();
      return;
    }
    read(typed, input);
  });
}

async function read(typed, input) {
  if (input) say('mb-result', 'mailbox_opening');
  const answer = await post('read', { code: typed });
  if (answer.status === 200 && answer.data) {
    code = typed;
    showThread(answer.data);
    return;
  }
  if (!input) {
    // Straight after writing: the code was right; say what went wrong on the way.
    showRead();
  }
  say('mb-result', failureKey(answer.status, answer.data));
  $('mb-code-input').focus();
}

// The thread -------------------------------------------------------------------------------

function showThread(found) {
  const form = composer('mb', 'mailbox_write_again', 'mailbox_send');
  form.append(h('div', { class: 'code-buttons' }, form.send), status('mb-result'));
  render(
    h('p', { class: 'line-name', id: 'mb-line', text: found.line_name || '' }),
    heading('mailbox_thread_heading'),
    h('p', { id: 'mb-state', class: 'mb-state', role: 'status' }),
    h('p', { id: 'mb-deletes' }),
    h('div', { id: 'mb-times', class: 'mb-times', hidden: true }),
    h('ol', { id: 'mb-log', class: 'log mb-log', 'aria-label': t('messages_label') }),
    form,
    h('div', { class: 'end-row' },
      h('div', { class: 'code-buttons' }, button('mb-delete', 'mailbox_delete', 'danger'), button('mb-done', 'mailbox_done', 'secondary')),
      h('div', { id: 'mb-confirm', class: 'confirm', hidden: true },
        h('p', { t: 'mailbox_delete_confirm' }),
        button('mb-delete-yes', 'mailbox_delete_yes', 'danger'),
        button('mb-delete-no', 'mailbox_delete_no', 'secondary'),
      ),
      status('mb-delete-result'),
    ),
  );
  fill(found);
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    const text = form.ready();
    if (text == null) return;
    form.send.disabled = true;
    say('mb-result', 'sending');
    const answer = await post('write', { code, text });
    form.send.disabled = false;
    if (answer.status === 200 && answer.data) {
      form.clear();
      fill(answer.data);
      say('mb-result', 'mailbox_sent');
    } else {
      say('mb-result', failureKey(answer.status, answer.data));
    }
  });
  $('mb-done').addEventListener('click', leave);
  $('mb-delete').addEventListener('click', () => {
    $('mb-confirm').hidden = false;
    $('mb-delete-no').focus();
  });
  $('mb-delete-no').addEventListener('click', () => {
    $('mb-confirm').hidden = true;
    $('mb-delete').focus();
  });
  $('mb-delete-yes').addEventListener('click', deleteThread);
}

function fill(found) {
  thread = found;
  const tz = ctx.line && ctx.line.time_zone;
  $('mb-state').textContent = t(statusKey(found.status));
  $('mb-deletes').textContent = found.deletes_on ? t('mailbox_deletes_on', { date: formatDay(found.deletes_on, ctx.lang) }) : '';
  const items = (found.messages || []).map((m) => messageItem(m, tz));
  $('mb-log').replaceChildren(...items);
  showOfferedTimes(found.times_offered || [], tz);
  const last = $('mb-log').lastElementChild;
  if (last) last.scrollIntoView({ block: 'nearest' });
}

function messageItem(m, tz) {
  const when = formatMoment(m.at, ctx.lang, tz);
  const mine = m.from === 'visitor';
  const name = mine ? t('you') : m.alias || t('mailbox_counsellor');
  if (m.kind === 'card') return ctx.referralItem(m.card, name, when);
  const li = h('li', { class: 'msg ' + (mine ? 'visitor' : 'counsellor') },
    h('p', { class: 'meta' }, h('span', { class: 'who', text: name }), ' ', h('time', { text: when })),
  );
  if (m.kind === 'times') {
    li.append(h('p', { class: 'text', text: t('mailbox_times_from', { name }) }), timeList(m.times || [], tz));
  } else if (m.kind === 'times_cancelled') {
    // The thread went to another counsellor: the booked chat and offered times were in the
    // first one's shifts.
    li.append(h('p', { class: 'text', t: 'mailbox_times_cancelled' }), timeList(m.times || [], tz));
  } else {
    li.append(h('p', { class: 'text', text: m.text || '' }));
  }
  return li;
}

function timeList(times, tz) {
  return h('ul', { class: 'mb-time-list' }, ...times.map((at) => h('li', { text: formatMoment(at, ctx.lang, tz) })));
}

// Times the counsellor offered for a booked chat, shown read-only: picking one
// (POST /api/visitor/mailbox/book with the code in memory) is for the booking views to add
// here.
export function showOfferedTimes(times, tz) {
  const box = $('mb-times');
  box.hidden = !times.length;
  box.replaceChildren();
  if (!times.length) return;
  box.append(h('h2', { t: 'mailbox_times_heading' }), timeList(times, tz), h('p', { class: 'hint', t: 'mailbox_times_note' }));
}

async function deleteThread() {
  $('mb-delete-yes').disabled = true;
  const answer = await post('delete', { code });
  if (answer.status === 200) {
    forget();
    render(
      heading('mailbox_deleted_heading'),
      h('p', { role: 'status', t: 'mailbox_deleted_text' }),
      button('mb-done', 'mailbox_done', 'primary'),
    );
    $('mb-done').addEventListener('click', leave);
    return;
  }
  $('mb-delete-yes').disabled = false;
  say('mb-delete-result', failureKey(answer.status, answer.data));
}

// In and out -------------------------------------------------------------------------------

function leave() {
  forget();
  ctx.root.replaceChildren();
  ctx.back();
}

// Quick exit, Done and a deletion: nothing of the thread stays in the page.
export function forget() {
  code = null;
  thread = null;
}

export function open(context, what) {
  ctx = context;
  forget();
  if (what === 'write') showWrite();
  else showRead();
}

// For the booking views: the thread as last read and its code, while the page has them.
export function current() {
  return code ? { code, thread } : null;
}
