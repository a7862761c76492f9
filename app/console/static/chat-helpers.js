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

export function languageName(code) {
  try {
    const names = new Intl.DisplayNames([document.documentElement.lang || "en"], { type: "language" });
    return names.of(code) ?? code;
  } catch {
    return code;
  }
}
