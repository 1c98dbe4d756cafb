// Who is signed in: loads the session (and its CSRF token) and signs in, up and out.

import { api, setCsrfToken } from "./api.js";

let currentUser = null;

export function user() {
  return currentUser;
}

/** The invitation token of a `/signup?invite=<token>` link, or null. */
export const inviteToken = () => new URLSearchParams(location.search).get("invite") || null;

/** Whether this visitor may sign up: registration is open, or they came with an invitation. */
export const signupAllowed = () => document.body.dataset.registration === "open" || inviteToken() !== null;

/** Where to go once signed in: the `next` of `/login?next=...`, as the server checked it
 * (a path on this server, else "/"), while the address still carries it. */
export const nextPath = () =>
  new URLSearchParams(location.search).has("next") ? document.body.dataset.next || "/" : "/";

/** The signed-in user, or null (a 401 is the normal answer for a visitor). */
export async function loadSession() {
  try {
    const data = await api("GET", "/me");
    currentUser = data.user;
    setCsrfToken(data.csrf_token);
  } catch (error) {
    if (error.status !== 401) throw error;
    currentUser = null;
  }
  return currentUser;
}

export async function signIn(email, password) {
  const data = await api("POST", "/auth/login", { email, password });
  currentUser = data.user;
  setCsrfToken(data.csrf_token);
  return currentUser;
}

export async function signUp(email, password, invite = null) {
  await api("POST", "/auth/register", invite ? { email, password, invite } : { email, password });
  return signIn(email, password);
}

export async function signOut() {
  try {
    await api("POST", "/auth/logout");
  } finally {
    forget();
  }
}

/** Drop the local session state (after sign-out, account deletion or an expired session). */
export function forget() {
  currentUser = null;
  setCsrfToken(null);
}
