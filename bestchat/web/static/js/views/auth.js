// Sign-in and sign-up forms, with the server's errors said in plain words.

import { friendlyError } from "../api.js";
import { field, h } from "../dom.js";
import { inviteToken, signIn, signUp, signupAllowed } from "../session.js";

/** Render the form for `mode` ("login" or "signup"); `onDone(user)` after success. */
export function authView(container, mode, onDone) {
  const signingUp = mode === "signup" && signupAllowed();
  const invite = signingUp ? inviteToken() : null;
  const email = h("input", { type: "email", name: "email", required: true, autocomplete: "username", maxLength: 320 });
  const password = h("input", {
    type: "password", name: "password", required: true, minLength: signingUp ? 8 : undefined,
    autocomplete: signingUp ? "new-password" : "current-password",
  });
  const error = h("p", { class: "form-error", attrs: { role: "alert" } });
  const submit = h("button", { type: "submit", class: "primary", text: signingUp ? "Create account" : "Sign in" });
  const form = h("form", { class: "card auth-form", attrs: { "aria-labelledby": "auth-title" } },
    h("h1", { id: "auth-title", text: signingUp ? "Create your account" : "Sign in to BestChat" }),
    invite ? h("p", { class: "muted", text: "You were invited: create your account below." }) : null,
    field("Email", email),
    field("Password", password, signingUp ? "At least 8 characters, not an easy one." : undefined),
    error, submit,
    switchLink(signingUp));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    error.textContent = "";
    submit.disabled = true;
    try {
      const user = signingUp
        ? await signUp(email.value.trim(), password.value, invite)
        : await signIn(email.value.trim(), password.value);
      onDone(user);
    } catch (err) {
      error.textContent = friendlyError(err);
      password.focus();
    } finally {
      submit.disabled = false;
    }
  });
  container.replaceChildren(h("div", { class: "auth-page" }, form));
  email.focus();
}

function switchLink(signingUp) {
  if (signingUp) return h("p", {}, "Already have an account? ", h("a", { href: "/login", text: "Sign in", dataset: { route: "" } }));
  if (!signupAllowed()) return h("p", { class: "muted", text: "Sign-up needs an invitation on this server; ask an administrator." });
  return h("p", {}, "New here? ", h("a", { href: "/signup", text: "Create an account", dataset: { route: "" } }));
}
