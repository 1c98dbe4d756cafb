"""The console's Conversations page: a read-only browse of every user's conversations for
support, and one conversation's messages. Opening a conversation is audit-logged
(:func:`bestchat.services.conversation_browse.open_for_support`); listing is not. There is no
way to edit, delete or send from here."""

from __future__ import annotations

from flask import abort, request
from flask_admin import expose
from flask_login import current_user

from bestchat.admin.base import SecureView
from bestchat.errors import Invalid, NotFound
from bestchat.services import conversation_browse, usage_report

FILTERS = ("owner", "title", "model", "from", "to", "status")


class ConversationsView(SecureView):
    """``/admin/conversations/?owner=&title=&model=&from=&to=&status=&page=`` and
    ``/admin/conversations/<id>``."""

    @expose("/")
    def index(self) -> str | tuple[str, int]:
        args = {name: request.args.get(name, "").strip() for name in FILTERS}
        try:
            span = (usage_report.date_range(args["from"], args["to"])
                    if args["from"] or args["to"] else None)
            filters = conversation_browse.Filters(owner=args["owner"], title=args["title"],
                                                  model=args["model"], span=span, status=args["status"])
        except Invalid as error:
            return self.render("bestchat_admin/conversations.html", args=args, error=error.message,
                               page=None, statuses=conversation_browse.STATUSES), 400
        number = request.args.get("page", "1")
        page = conversation_browse.search(filters, int(number) if number.isdigit() else 1)
        # The filters in force, carried over by the pagination links.
        query = {name: value for name, value in args.items() if value}
        return self.render("bestchat_admin/conversations.html", args=args, error=None, page=page,
                           query=query, statuses=conversation_browse.STATUSES)

    @expose("/<conversation_id>")
    def show(self, conversation_id: str) -> str:
        try:
            conversation, owner, messages = conversation_browse.open_for_support(current_user.id, conversation_id)
        except NotFound:
            abort(404)
        return self.render("bestchat_admin/conversation.html", conversation=conversation, owner=owner,
                           messages=messages)
