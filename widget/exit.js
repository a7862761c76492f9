// Quick exit, shared by the chat page and the safety page. Leaving must never need the
// network: everything here is synchronous or fire-and-forget.

const WINDOW_MS = 5000;

// Shift pressed on its own three times within five seconds (the GOV.UK "Exit this page"
// pattern). Shift with any other key (capitals, Shift+Enter, Shift+Tab) does not count, and
// any other key starts the count again. Escape is never used: it stops page loads.
export function watchShift(onTriple) {
  let alone = false;
  let presses = [];
  addEventListener('keydown', (e) => {
    if (e.key === 'Shift') {
      if (!e.repeat) alone = true;
      return;
    }
    alone = false;
    presses = [];
  }, true);
  addEventListener('keyup', (e) => {
    if (e.key !== 'Shift' || !alone) return;
    alone = false;
    const now = performance.now();
    presses = presses.filter((at) => now - at < WINDOW_MS);
    presses.push(now);
    if (presses.length >= 3) {
      presses = [];
      onTriple();
    }
  }, true);
}

// Blank the page, tell the server (socket and beacon: either may be down), forget the token,
// and leave. Embedded, the loader in the host page replaces the top page; as a full page,
// this page replaces itself, so Back does not return to the chat.
export function leave({ url, embedded, socket, chat, loader = false }) {
  document.title = '';
  document.body.replaceChildren();
  document.documentElement.classList.add('gone');
  try {
    if (socket && socket.readyState === 1) socket.send('{"type":"exit"}');
  } catch { /* leaving anyway */ }
  try {
    const body = chat ? { chat_id: chat.chat_id, token: chat.token } : {};
    navigator.sendBeacon('/api/visitor/exit', JSON.stringify(body));
  } catch { /* offline: the server ends the chat when the visitor does not come back */ }
  try { sessionStorage.clear(); } catch { /* storage blocked: nothing was kept */ }
  if (embedded) {
    // The message says nothing but "leave"; the loader checks that it came from Lykta.
    parent.postMessage({ lykta: 'exit' }, '*');
    // A page that embeds the chat without the loader: leave by ourselves (allowed after a tap).
    // With the loader, never: a second navigation of the top page would abort its first.
    if (!loader) {
      setTimeout(() => { try { top.location.replace(url); } catch { /* nothing more to do */ } }, 800);
    }
  } else {
    location.replace(url);
  }
}
