// Client-side routing: history.pushState navigation between the pages of the shell. Links
// marked `data-route` navigate without a reload; the server serves the same shell for each.

const routes = [];
let onChange = null;

/** Register `pattern` (e.g. "/c/:id") for `render(params)`. */
export function route(pattern, render) {
  const names = [];
  const regex = new RegExp("^" + pattern.replace(/:(\w+)/g, (_, name) => { names.push(name); return "([^/]+)"; }) + "/?$");
  routes.push({ regex, names, render });
}

export function start(changed) {
  onChange = changed;
  window.addEventListener("popstate", () => dispatch());
  document.addEventListener("click", (event) => {
    const link = event.target.closest("a[data-route]");
    if (!link || event.defaultPrevented || event.button !== 0 || event.metaKey || event.ctrlKey || event.shiftKey) return;
    event.preventDefault();
    navigate(link.getAttribute("href"));
  });
  return dispatch();
}

export function navigate(path, { replace = false } = {}) {
  if (path === location.pathname && !replace) return dispatch();
  history[replace ? "replaceState" : "pushState"](null, "", path);
  return dispatch();
}

/** Change the address bar without rendering (the current view already shows `path`). */
export function setPath(path) {
  if (path !== location.pathname) history.replaceState(null, "", path);
}

function dispatch() {
  const path = location.pathname;
  for (const { regex, names, render } of routes) {
    const match = regex.exec(path);
    if (match) {
      const params = Object.fromEntries(names.map((name, i) => [name, decodeURIComponent(match[i + 1])]));
      if (onChange) onChange(path);
      return render(params);
    }
  }
  return navigate("/", { replace: true });
}
