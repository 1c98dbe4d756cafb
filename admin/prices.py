"""The console's Prices page (``/admin/prices/``): every model seen in usage, those with usage
of unknown cost first, with the price in effect and where it comes from (the admin, the provider
plugin, litellm's model map, or unknown); a form to set, change or remove the admin's price of a
model; and, once a model has one, an offer to price its usage stored with an unknown cost.

Thin: the rules and the audit log are :mod:`bestchat.services.model_prices`'s. A refused price
is shown on the form again with its reason, nothing changed; an unknown id is 404.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from flask import abort, flash, redirect, request, url_for
from flask_admin import expose
from flask_login import current_user

from bestchat.admin.base import SecureView
from bestchat.errors import DomainError, NotFound
from bestchat.models import ModelPrice
from bestchat.services import model_prices

FIELDS = ("provider", "model", "input_per_million", "output_per_million", "cached_input_per_million")


class PricesView(SecureView):
    """Model prices, and usage of unknown cost."""

    @expose("/")
    def index(self) -> Any:
        values = {name: request.args.get(name, "") for name in ("provider", "model")}
        chosen = next((line for line in model_prices.overview()
                       if (line.provider, line.model) == (values["provider"], values["model"])), None)
        if chosen is not None and chosen.admin_price is not None:
            values.update(_values_of(chosen.admin_price))
        return self._page(values)

    @expose("/set", methods=("POST",))
    def save(self) -> Any:
        values = {name: request.form.get(name, "") for name in FIELDS}
        try:
            row = model_prices.set_price(current_user._get_current_object(), **values)
        except DomainError as error:
            return self._page(values, error.message, status=400)
        flash(f"Price of {row.provider}/{row.model} saved.", "success")
        return redirect(url_for(".index", provider=row.provider, model=row.model))

    @expose("/<price_id>/delete", methods=("POST",))
    def delete(self, price_id: str) -> Any:
        row = _price(price_id)
        name = f"{row.provider}/{row.model}"
        model_prices.delete_price(current_user._get_current_object(), row)
        flash(f"Price of {name} removed: the provider's or litellm's model map's applies again.", "success")
        return redirect(url_for(".index"))

    @expose("/<price_id>/reprice", methods=("POST",))
    def reprice(self, price_id: str) -> Any:
        row = _price(price_id)
        count = model_prices.reprice_unknown(current_user._get_current_object(), row)
        flash(f"{count:,} requests of {row.provider}/{row.model} priced at the new price.", "success")
        return redirect(url_for(".index", provider=row.provider, model=row.model))

    def _page(self, values: dict[str, Any], error: str | None = None, status: int = 200) -> Any:
        lines = model_prices.overview()
        chosen = next((line for line in lines if (line.provider, line.model) == (values.get("provider"),
                                                                                  values.get("model"))), None)
        page = self.render("bestchat_admin/prices.html", lines=lines, values=values, error=error,
                           chosen=chosen, unknown=[line for line in lines if line.unpriced_requests],
                           price_text=_text)
        return page, status


def _price(price_id: str) -> ModelPrice:
    try:
        return model_prices.get_price(price_id)
    except NotFound:
        abort(404)


def _text(value: Any, cents: bool = False) -> str:
    """A price without trailing zeros (``0.15``, ``10``), or with ``cents`` at least two
    decimals (``2.50``, ``0.075``)."""
    if value is None:
        return ""
    value = value.normalize()
    if cents and value.as_tuple().exponent > -2:
        value = value.quantize(Decimal("0.01"))
    return format(value, "f")


def _values_of(row: ModelPrice) -> dict[str, str]:
    return {"provider": row.provider, "model": row.model, "input_per_million": _text(row.input_per_million),
            "output_per_million": _text(row.output_per_million),
            "cached_input_per_million": _text(row.cached_input_per_million)}
