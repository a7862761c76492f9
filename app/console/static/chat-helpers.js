// Small helpers the chats and supervise views share.

export function addStylesheet() {
  if (document.querySelector("link[data-chats-css]")) return;
  const link = document.createElement("link");
  link.rel = "stylesheet";
  link.href = "/console/static/chats.css";
  link.dataset.chatsCss = "true";
  document.head.append(link);
}

export function clock(epoch) {
  if (!epoch) return "";
  const locale = document.documentElement.lang === "sv" ? "sv-SE" : "en-GB";
  return new Date(epoch * 1000).toLocaleTimeString(locale, { hour: "2-digit", minute: "2-digit" });
}

export function duration(seconds) {
  const s = Math.max(0, Math.round(seconds));
  const m = Math.floor(s / 60);
  return `${m}:${String(s % 60).padStart(2, "0")}`;
}

// A line's wrap-up topic or outcome in the console's language when the catalogue knows the
// term (the usual ones), else as the line has it: the value sent stays the line's own.
export function termText(t, kind, term) {
  const key = `wrapup.${kind}.${String(term).replace(/\s+/g, "_")}`;
  const text = t(key);
  return text === key ? term : text;
}

export function languageName(code) {
  try {
    const names = new Intl.DisplayNames([document.documentElement.lang || "en"], { type: "language" });
    return names.of(code) ?? code;
  } catch {
    return code;
  }
}
