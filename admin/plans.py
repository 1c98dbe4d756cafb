"""The console's plans page (``/admin/plans/``): the plans with their limits, Stripe price and
subscriber counts; create and edit a plan, deactivate it (no longer offered; its subscribers
keep it), and choose the default plan (users with no subscription are on it).

Thin: the rules and the audit log are :mod:`bestchat.services.billing`'s. A refused change is
shown on the form again with its reason, nothing changed; an unknown or malformed id is 404.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Any

from flask import abort, flash, redirect, request, url_for
from flask_admin import expose
from flask_login import current_user

from bestchat.admin.base import SecureView
from bestchat.errors import Conflict, DomainError, Invalid, NotFound
from bestchat.extensions import db
from bestchat.models import Plan
from bestchat.models.limits import LIMIT_KINDS
from bestchat.services import billing, limit_settings

# The largest displayed price, in USD.
MAX_USD = Decimal("9999999999")


class PlansView(SecureView):
    """Plans: their limits, Stripe price, displayed price and the default plan."""

    @expose("/")
    def index(self) -> str:
        return self.render("bestchat_admin/plans.html", plans=billing.list_plans(), kinds=LIMIT_KINDS,
                           labels=limit_settings.LABELS, billing_enabled=billing.enabled())

    @expose("/new", methods=("GET", "POST"))
    def create(self) -> Any:
        if request.method == "GET":
            return self._form(None, _values_of(None))
        form = dict(request.form)
        try:
            plan = billing.save_plan(_actor(), None, _parse(form))
        except DomainError as error:
            db.session.rollback()
            return self._form(None, form, error.message, status=_status(error))
        flash(f"Plan {plan.name} created.", "success")
        return redirect(url_for(".edit", plan_id=plan.id))

    @expose("/<plan_id>/", methods=("GET", "POST"))
    def edit(self, plan_id: str) -> Any:
        plan = _plan(plan_id)
        if request.method == "GET":
            return self._form(plan, _values_of(plan))
        form = dict(request.form)
        try:
            billing.save_plan(_actor(), plan, _parse(form))
        except DomainError as error:
            db.session.rollback()
            return self._form(_plan(plan_id), form, error.message, status=_status(error))
        flash(f"Plan {plan.name} saved.", "success")
        return redirect(url_for(".edit", plan_id=plan.id))

    def _form(self, plan: Plan | None, values: dict[str, Any], error: str | None = None, status: int = 200) -> Any:
        page = self.render("bestchat_admin/plan_form.html", plan=plan, values=values, error=error,
                           limit_fields=limit_settings.LABELS,
                           limit_values={kind: values.get(f"limit_{kind}") or "" for kind in LIMIT_KINDS},
                           billing_enabled=billing.enabled())
        return page, status


def _actor() -> Any:
    return current_user._get_current_object()


def _plan(plan_id: str) -> Plan:
    try:
        return billing.get_plan(plan_id)
    except NotFound:
        abort(404)


def _status(error: DomainError) -> int:
    return 409 if isinstance(error, Conflict) else 400


def _values_of(plan: Plan | None) -> dict[str, Any]:
    """The form's fields as text (a new plan: empty, active)."""
    if plan is None:
        return {"name": "", "description": "", "stripe_price_id": "", "price": "", "active": "on"}
    values = {"name": plan.name, "description": plan.description or "", "stripe_price_id": plan.stripe_price_id or "",
              "price": f"{plan.price_cents / 100:.2f}", "active": "on" if plan.active else "",
              "is_default": "on" if plan.is_default else ""}
    for kind in LIMIT_KINDS:
        value = getattr(plan, f"limit_{kind}")
        if isinstance(value, Decimal):
            value = format(value.normalize(), "f")  # 25.5, 100 (not 1E+2)
        values[f"limit_{kind}"] = "" if value is None else str(value)
    return values


def _parse(form: dict[str, str]) -> dict[str, Any]:
    """The plan's values from the posted form; :class:`Invalid` naming the first bad field."""
    values: dict[str, Any] = {
        "name": form.get("name", "").strip()[:100],
        "description": form.get("description", "").strip()[:500] or None,
        "stripe_price_id": form.get("stripe_price_id", "").strip() or None,
        "price_cents": _cents(form.get("price", "")),
        "active": form.get("active") == "on",
        "is_default": form.get("is_default") == "on",
    }
    if values["stripe_price_id"] is not None and (len(values["stripe_price_id"]) > 100
                                                  or not values["stripe_price_id"].startswith("price_")):
        raise Invalid("invalid_field", "the Stripe price id looks like price_... (from Stripe's product page)")
    values.update(limit_settings.columns({kind: form.get(f"limit_{kind}", "") for kind in LIMIT_KINDS}))
    return values


def _amount(text: str, label: str) -> Decimal | None:
    text = text.strip().replace(",", "")
    if not text:
        return None
    try:
        value = Decimal(text)
    except InvalidOperation:
        raise Invalid("invalid_field", f"{label}: not a number") from None
    if not value.is_finite() or value < 0 or value > MAX_USD:
        raise Invalid("invalid_field", f"{label}: must be between 0 and {MAX_USD}")
    return value


def _cents(text: str) -> int:
    value = _amount(text, "Displayed price")
    return 0 if value is None else int((value * 100).to_integral_value())


# ---- the "Plan" section of a user's page (admin/users.py) -----------------------------------

def plan_section(user: Any) -> dict[str, Any]:
    """What the section shows: the plan that applies and why, the admin-assigned plan, the
    plans to choose from (active ones, and the user's own even if inactive)."""
    from bestchat.services import plans as user_plans

    summary = user_plans.plan_summary(user.id)
    subscription = user_plans.subscription_of(user.id)
    assigned = subscription.plan_id if subscription is not None and subscription.source == billing.SOURCE_ADMIN \
        and subscription.status in user_plans.GRANTING else None
    choices = [plan for plan, _ in billing.list_plans() if plan.active or plan.id == assigned]
    return {"plan": summary, "source": summary["source"] if summary else None,
            "status": summary["status"] if summary else None, "subscription": subscription,
            "assigned": assigned, "choices": choices}


def chosen_plan(plan_id: str) -> Plan | None:
    """The plan picked in the section's form ('': none, the assignment taken away); 404 for an
    unknown id."""
    return _plan(plan_id) if plan_id else None
