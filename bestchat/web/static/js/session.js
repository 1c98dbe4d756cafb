// Who is signed in: loads the session (and its CSRF token) and signs in, up and out.

import { api, setCsrfToken } from "./api.js";

let currentUser = null;

export function user() {
  return currentUser;
}

export const registrationOpen = () => document.body.dataset.registrationOpen === "true";

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

export async function signUp(email, password) {
  await api("POST", "/auth/register", { email, password });
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
