// The visitor's chat: speaks /ws/visitor (docs/protocol.md). Renders every text with
// textContent, keeps only the resume token in sessionStorage, never navigates (no history).
import { watchShift, leave } from './exit.js';

const $ = (id) => document.getElementById(id);
const data = document.body.dataset;
const embedded = data.embed === '1' && window.parent !== window;
const cfg = {
  line: data.line,
  lang: data.lang,
  languages: (data.languages || '').split(' ').filter(Boolean),
  chosenBy: data.chosenBy,
  exitUrl: data.exitUrl,
};
const STORE = 'lykta.chat.' + cfg.line;
// A practice line answers only staff who may play its visitor (from the console, same
// origin): its requests carry their session. No other line's requests carry a cookie.
const credentials = $('practice-tag').hidden ? 'omit' : 'same-origin';
const VIEWS = ['intro', 'closed', 'down', 'chat', 'ended', 'mailbox'];

let texts = {};
let line = null;
let ws = null;
let chat = null; // {chat_id, token} while a chat lasts
let lastSeq = 0;
let counsellor = null;
let state = 'intro';
let retries = 0;
let retryTimer = 0;
let leaving = false;
// Set when the loader (embed.js) says it is the parent page: it then replaces the top page.
let loader = false;
let wantChat = false; // the visitor pressed Start and has no chat yet
let typingSent = false;
let typingTimer = 0;
const outbox = new Map(); // client_id -> text, until acknowledged
// A continuity code the visitor typed, only until the start it is for is answered (never
// stored), and whether they asked for a peer supporter.
let pendingCode = null;
let wantPeer = false;
// The mailbox views (widget/mailbox.js), loaded only when the visitor first asks for them.
let mailbox = null;
// The code of this chat (shown, or typed to start it), in memory only for the page's life:
// picking a booked time sends it, in the body.
let bookingCode = null;
const shown = new Map(); // seq or client_id -> list item
let inDanger = false; // pressed "I am in danger right now" in this chat

// A counted text is one string per CLDR plural category, {"plural": "<placeholder>", ...}.
function t(key, values) {
  let text = texts[key] || '';
  if (typeof text === 'object') {
    const category = new Intl.PluralRules(cfg.lang).select(Number((values || {})[text.plural]));
    text = text[category] || text.other || '';
  }
  for (const [name, value] of Object.entries(values || {})) text = text.replace('{' + name + '}', value);
  return text;
}

function applyTexts() {
  document.documentElement.lang = cfg.lang;
  document.documentElement.dir = texts.dir || 'ltr';
  document.title = texts.page_title;
  for (const el of document.querySelectorAll('[data-t]')) el.textContent = t(el.dataset.t);
  for (const el of document.querySelectorAll('[data-t-label]')) el.setAttribute('aria-label', t(el.dataset.tLabel));
}

async function loadTexts(lang) {
  const answer = await fetch('/widget/i18n/' + lang + '.json', { credentials: 'omit', cache: 'no-store' });
  if (!answer.ok) throw new Error('no catalogue');
  return answer.json();
}

// A line's text in the visitor's language, else in the line's first language that has it
// (as the server picks), with the language it is in.
function lineText(field) {
  const all = (line && line[field]) || {};
  for (const code of [cfg.lang, ...((line && line.languages) || []), ...Object.keys(all)]) {
    if (all[code]) return { text: all[code], lang: code };
  }
  return { text: '', lang: cfg.lang };
}

function languageName(code) {
  try {
    return new Intl.DisplayNames([cfg.lang], { type: 'language' }).of(code) || code;
  } catch {
    return code;
  }
}

// Show a line's text; one in another language gets its own `lang` and a visible note
// ("This text is in English") before it, so it is never blank and never a surprise.
function showLineText(el, found) {
  el.textContent = found.text;
  const other = Boolean(found.text) && found.lang !== cfg.lang;
  // In its own language and direction (a Swedish text on an Arabic page reads left to right).
  if (other) {
    el.lang = found.lang;
    el.dir = 'auto';
  } else {
    el.removeAttribute('lang');
    el.removeAttribute('dir');
  }
  let note = el.previousElementSibling;
  if (!note || !note.classList.contains('fallback-note')) {
    if (!other) return;
    note = document.createElement('p');
    note.className = 'fallback-note';
    el.before(note);
  }
  note.textContent = other ? t('text_in_language', { language: languageName(found.lang) }) : '';
  note.hidden = !other || el.hidden;
}

// Views and focus ------------------------------------------------------------------------

function show(...names) {
  for (const name of VIEWS) $('view-' + name).hidden = !names.includes(name);
  // A continuity code can be entered or deleted before a chat, even while the line is closed.
  const before = names.includes('intro') || names.includes('closed');
  $('code-box').hidden = !before;
  renderMailboxBox(before && names.includes('closed'), before);
}

// "Write to us" (prominent while the line is closed) and "Read the answer", as the line's
// mailbox allows (docs/widget.md, "Writing when the line is closed").
function renderMailboxBox(closed, before) {
  const box = (line && line.mailbox) || {};
  const writable = Boolean(box.writable);
  $('mailbox-box').hidden = !before || !(writable || box.readable);
  $('mailbox-write').hidden = !writable;
  $('mailbox-write').className = closed ? 'primary' : 'secondary';
  $('mailbox-read').hidden = !box.readable;
  $('mailbox-box-heading').dataset.t = writable ? 'mailbox_box_heading' : 'mailbox_read_heading';
  $('mailbox-offer').dataset.t = writable ? 'mailbox_offer' : 'mailbox_read_only';
  for (const id of ['mailbox-box-heading', 'mailbox-offer']) $(id).textContent = t($(id).dataset.t);
}

async function openMailbox(what) {
  try {
    // The page carries only the chat's texts; the mailbox's come with the whole catalogue.
    if (!('mailbox_write_heading' in texts)) texts = { ...texts, ...await loadTexts(cfg.lang) };
    mailbox = mailbox || await import('./mailbox.js');
  } catch {
    setConnection(t('error'));
    return;
  }
  setConnection('');
  state = 'mailbox';
  show('mailbox');
  mailbox.open({
    t,
    lang: cfg.lang,
    line,
    root: $('view-mailbox'),
    limit,
    length,
    referralItem,
    credentials,
    // Back to the line as it is now (it may have opened, and has a thread more).
    back: () => refreshLine(),
  }, what);
}

function focusOn(el) {
  // Move focus only when it would otherwise be lost (on something now hidden, or nowhere), so
  // a visitor typing while the state changes keeps their place.
  const active = document.activeElement;
  if (!active || active === document.body || !active.offsetParent) el.focus();
}

let loaded = false; // the first view leaves focus alone: Tab starts at the skip link

function showView(name) {
  state = name;
  show(name);
  if (loaded) focusOn(document.querySelector('#view-' + name + ' h1'));
  loaded = true;
}

function renderHelp() {
  const alternatives = lineText('alternatives');
  showLineText($('alternatives'), alternatives.text ? alternatives : { text: t('default_alternatives'), lang: cfg.lang });
  // The line's one-line privacy note, read before starting (never a form or a wall).
  const note = lineText('privacy_note');
  $('privacy-note').hidden = !note.text;
  showLineText($('privacy-note'), note);
}

// The peer supporter choice, only while one answers on the line (busy or not): nobody ticks a
// wish that nobody on duty can meet.
function renderPeer() {
  const available = Boolean(line && line.peer_available);
  $('peer-field').hidden = !available;
  if (!available) {
    $('peer').checked = false;
    wantPeer = false;
  }
}

let closedWith = ['closed', null]; // redrawn in another language when the visitor switches

function showClosed(reason, frame) {
  closedWith = [reason, frame];
  const heading = { full: 'full_heading', unavailable: 'unavailable_heading' }[reason] || 'closed_heading';
  $('closed-heading').textContent = t(heading);
  const message = lineText('closed_message');
  showLineText($('closed-message'), message.text ? message : { text: (frame && frame.message) || '', lang: cfg.lang });
  const next = frame ? frame.next_open_at : line && line.next_open_at;
  $('next-open').textContent = next ? t('next_open', { when: formatWhen(next) }) : '';
  const hours = lineText('opening_hours');
  showLineText($('opening-hours'), hours.text ? hours : { text: (frame && frame.opening_hours) || '', lang: cfg.lang });
  $('hours-heading').hidden = !$('opening-hours').textContent;
  if (frame && frame.alternatives && !lineText('alternatives').text) $('alternatives').textContent = frame.alternatives;
  showView('closed');
}

function formatWhen(epoch) {
  const options = { weekday: 'long', day: 'numeric', month: 'long', hour: '2-digit', minute: '2-digit' };
  if (line && line.time_zone) options.timeZone = line.time_zone;
  return new Intl.DateTimeFormat(cfg.lang, options).format(new Date(epoch * 1000));
}

function formatTime(epoch) {
  return new Intl.DateTimeFormat(cfg.lang, { hour: '2-digit', minute: '2-digit' }).format(new Date(epoch * 1000));
}

function setConnection(text) {
  $('connection').textContent = text;
}

// The line, before a chat ------------------------------------------------------------------

let lineTries = 0;

async function refreshLine() {
  clearTimeout(retryTimer);
  try {
    const answer = await fetch('/api/lines/' + encodeURIComponent(cfg.line), { credentials, cache: 'no-store' });
    if (!answer.ok) throw new Error('line');
    line = await answer.json();
  } catch {
    // Lykta unreachable: say so (with other help), and keep trying, more slowly each time.
    lineTries += 1;
    showView('down');
    retryTimer = setTimeout(refreshLine, Math.min(30000, 2000 * 2 ** Math.min(lineTries, 4)) * (0.5 + Math.random()));
    return;
  }
  lineTries = 0;
  showLine();
}

function showLine() {
  renderHelp();
  renderPeer();
  updateCount();
  if (line.open) {
    $('start').disabled = false;
    showView('intro');
  } else {
    showClosed('closed', null);
  }
}

async function changeLanguage() {
  const wanted = $('language').value;
  try {
    texts = await loadTexts(wanted);
  } catch {
    return;
  }
  cfg.lang = wanted;
  $('language').value = wanted;
  $('notice').textContent = '';
  applyTexts();
  renderHelp();
  if (state === 'closed') showClosed(...closedWith);
  updateCount();
}

// The server chose by the browser's Accept-Language when it could; if it fell to the
// line's first language, navigator.languages may still name one the line offers.
function browserLanguage() {
  if (cfg.chosenBy !== 'line') return null;
  for (const tag of navigator.languages || []) {
    const base = String(tag).split('-')[0].toLowerCase();
    if (cfg.languages.includes(base)) return base === cfg.lang ? null : base;
  }
  return null;
}

// The socket -------------------------------------------------------------------------------

function connect() {
  clearTimeout(retryTimer);
  const scheme = location.protocol === 'https:' ? 'wss://' : 'ws://';
  const socket = new WebSocket(scheme + location.host + '/ws/visitor');
  ws = socket;
  socket.onmessage = (e) => {
    if (ws !== socket) return;
    let frame;
    try {
      frame = JSON.parse(e.data);
    } catch {
      return;
    }
    handle(frame);
  };
  socket.onclose = () => {
    if (ws !== socket) return; // a socket we closed ourselves
    ws = null;
    if (!leaving) reconnectLater();
  };
}

function disconnect() {
  const socket = ws;
  ws = null;
  if (socket) socket.close(1000);
}

function send(frame) {
  if (ws && ws.readyState === 1) ws.send(JSON.stringify(frame));
}

// Back after a random, growing delay (1-5 s at first), so that a restarted server is not hit
// by every visitor at once. After a few tries the visitor sees a clear state, not a spinner.
function reconnectLater() {
  if (!chat && !wantChat) return;
  retries += 1;
  if (chat) {
    setConnection(t('reconnecting'));
    if (retries > 3) show('chat', 'down');
  } else if (state !== 'down') {
    showView('down');
  }
  const delay = Math.min(15000, (1000 + 4000 * Math.random()) * 2 ** Math.min(retries - 1, 3));
  retryTimer = setTimeout(connect, delay);
}

function remember() {
  try {
    if (chat) sessionStorage.setItem(STORE, JSON.stringify(chat));
    else sessionStorage.removeItem(STORE);
  } catch { /* storage blocked: the chat works, it cannot be resumed after a reload */ }
}

function handle(f) {
  if (typeof f.seq === 'number') {
    if (f.seq <= lastSeq && f.type !== 'message.ack') return; // already shown
    if (f.type !== 'message.ack') lastSeq = f.seq;
  }
  switch (f.type) {
    case 'hello':
      if (chat) send({ type: 'resume', v: 1, chat_id: chat.chat_id, token: chat.token, last_seq: lastSeq });
      else send(startFrame());
      break;
    case 'chat.started':
      wantChat = false;
      pendingCode = null;
      chat = { chat_id: f.chat_id, token: f.token };
      remember();
      retries = 0;
      enterChat(null);
      break;
    case 'chat.resumed':
      if (retries) {
        setConnection(t('reconnected'));
        setTimeout(() => { if ($('connection').textContent === t('reconnected')) setConnection(''); }, 5000);
      }
      retries = 0;
      enterChat(f.counsellor ? f.counsellor.name : null);
      for (const [client_id, text] of outbox) send({ type: 'message', text, client_id });
      break;
    case 'queue.position':
      renderQueue(f);
      break;
    case 'line.closed':
      wantChat = false;
      chat = null;
      remember();
      showClosed(f.reason, f);
      disconnect();
      break;
    case 'counsellor.joined':
      counsellor = f.name;
      addSystem(t('joined', { name: f.name }));
      // Asked for a peer supporter: say honestly whether this is one.
      if (f.peer === true) addSystem(t('peer_joined', { name: f.name }));
      else if (f.peer === false) addSystem(t('peer_none', { name: f.name }));
      renderHeading();
      renderDanger();
      break;
    case 'continuity.found':
      $('queue').textContent = t('code_found', { name: f.name });
      addSystem(t('code_found', { name: f.name }));
      break;
    case 'continuity.away':
      counsellorAway(f);
      break;
    case 'continuity.offered':
      $('continuity-offer-text').textContent = t('code_offered', { name: f.name || counsellor || '' });
      $('continuity-offer').hidden = false;
      break;
    case 'continuity.code':
      bookingCode = f.code;
      showCode(f);
      break;
    case 'booking.offered':
      offerTimes(f.times || []);
      break;
    case 'booking.missed':
      addSystem(t('booking_missed'));
      break;
    case 'referral':
      addReferral(f);
      break;
    case 'interpreter.joined':
      // A third person in the chat: said plainly, with their messages marked, and a way out.
      addSystem(t('interpreter_joined', { language: languageLabel(f.language) }));
      $('interpreter-text').textContent = t('interpreter_present', { name: f.name || '' });
      $('interpreter-row').hidden = false;
      break;
    case 'interpreter.left':
      addSystem(t('interpreter_left'));
      $('interpreter-row').hidden = true;
      break;
    case 'counsellor.left':
      counsellor = null;
      addSystem(t(f.reason === 'transferred' ? 'left_transferred' : 'left_disconnected'));
      renderHeading();
      break;
    case 'message':
      addMessage(f);
      break;
    case 'message.ack':
      acknowledged(f);
      break;
    case 'typing':
      $('typing').textContent = f.typing && counsellor ? t('typing', { name: counsellor }) : '';
      break;
    case 'chat.ended':
      ended(f);
      break;
    case 'danger.noted':
      if (f.text) $('danger-text').textContent = f.text;
      break;
    case 'error':
      failed(f);
      break;
    default:
      break;
  }
}

// "I am in danger right now": one optional tap. The line's emergency text shows at once,
// before any answer; the server moves the chat ahead and tells the counsellor (docs/risk.md).
function pressDanger() {
  inDanger = true;
  renderDanger();
  $('danger-box').focus();
  send({ type: 'danger' });
}

function renderDanger() {
  $('danger').hidden = inDanger;
  $('danger-box').hidden = !inDanger;
  if (!inDanger) return;
  // The line's text in the visitor's language if it has one, else in another it has (said
  // in its own language and direction), else the catalogue's.
  const danger = lineText('emergency_text');
  $('danger-text').textContent = danger.text || t('danger_fallback');
  $('danger-text').lang = danger.text ? danger.lang : cfg.lang;
  $('danger-text').dir = 'auto';
  $('danger-sent').textContent = counsellor ? t('danger_told') : t('danger_first');
}

function enterChat(name) {
  counsellor = name;
  renderHeading();
  $('composer').hidden = false;
  $('end-row').hidden = false;
  $('typing').hidden = false;
  $('chat-heading').hidden = false;
  $('danger-row').hidden = false;
  renderDanger();
  if (state !== 'chat') {
    state = 'chat';
    show('chat');
    focusOn($('text'));
  } else {
    show('chat');
  }
}

function renderHeading() {
  $('chat-heading').textContent = counsellor ? t('active_heading', { name: counsellor }) : t('waiting_heading');
  if (counsellor) $('queue').textContent = '';
  else if (!$('queue').textContent) $('queue').textContent = t('queue_write');
}

// What a chat waits for instead of whoever is free (`waiting_for`), and until when.
const HELD = { peer: 'queue_held_peer', language: 'queue_held_language', counsellor: 'queue_held_counsellor' };

function renderQueue(f) {
  if (counsellor) return;
  const parts = [f.position <= 1 ? t('queue_next') : t('queue_position', { position: f.position })];
  const held = f.waiting_for && HELD[f.waiting_for.reason];
  // Without an honest number (too little history, nobody answering), nothing about the wait.
  if (held) parts.push(t(held, { time: formatTime(f.waiting_for.until) }));
  else if (f.soon) parts.push(t('queue_soon'));
  else if (f.estimated_wait_seconds != null) parts.push(t('queue_wait', { minutes: Math.max(1, Math.round(f.estimated_wait_seconds / 60)) }));
  parts.push(t('queue_write'));
  $('queue').textContent = parts.join(' ');
}

// The transcript ---------------------------------------------------------------------------

function item(kind, who, when, text) {
  const li = document.createElement('li');
  li.className = 'msg ' + kind;
  const meta = document.createElement('p');
  meta.className = 'meta';
  const name = document.createElement('span');
  name.className = 'who';
  name.textContent = who;
  const time = document.createElement('time');
  time.textContent = when;
  meta.append(name, ' ', time);
  const body = document.createElement('p');
  body.className = 'text';
  body.textContent = text;
  li.append(meta, body);
  place(li, kind.includes('pending'));
  return li;
}

// What the server has ordered goes before the visitor's messages still on their way (they
// get their place in the transcript when acknowledged).
function place(li, pending) {
  const firstPending = pending ? null : $('log').querySelector('.pending');
  $('log').insertBefore(li, firstPending);
  li.scrollIntoView({ block: 'nearest' });
}

// A language's name in the visitor's own language (the catalogue's), or its tag.
function languageLabel(tag) {
  try {
    return new Intl.DisplayNames([cfg.lang], { type: 'language' }).of(tag) || tag;
  } catch {
    return tag || '';
  }
}

function addSystem(text) {
  const li = document.createElement('li');
  li.className = 'msg system';
  li.textContent = text;
  place(li, false);
}

function addMessage(f) {
  const mine = f.sender === 'visitor';
  const existing = (f.client_id && shown.get('c' + f.client_id)) || shown.get('s' + f.seq);
  if (existing) {
    settle(existing, f.at);
  } else {
    const kind = mine ? 'visitor' : f.sender === 'interpreter' ? 'interpreter' : 'counsellor';
    const who = mine ? t('you') : kind === 'interpreter' ? t('interpreter_label', { name: f.name || '' }) : f.name || '';
    const li = item(kind, who, formatTime(f.at), f.text);
    shown.set('s' + f.seq, li);
    if (f.client_id) shown.set('c' + f.client_id, li);
  }
  if (f.client_id) outbox.delete(f.client_id);
  if (!mine) $('typing').textContent = '';
}

function acknowledged(f) {
  outbox.delete(f.client_id);
  const li = shown.get('c' + f.client_id);
  if (li) {
    shown.set('s' + f.seq, li);
    settle(li, null);
  }
}

function settle(li, at) {
  li.classList.remove('pending');
  if (at) li.querySelector('time').textContent = formatTime(at);
  else if (li.querySelector('time').textContent === t('sending')) li.querySelector('time').textContent = formatTime(Date.now() / 1000);
}

function newId() {
  const bytes = new Uint8Array(12);
  crypto.getRandomValues(bytes);
  return Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('');
}

function limit() {
  return (line && line.max_message_length) || 4000;
}

function length(text) {
  return [...text].length; // characters as the server counts them, not UTF-16 units
}

function updateCount() {
  const count = length($('text').value);
  const over = count > limit();
  $('count').textContent = over ? t('too_long', { over: count - limit() }) : t('count', { count, limit: limit() });
  $('count').classList.toggle('over', over);
  $('text').setAttribute('aria-invalid', over ? 'true' : 'false');
}

function submit(e) {
  e.preventDefault();
  const text = $('text').value;
  if (!text.trim()) {
    $('count').textContent = t('empty');
    return;
  }
  if (length(text) > limit()) {
    updateCount();
    $('count').setAttribute('role', 'alert');
    return;
  }
  $('count').removeAttribute('role');
  const clientId = newId();
  const li = item('visitor pending', t('you'), t('sending'), text);
  shown.set('c' + clientId, li);
  outbox.set(clientId, text);
  send({ type: 'message', text, client_id: clientId });
  $('text').value = '';
  stopTyping();
  updateCount();
  $('text').focus();
}

function typed() {
  updateCount();
  if (!typingSent) {
    typingSent = true;
    send({ type: 'typing', typing: true });
  }
  clearTimeout(typingTimer);
  typingTimer = setTimeout(stopTyping, 3000);
}

function stopTyping() {
  clearTimeout(typingTimer);
  if (typingSent) send({ type: 'typing', typing: false });
  typingSent = false;
}

// The end ----------------------------------------------------------------------------------

function ended(f) {
  chat = null;
  remember();
  outbox.clear();
  $('interpreter-row').hidden = true;
  counsellor = null;
  $('typing').textContent = '';
  $('queue').textContent = '';
  // `lost`: the chat went with the service's data (a restart); it cannot be resumed.
  const by = f.reason === 'lost' ? 'ended_lost' : { visitor: 'ended_by_you', counsellor: 'ended_by_counsellor' }[f.by] || 'ended_system';
  $('ended-by').textContent = t(by);
  $('composer').hidden = true;
  $('end-row').hidden = true;
  $('typing').hidden = true;
  $('chat-heading').hidden = true;
  $('end-confirm').hidden = true;
  $('continuity-offer').hidden = true; // a code can be taken only during the chat
  state = 'ended';
  // The emergency text stays in view; the button goes with the chat.
  $('danger').hidden = true;
  $('feedback').hidden = false;
  $('feedback-thanks').textContent = '';
  show('chat', 'ended');
  $('view-ended').querySelector('h1').focus();
  // The connection stays for the one optional question; it closes when that is answered.
}

function failed(f) {
  if (f.code === 'unknown_code' || (f.code === 'rate_limited' && f.ref === 'start' && pendingCode)) {
    // One neutral answer for a wrong, expired or deleted code; nothing is started.
    wantChat = false;
    pendingCode = null;
    disconnect();
    showView('intro');
    codeStatus(t(f.code === 'unknown_code' ? 'code_unknown' : 'code_rate_limited'));
    $('code-entry').open = true;
    return;
  }
  if (f.code === 'invalid_resume' || f.code === 'chat_ended' || f.code === 'not_in_chat') {
    chat = null;
    remember();
    lastSeq = 0;
    $('log').replaceChildren();
    shown.clear();
    disconnect();
    refreshLine();
  } else if (f.ref === 'danger') {
    // The emergency text is on screen already; nothing more to say.
  } else if (f.code === 'rate_limited' && f.ref === 'message') {
    setConnection(t('rate_limited'));
    setTimeout(() => { for (const [client_id, text] of outbox) send({ type: 'message', text, client_id }); }, 3000);
  } else if (f.code === 'message_too_long') {
    $('count').textContent = f.message;
  } else if (f.code === 'unknown_line') {
    wantChat = false;
    refreshLine();
  } else if (f.code !== 'not_allowed_now') {
    setConnection(t('error'));
  }
}

function startFrame() {
  const frame = { type: 'start', v: 1, line: cfg.line, language: cfg.lang };
  if (wantPeer) frame.peer = true;
  if (pendingCode) frame.code = pendingCode;
  if (pendingCode) bookingCode = pendingCode;
  return frame;
}

function codeStatus(text) {
  $('code-status').textContent = text;
}

// Continuity codes (docs/continuity.md) ----------------------------------------------------

function startWithCode(e) {
  e.preventDefault();
  const code = $('code').value.trim();
  if (!code) {
    codeStatus(t('code_empty'));
    $('code').focus();
    return;
  }
  pendingCode = code;
  $('code').value = '';
  $('wait-anyone').hidden = true;
  codeStatus('');
  start();
}

async function deleteCode() {
  const code = $('code').value.trim();
  if (!code) {
    codeStatus(t('code_empty'));
    $('code').focus();
    return;
  }
  // In the body, never the URL; the answer is the same whether the code existed or not.
  let answer = null;
  try {
    answer = await fetch('/api/visitor/continuity/delete', {
      method: 'POST',
      credentials: 'omit',
      cache: 'no-store',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ code }),
    });
  } catch {
    codeStatus(t('error'));
    return;
  }
  if (answer.ok) {
    $('code').value = '';
    codeStatus(t('code_deleted'));
  } else {
    codeStatus(t(answer.status === 429 ? 'code_rate_limited' : 'error'));
  }
}

function counsellorAway(f) {
  // No chat was started: the visitor may come back then, or talk to someone else now.
  wantChat = false;
  pendingCode = null;
  disconnect();
  showView('intro');
  const name = f.name || '';
  codeStatus(
    f.next_on_duty_at
      ? t('code_away_next', { name, when: formatWhen(f.next_on_duty_at) })
      : t('code_away', { name }),
  );
  $('wait-anyone').hidden = false;
  $('wait-anyone').focus();
}

function showCode(f) {
  $('continuity-offer').hidden = true;
  $('continuity-words').textContent = f.code;
  $('continuity-expiry').textContent = t('code_expiry', { when: formatWhen(f.expires_at) });
  $('continuity-code').hidden = false;
  $('continuity-words').setAttribute('tabindex', '-1');
  $('continuity-words').focus();
}

// Booked chats: the offered times as buttons; a pick is sent with the code in memory.
function offerTimes(times) {
  const li = document.createElement('li');
  li.className = 'msg system booking';
  const label = document.createElement('p');
  label.textContent = t('booking_offered');
  li.append(label);
  for (const iso of times) {
    const button = document.createElement('button');
    button.type = 'button';
    button.textContent = formatWhen(Date.parse(iso) / 1000);
    button.addEventListener('click', () => pickTime(li, iso));
    li.append(button);
  }
  place(li, false);
}

async function pickTime(li, iso) {
  for (const b of li.querySelectorAll('button')) b.disabled = true;
  let answer = null;
  try {
    answer = await fetch('/api/visitor/bookings/pick', {
      method: 'POST',
      credentials: 'omit',
      cache: 'no-store',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ code: bookingCode || '', time: iso }),
    });
  } catch {
    answer = null;
  }
  const status = document.createElement('p');
  status.setAttribute('role', 'status');
  if (answer && answer.ok) {
    li.querySelectorAll('button').forEach((b) => b.remove());
    status.textContent = t('booking_done', { when: formatWhen(Date.parse(iso) / 1000) });
  } else {
    for (const b of li.querySelectorAll('button')) b.disabled = false;
    status.textContent = t(answer && answer.status === 409 ? 'booking_taken' : 'booking_failed');
  }
  li.querySelector('[role=status]')?.remove();
  li.append(status);
}

function forgetCode() {
  // Shown once: gone from the page when the visitor moves on.
  $('continuity-words').textContent = '';
  $('continuity-code').hidden = true;
  $('continuity-offer').hidden = true;
}

const NEEDS = ['housing', 'health', 'legal_migration', 'addiction', 'shelter', 'violence', 'work_education', 'exit_programmes'];

function addReferral(f) {
  place(referralItem(f.card, f.name, formatTime(f.at)), false);
}

// A referral card as a transcript item, in the chat and in a mailbox thread.
function referralItem(given, name, when) {
  const card = given || {};
  const li = document.createElement('li');
  li.className = 'msg referral';
  li.lang = card.language || cfg.lang;
  const meta = document.createElement('p');
  meta.className = 'meta';
  meta.textContent = t('referral_from', { name: name || '' }) + ' ' + when;
  const title = document.createElement('h3');
  title.textContent = card.name || '';
  li.append(meta, title);
  if (card.description) {
    const text = document.createElement('p');
    text.className = 'text';
    text.textContent = card.description;
    li.append(text);
  }
  const tags = document.createElement('ul');
  tags.className = 'tags';
  tags.setAttribute('aria-label', t('referral_needs'));
  for (const need of card.needs || []) {
    if (!NEEDS.includes(need)) continue;
    const tag = document.createElement('li');
    tag.textContent = t('need_' + need);
    tags.append(tag);
  }
  if (tags.childElementCount) li.append(tags);
  // Contact details as text, never links: a tapped link would stay in the browser history.
  const details = document.createElement('dl');
  const rows = [
    ['referral_phone', card.phone],
    ['referral_email', card.email],
    ['referral_web', card.web],
    ['referral_hours', card.opening_hours],
    ['referral_where', card.national ? t('referral_national') : card.city],
    ['referral_notes', card.notes],
  ];
  for (const [key, value] of rows) {
    if (!value) continue;
    const term = document.createElement('dt');
    term.textContent = t(key);
    const text = document.createElement('dd');
    text.textContent = value;
    details.append(term, text);
  }
  li.append(details);
  return li;
}

function start() {
  inDanger = false;
  forgetCode();
  disconnect();
  $('log').replaceChildren();
  shown.clear();
  lastSeq = 0;
  retries = 0;
  state = 'starting';
  wantChat = true;
  setConnection('');
  connect();
}

function quickExit() {
  if (leaving) return;
  leaving = true;
  forgetCode();
  if (mailbox) mailbox.forget();
  clearTimeout(retryTimer);
  leave({ url: cfg.exitUrl, embedded, socket: ws, chat, loader });
}

// Start --------------------------------------------------------------------------------------

async function init() {
  watchShift(quickExit);
  $('exit').addEventListener('click', quickExit);
  $('interpreter-decline').addEventListener('click', () => {
    $('interpreter-row').hidden = true;
    send({ type: 'interpreter.decline' });
  });
  $('skip').addEventListener('click', (e) => {
    e.preventDefault();
    $('exit').focus();
  });
  addEventListener('message', (e) => {
    if (e.source !== window.parent || !e.data) return;
    if (e.data.lykta === 'loader') loader = true;
    if (e.data.lykta === 'exit') quickExit();
  });
  if (data.colour) {
    const rgb = [1, 3, 5].map((i) => parseInt(data.colour.slice(i, i + 2), 16) / 255);
    const lum = rgb.map((c) => (c <= 0.03928 ? c / 12.92 : ((c + 0.055) / 1.055) ** 2.4));
    const light = 0.2126 * lum[0] + 0.7152 * lum[1] + 0.0722 * lum[2] > 0.18;
    document.documentElement.style.setProperty('--accent', data.colour);
    document.documentElement.style.setProperty('--on-accent', light ? '#111111' : '#ffffff');
  }
  if (embedded) {
    $('minimise').hidden = false;
    $('minimise').addEventListener('click', () => parent.postMessage({ lykta: 'minimise' }, '*'));
  }
  $('start').addEventListener('click', () => {
    pendingCode = null;
    codeStatus('');
    start();
  });
  $('peer').addEventListener('change', () => { wantPeer = $('peer').checked; });
  $('code-form').addEventListener('submit', startWithCode);
  $('code-delete').addEventListener('click', deleteCode);
  $('mailbox-write').addEventListener('click', () => openMailbox('write'));
  $('mailbox-read').addEventListener('click', () => openMailbox('read'));
  $('continuity-accept').addEventListener('click', () => send({ type: 'continuity.accept' }));
  $('danger').addEventListener('click', pressDanger);
  $('wait-anyone').addEventListener('click', () => {
    $('wait-anyone').hidden = true;
    codeStatus('');
    pendingCode = null;
    start();
  });
  $('again').addEventListener('click', () => {
    forgetCode();
    disconnect();
    $('log').replaceChildren();
    refreshLine();
  });
  for (const answer of $('feedback').querySelectorAll('button')) {
    answer.addEventListener('click', () => {
      send({ type: 'feedback', answer: answer.dataset.answer });
      $('feedback').hidden = true;
      $('feedback-thanks').textContent = t('feedback_thanks');
      $('again').focus();
      disconnect();
    });
  }
  $('retry').addEventListener('click', () => {
    clearTimeout(retryTimer);
    wantChat = false;
    if (chat && !ws) connect();
    else if (!chat) refreshLine();
  });
  $('language').addEventListener('change', changeLanguage);
  $('composer').addEventListener('submit', submit);
  $('text').addEventListener('input', typed);
  $('text').addEventListener('keydown', (e) => {
    if (e.key === 'Enter' && !e.shiftKey && !e.isComposing) {
      e.preventDefault();
      $('composer').requestSubmit();
    }
  });
  $('end').addEventListener('click', () => {
    $('end-confirm').hidden = false;
    $('end-no').focus();
  });
  $('end-no').addEventListener('click', () => {
    $('end-confirm').hidden = true;
    $('end').focus();
  });
  $('end-yes').addEventListener('click', () => send({ type: 'end' }));
  // The page brings the visitor's catalogue and the line's state: no request before Start.
  // The other languages' catalogues are fetched only if the visitor picks one.
  const boot = JSON.parse($('boot').textContent);
  texts = boot.texts;
  if (!cfg.line) {
    show();
    return;
  }
  try {
    chat = JSON.parse(sessionStorage.getItem(STORE) || 'null');
  } catch {
    chat = null;
  }
  line = boot.line; // null when the server could not tell: asked again below
  const wanted = browserLanguage();
  if (wanted) {
    $('language').value = wanted;
    await changeLanguage();
  }
  if (chat) {
    // Back after a reload: the whole transcript comes again from the server.
    renderHelp();
    updateCount();
    connect();
  } else if (line) {
    showLine();
  } else {
    await refreshLine();
  }
}

init();
