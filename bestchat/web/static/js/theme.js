// Light/dark theme: follows the system unless the person picked one (kept in localStorage).
// The stylesheet reads `data-theme` on <html>; "system" leaves it unset.

const KEY = "bestchat.theme";
export const THEMES = ["system", "light", "dark"];

export function currentTheme() {
  const stored = localStorage.getItem(KEY);
  return THEMES.includes(stored) ? stored : "system";
}

export function applyTheme(theme = currentTheme()) {
  if (theme === "system") delete document.documentElement.dataset.theme;
  else document.documentElement.dataset.theme = theme;
}

export function setTheme(theme) {
  if (theme === "system") localStorage.removeItem(KEY);
  else localStorage.setItem(KEY, theme);
  applyTheme(theme);
}

// Another tab changed the theme: follow it.
window.addEventListener("storage", (event) => { if (event.key === KEY) applyTheme(); });
