// The REST client: JSON in and out, the session's CSRF token on every unsafe request, and the
// contract's {error: {code, message}} turned into an ApiError with a friendly message.

const UNSAFE = new Set(["POST", "PUT", "PATCH", "DELETE"]);
let csrfToken = null;

export class ApiError extends Error {
  constructor(status, code, message, retryAfter = null) {
    super(message);
    this.status = status;
    this.code = code;
    this.retryAfter = retryAfter;
  }
}

export function setCsrfToken(token) {
  csrfToken = token || null;
}

export function csrfHeaders() {
  return csrfToken ? { "X-CSRF-Token": csrfToken } : {};
}

/** Call the API; resolves with the parsed JSON body (null for 204), rejects with ApiError. */
export async function api(method, path, body, { retryCsrf = true } = {}) {
  const headers = { Accept: "application/json" };
  if (UNSAFE.has(method)) Object.assign(headers, csrfHeaders());
  if (body !== undefined) headers["Content-Type"] = "application/json";
  let response;
  try {
    response = await fetch(`/api/v1${path}`, {
      method, headers, credentials: "same-origin",
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch {
    throw new ApiError(0, "network_error", "Can't reach the server. Check your connection and try again.");
  }
  if (response.status === 204) return null;
  const data = await response.json().catch(() => null);
  if (response.ok) return data;
  const error = toApiError(response, data);
  if (error.code === "csrf_failed" && retryCsrf) {
    await refreshCsrf();
    return api(method, path, body, { retryCsrf: false });
  }
  if (error.status === 401 && !path.startsWith("/auth/")) {
    window.dispatchEvent(new CustomEvent("bestchat:signed-out"));
  }
  throw error;
}

export function toApiError(response, data) {
  const err = data && data.error ? data.error : {};
  const retry = Number(response.headers.get("Retry-After")) || null;
  return new ApiError(response.status, err.code || `http_${response.status}`,
    err.message || response.statusText || "Request failed", retry);
}

async function refreshCsrf() {
  const response = await fetch("/api/v1/me", { credentials: "same-origin", headers: { Accept: "application/json" } });
  if (response.ok) setCsrfToken((await response.json()).csrf_token);
}

const FRIENDLY = {
  invalid_credentials: () => "Wrong email or password.",
  account_disabled: () => "This account is disabled. Contact your administrator.",
  registration_closed: () => "Sign-up is closed on this server. Ask an administrator for an account.",
  invite_invalid: () => "This invitation link is not valid: it was used, has expired or is for another email.",
  email_taken: () => "An account with this email already exists. Sign in instead.",
  rate_limited: (e) => `Too many attempts. Try again in ${e.retryAfter || "a few"} seconds.`,
  overloaded: (e) => `The server is at capacity right now. Try again in ${e.retryAfter || "a few"} seconds.`,
  unauthorized: () => "Your session has ended. Sign in again.",
  csrf_failed: () => "Your session expired. Reload the page and try again.",
  invalid_password: () => "That password is wrong.",
  no_customer: () => "There is no billing account yet: choose a plan first.",
};

/** A sentence to show a person for any error thrown by `api()` (or anything else). */
export function friendlyError(error) {
  if (error instanceof ApiError) {
    const make = FRIENDLY[error.code];
    if (make) return make(error);
    if (error.status >= 500) return "The server had a problem. Try again in a moment.";
    return sentence(error.message || "Something went wrong");
  }
  return "Something went wrong. Try again.";
}

/** True for a refusal by one of the user's usage limits (requests, tokens, cost, concurrent
 * answers): its message names the limit and when it resets. */
export function isLimitError(error) {
  return error instanceof ApiError && typeof error.code === "string" && error.code.startsWith("limit_");
}

/** True when the endpoint does not exist (yet) on this server. */
export function isMissingEndpoint(error) {
  return error instanceof ApiError && (error.status === 404 || error.status === 405) &&
    (error.code === "not_found" || error.code === "method_not_allowed");
}

/** "wrong thing" -> "Wrong thing." */
function sentence(text) {
  const capital = text[0].toUpperCase() + text.slice(1);
  return /[.!?]$/.test(capital) ? capital : `${capital}.`;
}
