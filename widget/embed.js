/* Lykta loader: <script src="https://lykta.example/widget/embed.js" data-line="support"></script>
   Draws a launcher and a quick-exit button and opens the chat in an iframe served by Lykta, so
   this page never reads the chat. No dependencies; styles are set through the CSSOM, so a
   strict Content-Security-Policy on the host page does not block them. */
(function () {
  var script = document.currentScript;
  if (!script || !script.dataset.line) return;
  var d = script.dataset;
  var origin = new URL(script.src).origin;
  // The chat's language: the page's data-language, else the browser's languages (the chat
  // page chooses from them itself), else the line's first. Only the labels here fall back
  // to the host page's own language.
  var asked = d.language || '';
  // Must match widget/i18n/*.json (a test checks it).
  var T = {
    sv: ['Chatta', 'Lämna snabbt', 'eller tryck Skift 3 gånger', 'Hoppa till snabb utgång'],
    en: ['Chat', 'Quick exit', 'or press Shift 3 times', 'Skip to quick exit'],
    ar: ['دردشة', 'خروج سريع', 'أو اضغط Shift ثلاث مرات', 'انتقل إلى الخروج السريع'],
    ro: ['Chat', 'Ieșire rapidă', 'sau apasă Shift de 3 ori', 'Sari la ieșirea rapidă'],
    bg: ['Чат', 'Бърз изход', 'или натисни Shift 3 пъти', 'Към бързия изход'],
    hu: ['Csevegés', 'Gyors kilépés', 'vagy nyomd meg 3-szor a Shiftet', 'Ugrás a gyors kilépéshez'],
    es: ['Chat', 'Salida rápida', 'o pulsa Mayús 3 veces', 'Ir a la salida rápida'],
    th: ['แชท', 'ออกทันที', 'หรือกด Shift 3 ครั้ง', 'ข้ามไปที่ปุ่มออกทันที'],
    ru: ['Чат', 'Быстрый выход', 'или нажми Shift 3 раза', 'Перейти к быстрому выходу'],
    uk: ['Чат', 'Швидкий вихід', 'або натисни Shift 3 рази', 'Перейти до швидкого виходу'],
    pl: ['Czat', 'Szybkie wyjście', 'albo naciśnij Shift 3 razy', 'Przejdź do szybkiego wyjścia'],
    fr: ['Chat', 'Sortie rapide', 'ou appuie 3 fois sur Maj', 'Aller à la sortie rapide']
  };
  var wants = [asked].concat(navigator.languages || [], document.documentElement.lang, 'en');
  var L;
  for (var i = 0; !L; i++) L = T[String(wants[i] || '').split('-')[0].toLowerCase()];
  var exitUrl = /^https?:\/\//.test(d.exitUrl || '') ? d.exitUrl : 'https://www.google.com/';
  var colour = /^#[0-9a-fA-F]{6}$/.test(d.colour || '') ? d.colour : '#2f5d62';
  var textColour = /^#[0-9a-fA-F]{6}$/.test(d.textColour || '') ? d.textColour : '#ffffff';
  var left = d.position === 'left';
  var slot = window.__lyktaSlots = (window.__lyktaSlots || 0) + 1;
  var bottom = 16 + (slot - 1) * 72;
  var side = left ? 'left' : 'right';
  var panel, frame, leaving = false;

  function el(tag, style, text) {
    var e = document.createElement(tag);
    var s = e.style;
    s.all = 'initial';
    s.boxSizing = 'border-box';
    s.fontFamily = 'system-ui, sans-serif';
    for (var k in style) s[k] = style[k];
    if (text) e.textContent = text;
    return e;
  }
  function button(text, bg, fg) {
    var b = el('button', {
      background: bg, color: fg, border: '2px solid ' + fg, borderRadius: '24px',
      padding: '10px 18px', minHeight: '48px', minWidth: '48px', fontSize: '16px',
      fontWeight: '700', cursor: 'pointer', boxShadow: '0 2px 8px rgba(0,0,0,.25)'
    }, text);
    b.type = 'button';
    b.addEventListener('focus', function () { b.style.outline = '3px solid #1a4fa0'; b.style.outlineOffset = '2px'; });
    b.addEventListener('blur', function () { b.style.outline = 'none'; });
    return b;
  }

  var bar = el('div', {
    position: 'fixed', bottom: bottom + 'px', display: 'flex', gap: '8px', zIndex: '2147483000',
    flexDirection: left ? 'row' : 'row-reverse'
  });
  bar.style[side] = '16px';
  bar.setAttribute('data-lykta', d.line);
  var launcher = button(d.launcherText || L[0], colour, textColour);
  launcher.setAttribute('aria-expanded', 'false');
  var quit = button(L[1], '#a4262c', '#ffffff');
  quit.title = L[2];
  bar.append(launcher, quit);

  function open() {
    if (!panel) {
      panel = el('div', {
        position: 'fixed', zIndex: '2147483001', background: '#ffffff', overflow: 'hidden',
        boxShadow: '0 4px 24px rgba(0,0,0,.3)', borderRadius: '12px'
      });
      place();
      frame = el('iframe', { width: '100%', height: '100%', border: '0', display: 'block' });
      frame.title = d.launcherText || L[0];
      frame.referrerPolicy = 'no-referrer';
      frame.allow = '';
      // Tell the chat a loader is here, so it leaves the top page to us: its own fallback
      // navigation would abort ours on a slow machine. Sent again on every load of the frame.
      frame.addEventListener('load', function () {
        frame.contentWindow.postMessage({ lykta: 'loader' }, origin);
      });
      var q = new URLSearchParams({ embed: '1', colour: colour, exit: exitUrl });
      if (asked) q.set('lang', asked);
      // The address is set before the frame is in the page: its first load adds no history.
      frame.src = origin + '/chat/' + encodeURIComponent(d.line) + '?' + q;
      panel.appendChild(frame);
      document.body.appendChild(panel);
    }
    panel.style.display = 'block';
    launcher.setAttribute('aria-expanded', 'true');
    frame.focus();
  }
  function place() {
    var phone = innerWidth < 600;
    var s = panel.style;
    s.top = phone ? '0' : 'auto';
    s.left = s.right = phone ? '0' : 'auto';
    if (!phone) s[side] = '16px';
    s.bottom = phone ? '0' : bottom + 64 + 'px';
    s.width = phone ? '100%' : '400px';
    s.height = phone ? '100%' : 'min(640px, calc(100vh - ' + (bottom + 88) + 'px))';
    s.borderRadius = phone ? '0' : '12px';
  }
  function minimise() {
    if (!panel) return;
    panel.style.display = 'none';
    launcher.setAttribute('aria-expanded', 'false');
    launcher.focus();
  }
  // Blank this page at once, let the chat end itself (it answers at once, network or not; a
  // busy phone gets a moment more, while the screen is already blank), then replace this
  // page so Back does not return to it. The page is covered rather than hidden: a hidden
  // frame's process runs at background priority and may be too late to end the chat.
  function leave(fromChat) {
    if (leaving) return;
    leaving = true;
    var cover = document.createElement('div');
    cover.style.cssText = 'position:fixed;inset:0;background:#fff;z-index:2147483647';
    document.documentElement.appendChild(cover);
    document.title = '';
    if (frame && !fromChat) {
      frame.contentWindow.postMessage({ lykta: 'exit' }, origin);
      setTimeout(go, 2500);
    } else {
      go();
    }
  }
  // Once: a second replace (the frame's answer, then the fallback timer on a slow network)
  // would abort the first navigation and start it over.
  var gone = false;
  function go() {
    if (gone) return;
    gone = true;
    location.replace(exitUrl);
  }

  launcher.addEventListener('click', function () {
    if (panel && panel.style.display !== 'none') minimise(); else open();
  });
  quit.addEventListener('click', function () { leave(false); });
  addEventListener('resize', function () { if (panel) place(); });
  addEventListener('message', function (e) {
    if (e.origin !== origin || !frame || e.source !== frame.contentWindow || !e.data) return;
    if (e.data.lykta === 'exit') leaving ? go() : leave(true);
    if (e.data.lykta === 'minimise') minimise();
  });
  // Shift pressed on its own three times within five seconds, anywhere on this page.
  var alone = false, presses = [];
  addEventListener('keydown', function (e) {
    if (e.key === 'Shift') { if (!e.repeat) alone = true; return; }
    alone = false;
    presses = [];
  }, true);
  addEventListener('keyup', function (e) {
    if (e.key !== 'Shift' || !alone) return;
    alone = false;
    var now = Date.now();
    presses = presses.filter(function (at) { return now - at < 5000; });
    presses.push(now);
    if (presses.length > 2) leave(false);
  }, true);

  function mount() {
    document.body.appendChild(bar);
    if (slot > 1) return;
    // A skip link, first in the page's tab order, to the quick-exit button.
    var skip = el('a', {
      position: 'fixed', top: '-100px', left: '8px', zIndex: '2147483002', background: '#ffffff',
      color: '#1f2933', padding: '12px 16px', border: '2px solid #1f2933', fontSize: '16px'
    }, L[3]);
    skip.href = '#';
    skip.addEventListener('focus', function () { skip.style.top = '8px'; });
    skip.addEventListener('blur', function () { skip.style.top = '-100px'; });
    skip.addEventListener('click', function (e) { e.preventDefault(); quit.focus(); });
    document.body.insertBefore(skip, document.body.firstChild);
  }
  if (document.body) mount(); else addEventListener('DOMContentLoaded', mount);
})();
