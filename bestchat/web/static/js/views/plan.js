// The plan page: the user's current plan and its limits, and the other plans with their limits
// and price, from GET /api/v1/billing. With billing on, each plan that can be bought has a
// Choose/Upgrade button (a Stripe Checkout page, through POST /billing/checkout) and
// "Manage billing" opens Stripe's customer portal (POST /billing/portal); with billing off,
// plans are assigned by an administrator and the page says so.

import { api, friendlyError, isMissingEndpoint } from "../api.js";
import { h } from "../dom.js";
import { count, money, planPrice } from "../format.js";
import { toast } from "../toast.js";

const LIMIT_NAMES = {
  requests_per_minute: "Requests per minute",
  tokens_per_day: "Tokens per day",
  cost_per_month: "Cost per month",
  concurrent_generations: "Answers at the same time",
};
const STATUS_TEXT = { active: "active", trialing: "trial", past_due: "payment overdue", unpaid: "unpaid", canceled: "cancelled", incomplete: "incomplete" };

export async function planView(container) {
  document.title = "Plan – BestChat";
  const body = h("div", { class: "plan-body" }, h("p", { class: "muted", text: "Loading…" }));
  container.replaceChildren(h("div", { class: "page" }, h("h1", { text: "Plan" }), body));
  try {
    const data = await api("GET", "/billing");
    body.replaceChildren(...render(data));
  } catch (error) {
    const text = isMissingEndpoint(error) ? "Plans are not available on this server." : friendlyError(error);
    body.replaceChildren(h("p", { class: "notice", text }));
  }
}

function render(data) {
  const plans = data.plans || [];
  const current = plans.find((p) => p.current);
  const others = plans.filter((p) => !p.current);
  const currentPrice = current ? Number(current.price_cents) || 0 : 0;
  return [
    currentSection(data, current),
    h("section", { class: "card", attrs: { "aria-labelledby": "plan-others-title" } },
      h("h2", { id: "plan-others-title", text: current ? "Other plans" : "Plans" }),
      data.enabled ? null : h("p", { class: "notice admin-assigned", text: "Plans are assigned by your administrator." }),
      others.length
        ? h("ul", { class: "plan-list" }, others.map((p) => planCard(p, data.enabled, currentPrice)))
        : h("p", { class: "muted", text: "There are no other plans." })),
    h("p", {}, h("a", { href: "/usage", dataset: { route: "" }, text: "See your usage and limits" })),
  ];
}

function currentSection(data, current) {
  const plan = data.plan;
  const sub = data.subscription;
  const lines = [];
  if (sub && sub.status) lines.push(`Status: ${STATUS_TEXT[sub.status] || sub.status}`);
  if (sub && sub.current_period_end) {
    const end = new Date(sub.current_period_end).toLocaleDateString();
    lines.push(sub.cancel_at_period_end ? `Ends on ${end}` : `Renews on ${end}`);
  }
  if (plan && plan.source === "admin") lines.push("Assigned by your administrator");
  if (plan && plan.source === "default") lines.push("The default plan");
  const manage = data.enabled && sub && sub.source === "stripe"
    ? h("button", { type: "button", class: "manage-billing", text: "Manage billing", on: { click: (e) => openPortal(e.currentTarget) } })
    : null;
  return h("section", { class: "card current-plan", attrs: { "aria-labelledby": "plan-current-title" } },
    h("h2", { id: "plan-current-title", text: "Your plan" }),
    plan ? h("p", { class: "plan-name" }, h("strong", { text: plan.name }),
      current ? ` · ${planPrice(current.price_cents)}` : "") : h("p", { text: "You have no plan." }),
    current && current.description ? h("p", { class: "muted", text: current.description }) : null,
    lines.length ? h("p", { class: "muted", text: lines.join(" · ") }) : null,
    current ? limitList(current.limits) : null,
    manage);
}

function planCard(plan, enabled, currentPrice) {
  const price = Number(plan.price_cents) || 0;
  const action = enabled && plan.purchasable
    ? h("button", {
      type: "button", class: "primary", text: price > currentPrice ? "Upgrade" : "Choose",
      attrs: { "aria-label": `${price > currentPrice ? "Upgrade" : "Choose"} to ${plan.name}` },
      on: { click: (e) => checkout(plan, e.currentTarget) },
    })
    : null;
  return h("li", { class: "plan-card", dataset: { planId: plan.id } },
    h("h3", {}, plan.name, " ", h("span", { class: "plan-price", text: planPrice(plan.price_cents) })),
    plan.description ? h("p", { class: "muted", text: plan.description }) : null,
    limitList(plan.limits), action);
}

function limitList(limits) {
  const set = Object.keys(LIMIT_NAMES).filter((kind) => limits && limits[kind] !== null && limits[kind] !== undefined);
  if (!set.length) return h("p", { class: "muted plan-limits", text: "No limits." });
  return h("ul", { class: "plan-limits" }, set.map((kind) => h("li", {},
    `${LIMIT_NAMES[kind]}: `, h("strong", { text: kind === "cost_per_month" ? money(limits[kind]) : count(limits[kind]) }))));
}

async function checkout(plan, button) {
  button.disabled = true;
  try {
    const { url } = await api("POST", "/billing/checkout", { plan_id: plan.id });
    location.href = url;
  } catch (error) {
    toast(friendlyError(error), { kind: "error" });
    button.disabled = false;
  }
}

async function openPortal(button) {
  button.disabled = true;
  try {
    const { url } = await api("POST", "/billing/portal");
    location.href = url;
  } catch (error) {
    toast(friendlyError(error), { kind: "error" });
    button.disabled = false;
  }
}
