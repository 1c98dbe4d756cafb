// Entry module: applies the theme, loads the session, then routes between the pages. Owns the
// signed-in state: the live socket, the chat page, the connection indicator and sign-out.

import { friendlyError } from "./api.js";
import { h } from "./dom.js";
import { LiveSocket } from "./socket.js";
import { forget, loadSession, nextPath, signOut, signupAllowed, user } from "./session.js";
import { navigate, route, start } from "./router.js";
import { applyTheme } from "./theme.js";
import { toast } from "./toast.js";
import { broadcast, onBroadcast } from "./chat/tabsync.js";
import { authView } from "./views/auth.js";
import { ChatPage } from "./views/chat.js";
import { planView } from "./views/plan.js";
import { settingsView } from "./views/settings.js";
import { usageView } from "./views/usage.js";

applyTheme();

const main = document.getElementById("main");
const nav = document.querySelector(".topnav");
const signOutButton = document.getElementById("sign-out");
// The console (a server-rendered page, not a client route) is linked for admins only.
const adminLink = document.getElementById("admin-link");
const indicator = document.getElementById("connection");
let socket = null;
let chat = null;

const CONNECTION_TEXT = { connecting: "Connecting…", open: "Live", idle: "Offline" };

function showIndicator({ state, retryInMs }) {
  indicator.dataset.state = state;
  indicator.querySelector(".connection-text").textContent = state === "closed"
    ? `Reconnecting${retryInMs ? ` in ${Math.ceil(retryInMs / 1000)} s` : "…"}`
    : CONNECTION_TEXT[state];
}

/** Signed in: open the socket and build the chat page once. */
function startSession() {
  nav.hidden = false;
  adminLink.hidden = user()?.role !== "admin";
  signOutButton.hidden = false;
  indicator.hidden = false;
  if (socket) return;
  socket = new LiveSocket({ subscriptions: () => (chat ? chat.subscriptions() : []) });
  socket.on("status", showIndicator);
  chat = new ChatPage(socket);
  socket.connect();
}

/** Signed out (here, in another tab, or the session expired): drop everything. */
function endSession() {
  forget();
  if (socket) socket.stop();
  if (chat) chat.dispose();
  socket = null;
  chat = null;
  nav.hidden = true;
  adminLink.hidden = true;
  signOutButton.hidden = true;
  indicator.hidden = true;
}

function markCurrentNav(path) {
  for (const link of nav.querySelectorAll("a")) {
    const href = link.getAttribute("href");
    const current = href === "/" ? path === "/" || path.startsWith("/c/") : path.startsWith(href);
    if (current) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
}

/** Pages behind sign-in send visitors to /login first. */
function signedIn(render) {
  return (params) => {
    if (!user()) return navigate("/login", { replace: true });
    startSession();
    return render(params);
  };
}

/** After signing in: the page `/login?next=...` asked for (a server page such as /admin/ is
 * loaded in full), else the chat. */
function goNext() {
  const next = nextPath();
  if (next === "/") return navigate("/", { replace: true });
  location.assign(next);
}

function signedOut(mode) {
  return () => {
    if (user()) return goNext();
    if (mode === "signup" && !signupAllowed()) return navigate("/login", { replace: true });
    document.title = mode === "signup" ? "Sign up – BestChat" : "Sign in – BestChat";
    return authView(main, mode, goNext);
  };
}

route("/login", signedOut("login"));
route("/signup", signedOut("signup"));
route("/", signedIn(() => chat.mount(main, null)));
route("/c/:id", signedIn(({ id }) => chat.mount(main, id)));
route("/settings", signedIn(() => settingsView(main, user(), () => {
  broadcast({ type: "signed-out" });
  endSession();
  toast("Your account was deleted.");
  navigate("/login", { replace: true });
})));
route("/usage", signedIn(() => usageView(main)));
route("/plan", signedIn(() => planView(main)));

signOutButton.addEventListener("click", async () => {
  try { await signOut(); } catch (error) { toast(friendlyError(error), { kind: "error" }); }
  broadcast({ type: "signed-out" });
  endSession();
  navigate("/login", { replace: true });
});

window.addEventListener("bestchat:signed-out", () => {
  if (!user()) return;
  endSession();
  toast("Your session has ended. Sign in again.");
  navigate("/login", { replace: true });
});

onBroadcast((message) => {
  if (message.type === "signed-out" && user()) {
    endSession();
    navigate("/login", { replace: true });
  }
});

async function boot() {
  try {
    await loadSession();
  } catch (error) {
    main.replaceChildren(h("p", { class: "notice", text: friendlyError(error) }));
    return;
  }
  await start(markCurrentNav);
}

boot();
