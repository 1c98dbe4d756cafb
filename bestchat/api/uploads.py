"""Uploads (``/api/v1/uploads``): upload a file, list, read, download and delete them.

Thin: the multipart body is parsed here, in chunks, straight into a spool
(:class:`bestchat.uploads.spool.Spool`: hashed and counted as it arrives, never held whole in
memory); everything else is :class:`bestchat.services.uploads.UploadManager`. This route alone
accepts a body past ``MAX_CONTENT_LENGTH``: up to ``UPLOAD_MAX_BYTES`` plus the multipart
framing.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator
from urllib.parse import quote

from flask import current_app, g, request
from werkzeug.exceptions import RequestEntityTooLarge
from werkzeug.formparser import FormDataParser
from werkzeug.wsgi import wrap_file

from bestchat.api import bp
from bestchat.api.openapi import array, documented, obj, query, ref, string
from bestchat.errors import Invalid
from bestchat.security.authn import login_required
from bestchat.serializers import upload_json
from bestchat.services.uploads import UploadManager, new_spool
from bestchat.uploads.spool import Spool, too_large
from bestchat.uploads.storage import CHUNK
from bestchat.validation import MAX_INT, int_arg, parse_uuid

# Room for the multipart framing (boundaries, part headers, a few small fields) on top of
# the file itself.
MULTIPART_ALLOWANCE = 64 * 1024

UPLOAD_BODY = {"content": {"multipart/form-data": obj({"file": string(format="binary")}, ("file",))}}
# The bytes of any accepted type (Content-Type is the sniffed one).
CONTENT = {"content": {"*/*": string(format="binary")}}


@contextmanager
def _received_file() -> Iterator[tuple[str | None, Spool]]:
    """The ``file`` part of this request's multipart body: (its name as the client sent it,
    the spool holding it). Every spool made is closed on the way out."""
    limit = int(current_app.config["UPLOAD_MAX_BYTES"])
    request.max_content_length = limit + MULTIPART_ALLOWANCE
    if request.content_length is not None and request.content_length > request.max_content_length:
        raise too_large(limit)  # refused before a byte of the body is read
    if request.mimetype != "multipart/form-data":
        raise Invalid("missing_field", "send the file as the 'file' part of a multipart/form-data body",
                      param="file")
    spools: list[Spool] = []

    def spool_factory(total_content_length=None, content_type=None, filename=None, content_length=None):
        spool = new_spool()
        spools.append(spool)
        return spool

    parser = FormDataParser(stream_factory=spool_factory, max_form_memory_size=request.max_form_memory_size,
                            max_form_parts=request.max_form_parts)
    try:
        try:
            _, _, files = parser.parse(request.stream, request.mimetype, request.content_length,
                                       request.mimetype_params)
        except RequestEntityTooLarge:
            raise too_large(limit) from None
        part = files.get("file")
        if part is None:
            raise Invalid("missing_field", "the multipart body has no 'file' part", param="file")
        yield part.filename, part.stream
    finally:
        for spool in spools:
            spool.close()


@bp.post("/uploads")
@documented(body=UPLOAD_BODY, responses={201: ref("Upload"), 200: ref("Upload")})
@login_required
def create_upload():
    """Upload a file: multipart/form-data, the file in the part named ``file``. 201 Upload.

    The type is sniffed from the bytes (the part's Content-Type is ignored): text, Markdown,
    source code, PDF, DOCX, PNG, JPEG, GIF, WEBP; anything else is 415
    ``unsupported_media_type``. Over ``UPLOAD_MAX_BYTES`` 413 ``too_large``; empty 400
    ``empty_file``; no ``file`` part 400 ``missing_field``; a damaged PDF or DOCX (or a zip
    bomb) 422 ``unreadable_file``. Nothing is stored when refused. The same bytes uploaded
    again by this user: 200 with the existing upload.
    """
    with _received_file() as (name, spool):
        upload, created = UploadManager(g.user).create(name, spool)
    return upload_json(upload), 201 if created else 200, {"Location": f"/api/v1/uploads/{upload.id}"}


@bp.get("/uploads")
@documented(parameters=[query("limit", {"type": "integer", "minimum": 1, "maximum": 200}),
                        query("offset", {"type": "integer", "minimum": 0, "maximum": MAX_INT})],
            responses={200: obj({"uploads": array(ref("Upload")), "has_more": {"type": "boolean"}},
                                ("uploads", "has_more"))})
@login_required
def list_uploads():
    """The user's uploads, newest first. ``?limit=`` (max 200) and ``?offset=`` page.
    Returns {uploads, has_more}."""
    rows, has_more = UploadManager(g.user).list(limit=int_arg("limit", 50, minimum=1, maximum=200),
                                                offset=int_arg("offset", 0))
    return {"uploads": [upload_json(u) for u in rows], "has_more": has_more}


@bp.get("/uploads/<upload_id>")
@documented(responses={200: ref("Upload")})
@login_required
def get_upload(upload_id: str):
    """One upload (404 for an unknown id or another user's)."""
    return upload_json(UploadManager(g.user).get(parse_uuid(upload_id, "upload")))


@bp.get("/uploads/<upload_id>/content")
@documented(responses={200: CONTENT})
@login_required
def upload_content(upload_id: str):
    """The uploaded bytes, as the sniffed type. Images are ``inline``, everything else an
    ``attachment``; the response is sandboxed (``Content-Security-Policy: sandbox``) and never
    sniffed by the browser (``X-Content-Type-Options: nosniff``)."""
    upload, stream = UploadManager(g.user).open(parse_uuid(upload_id, "upload"))
    response = current_app.response_class(wrap_file(request.environ, stream, CHUNK), mimetype=upload.mime,
                                          direct_passthrough=True)
    response.content_length = upload.size
    disposition = "inline" if upload.mime.startswith("image/") else "attachment"
    response.headers["Content-Disposition"] = content_disposition(disposition, upload.name)
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Content-Security-Policy"] = "sandbox"
    response.headers["Cache-Control"] = "private, no-cache"
    response.headers["ETag"] = f'"{upload.sha256}"'
    return response


def content_disposition(disposition: str, name: str) -> str:
    """RFC 6266: an ASCII ``filename`` fallback and the exact name as UTF-8 ``filename*``."""
    fallback = "".join(c if c.isascii() and c.isprintable() and c not in '"\\' else "_" for c in name)
    return f"{disposition}; filename=\"{fallback}\"; filename*=UTF-8''{quote(name, safe='')}"


@bp.delete("/uploads/<upload_id>")
@documented(responses={204: None})
@login_required
def delete_upload(upload_id: str):
    """Delete an upload and its stored bytes. 204. Messages that attached it keep their part
    (the model is told the file was deleted)."""
    UploadManager(g.user).delete(parse_uuid(upload_id, "upload"))
    return "", 204
