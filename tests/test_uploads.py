"""Uploads over the REST API, on SQLite and PostgreSQL, with the default local storage: limits,
sniffing, names, de-duplication, extraction, another user's ids, content headers, deletion
(of an upload and of an account) and what is left on disk each time."""

from __future__ import annotations

import io
import os
import uuid
from pathlib import Path

import pytest
from sqlalchemy import func, select

from bestchat.api.uploads import content_disposition
from bestchat.context.tokens import count_text
from bestchat.extensions import db
from bestchat.models import AuditLog, FileUpload
from bestchat.services.uploads import clean_name
from bestchat.testing.client import assert_error
from bestchat.uploads.sniff import DOCX
from tests import upload_files as files

API = "/api/v1"
PASSWORD = "correct horse battery"


def upload(client, data: bytes, name: str = "notes.txt", content_type: str = "application/octet-stream"):
    return client.request("POST", f"{API}/uploads", data={"file": (io.BytesIO(data), name, content_type)},
                          content_type="multipart/form-data")


def created(client, data: bytes, name: str = "notes.txt", **kw) -> dict:
    response = upload(client, data, name, **kw)
    assert response.status_code == 201, response.get_json()
    return response.get_json()


def stored_files(app) -> list[Path]:
    """Every file under the upload folder (the spool directory included)."""
    root = Path(app.config["UPLOAD_FOLDER"])
    return sorted(p for p in root.rglob("*") if p.is_file()) if root.exists() else []


def row(app, upload_id) -> FileUpload:
    with app.app_context():
        found = db.session.get(FileUpload, uuid.UUID(str(upload_id)))
        if found is not None:
            db.session.expunge(found)
        return found


def row_count(app) -> int:
    with app.app_context():
        return db.session.scalar(select(func.count()).select_from(FileUpload))


# ---- accepted files ----------------------------------------------------------------------

def test_a_text_upload_is_stored_under_a_server_made_key_with_its_text_and_tokens(app, client, user):
    body = created(client, "Hello, upload.\nSecond line.\n".encode(), "notes.txt", content_type="text/html")
    assert body["name"] == "notes.txt" and body["mime"] == "text/plain" and body["kind"] == "text"
    assert body["size"] == 28 and len(body["sha256"]) == 64 and body["conversation_id"] is None
    assert body["details"] == {"kind": "text"}
    assert "storage_key" not in body and "text" not in body
    stored = row(app, body["id"])
    assert stored.text == "Hello, upload.\nSecond line.\n"
    assert body["text_tokens"] == stored.text_tokens == count_text(stored.text) > 0
    [path] = stored_files(app)
    assert path.name == stored.storage_key and "notes" not in str(path)
    assert path.read_bytes() == b"Hello, upload.\nSecond line.\n"


@pytest.mark.parametrize("name, mime", [
    ("README.md", "text/markdown"), ("main.py", "text/x-python"), ("page.html", "text/plain"),
    ("image.svg", "text/plain"), ("data.json", "application/json"), ("noextension", "text/plain"),
])
def test_text_types_come_from_the_extension_once_the_bytes_are_text(client, user, name, mime):
    assert created(client, f"content of {name}\n".encode(), name)["mime"] == mime


def test_a_pdf_claimed_as_png_is_stored_as_a_pdf_with_its_text(app, client, user):
    body = created(client, files.pdf_with_text("Hello PDF world"), "report.png", content_type="image/png")
    assert (body["mime"], body["kind"]) == ("application/pdf", "pdf")
    assert body["details"] == {"kind": "pdf", "pages": 1}
    assert "Hello PDF world" in row(app, body["id"]).text
    assert body["text_tokens"] > 0


def test_a_pdf_with_no_text_is_accepted_with_a_note(app, client, user):
    body = created(client, files.pdf_without_text(pages=2), "scan.pdf")
    assert body["details"] == {"kind": "pdf", "pages": 2, "note": "no_text"}
    assert row(app, body["id"]).text == "" and body["text_tokens"] == 0


def test_a_docx_gives_its_paragraphs_and_tables_in_order(app, client, user):
    data = files.docx(["First paragraph.", "Second paragraph."], table=[["name", "value"], ["alpha", "1"]])
    body = created(client, data, "doc.docx", content_type="text/plain")
    assert (body["mime"], body["kind"]) == (DOCX, "docx")
    text = row(app, body["id"]).text
    assert text.index("First paragraph.") < text.index("Second paragraph.") < text.index("alpha | 1")
    assert "name | value" in text


@pytest.mark.parametrize("data, mime", [(files.PNG, "image/png"), (files.JPEG, "image/jpeg"),
                                        (files.GIF, "image/gif"), (files.WEBP, "image/webp")])
def test_images_have_no_text(app, client, user, data, mime):
    body = created(client, data, "picture.bin", content_type="application/pdf")
    assert (body["mime"], body["kind"], body["text_tokens"]) == (mime, "image", None)
    assert body["details"] == {"kind": "image"}
    assert row(app, body["id"]).text is None


def test_long_text_is_cut_at_the_limit_and_says_so(app, client, user):
    app.config["UPLOAD_TEXT_MAX_CHARS"] = 10
    body = created(client, b"0123456789abcdef", "long.txt")
    assert body["details"] == {"kind": "text", "truncated": True}
    assert row(app, body["id"]).text == "0123456789"


# ---- refused files: nothing stored -----------------------------------------------------------

def assert_nothing_stored(app):
    assert row_count(app) == 0
    assert stored_files(app) == []


def test_an_upload_over_the_limit_is_413_and_leaves_nothing(app, client, user):
    app.config["UPLOAD_MAX_BYTES"] = 1000
    assert_error(upload(client, b"x" * 1001), 413, "too_large")  # read, then refused at byte 1001
    assert_nothing_stored(app)
    assert_error(upload(client, b"x" * 200_000), 413, "too_large")  # refused from Content-Length
    assert_nothing_stored(app)
    assert created(client, b"x" * 1000)["size"] == 1000  # exactly the limit is fine


def test_the_upload_route_alone_accepts_bodies_past_max_content_length(app, client, user):
    big = b"y" * (app.config["MAX_CONTENT_LENGTH"] + 1)
    assert created(client, big, "big.txt")["size"] == len(big)
    conversation = client.post(f"{API}/conversations", {"title": "x" * 10}).get_json()["id"]
    assert_error(client.request("PATCH", f"{API}/conversations/{conversation}", data=big,
                                content_type="application/json"), 413)


@pytest.mark.parametrize("data, name", [
    (files.EXE, "setup.exe"), (files.EXE, "notes.txt"), (files.plain_zip(), "archive.zip"),
    (files.plain_zip(), "doc.docx"), (os.urandom(4096) + b"\x00", "random.bin"),
    ("é".encode("latin-1") * 50, "latin1.txt"), ("text".encode("utf-16"), "utf16.txt"),
])
def test_files_of_other_types_are_415_whatever_their_name_or_claimed_type(app, client, user, data, name):
    assert_error(upload(client, data, name, content_type="text/plain"), 415, "unsupported_media_type")
    assert_nothing_stored(app)


def test_an_empty_file_is_400(app, client, user):
    assert_error(upload(client, b""), 400, "empty_file")
    assert_nothing_stored(app)


def test_a_body_without_a_file_part_is_400(app, client, user):
    response = client.request("POST", f"{API}/uploads", data={"other": "value"}, content_type="multipart/form-data")
    assert_error(response, 400, "missing_field")
    assert_error(client.post(f"{API}/uploads", {"file": "not multipart"}), 400, "missing_field")
    assert_nothing_stored(app)


@pytest.mark.parametrize("data", [b"%PDF-1.7\nthis is no PDF at all\n", files.pdf_with_text("cut")[:200]])
def test_a_damaged_pdf_is_422(app, client, user, data):
    assert_error(upload(client, data, "broken.pdf"), 422, "unreadable_file")
    assert_nothing_stored(app)


def test_a_damaged_docx_is_422(app, client, user):
    out = io.BytesIO()
    import zipfile

    with zipfile.ZipFile(out, "w") as archive:
        archive.writestr("[Content_Types].xml", "<Types/>")
        archive.writestr("word/document.xml", "<not xml")
    assert_error(upload(client, out.getvalue(), "broken.docx"), 422, "unreadable_file")
    assert_nothing_stored(app)


def test_a_docx_declaring_a_huge_part_is_refused_before_anything_unpacks(app, client, user):
    bomb = files.docx_declaring(2 * 1024 ** 3 - 1)  # under 1 KiB, "unpacks" to 2 GiB
    assert len(bomb) < 1024
    assert_error(upload(client, bomb, "bomb.docx"), 422, "unreadable_file")
    assert_nothing_stored(app)


def test_a_docx_that_really_unpacks_a_thousandfold_is_refused(app, client, user):
    bomb = files.docx_bomb(20 * 1024 * 1024)
    assert len(bomb) < 100_000
    assert_error(upload(client, bomb, "bomb.docx"), 422, "unreadable_file")
    assert_nothing_stored(app)


# ---- names -----------------------------------------------------------------------------------

@pytest.mark.parametrize("sent, kept", [("../../etc/passwd", "passwd"), ("a\x00b.txt", "ab.txt"),
                                        ("/var/../../x/y.md", "y.md")])
def test_names_keep_only_a_cleaned_display_name(app, client, user, sent, kept):
    body = created(client, f"name test {sent!r}".encode(), sent)
    assert body["name"] == kept
    [path] = stored_files(app)
    assert path.name == row(app, body["id"]).storage_key and path.parent.parent == Path(app.config["UPLOAD_FOLDER"])
    assert not Path(app.instance_path, "etc", "passwd").exists()


@pytest.mark.parametrize("raw, kept", [
    ("../../etc/passwd", "passwd"), ("a\x00b.txt", "ab.txt"), ("C:\\Users\\me\\cv.pdf", "cv.pdf"),
    ("", "file"), (None, "file"), ("../", "file"), ("..", "file"), ("\x01\x02", "file"),
    ("evil\u202egnp.exe", "evilgnp.exe"), ("  spaced name.md  ", "spaced name.md"),
    ("x" * 300 + ".txt", "x" * 251 + ".txt"), ("é" * 300, "é" * 255), ("line\nbreak.txt", "linebreak.txt"),
])
def test_clean_name(raw, kept):
    assert clean_name(raw) == kept


# ---- de-duplication --------------------------------------------------------------------------

def test_the_same_bytes_again_are_the_same_upload_with_200(app, client, user):
    first = created(client, b"same bytes", "one.txt")
    again = upload(client, b"same bytes", "two.md")
    assert again.status_code == 200
    assert again.get_json() == first
    assert row_count(app) == 1 and len(stored_files(app)) == 1
    # another user's identical bytes are their own upload
    other = client.new()
    other.signup("bob@example.com", PASSWORD)
    assert created(other, b"same bytes", "bob.txt")["id"] != first["id"]
    assert row_count(app) == 2 and len(stored_files(app)) == 2


# ---- reading, listing ------------------------------------------------------------------------

def test_list_is_newest_first_and_pages(client, user):
    ids = [created(client, f"file {i}".encode(), f"f{i}.txt")["id"] for i in range(3)]
    page = client.get(f"{API}/uploads?limit=2").get_json()
    assert [u["id"] for u in page["uploads"]] == ids[::-1][:2] and page["has_more"] is True
    rest = client.get(f"{API}/uploads?limit=2&offset=2").get_json()
    assert [u["id"] for u in rest["uploads"]] == ids[:1] and rest["has_more"] is False
    assert client.get(f"{API}/uploads/{ids[0]}").get_json()["name"] == "f0.txt"
    assert_error(client.get(f"{API}/uploads?limit=0"), 400, "invalid_parameter")


def test_content_of_a_document_is_a_sandboxed_attachment(client, user):
    data = files.pdf_with_text("attach me")
    body = created(client, data, "résumé final.pdf")
    response = client.get(f"{API}/uploads/{body['id']}/content")
    assert response.status_code == 200 and response.data == data
    assert response.headers["Content-Type"] == "application/pdf"
    assert response.headers["Content-Length"] == str(len(data))
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Content-Security-Policy"] == "sandbox"
    assert response.headers["Content-Disposition"] == (
        "attachment; filename=\"r_sum_ final.pdf\"; filename*=UTF-8''r%C3%A9sum%C3%A9%20final.pdf")
    assert content_disposition("inline", 'a "quoted"\\name') == (
        "inline; filename=\"a _quoted__name\"; filename*=UTF-8''a%20%22quoted%22%5Cname")


def test_content_of_an_image_is_inline_and_text_says_its_charset(client, user):
    image = created(client, files.PNG, "dot.png")
    response = client.get(f"{API}/uploads/{image['id']}/content")
    assert response.data == files.PNG and response.headers["Content-Type"] == "image/png"
    assert response.headers["Content-Disposition"] == "inline; filename=\"dot.png\"; filename*=UTF-8''dot.png"
    assert response.headers["Content-Security-Policy"] == "sandbox"
    text = created(client, b"<script>alert(1)</script>", "page.html")
    response = client.get(f"{API}/uploads/{text['id']}/content")
    assert response.headers["Content-Type"] == "text/plain; charset=utf-8"
    assert response.headers["Content-Disposition"].startswith("attachment;")


# ---- another user ----------------------------------------------------------------------------

def test_another_users_upload_is_not_found_anywhere(app, client, user):
    mine = created(client, b"alice's secret", "secret.txt")
    mallory = client.new()
    mallory.signup("mallory@example.com", PASSWORD)
    for path in (f"{API}/uploads/{mine['id']}", f"{API}/uploads/{mine['id']}/content"):
        assert_error(mallory.get(path), 404, "not_found")
        assert_error(mallory.get(path.replace(mine["id"], str(uuid.uuid4()))), 404, "not_found")
    assert_error(mallory.get(f"{API}/uploads/not-an-id"), 404, "not_found")
    assert_error(mallory.delete(f"{API}/uploads/{mine['id']}"), 404, "not_found")
    assert mallory.get(f"{API}/uploads").get_json() == {"uploads": [], "has_more": False}
    conversation = mallory.post(f"{API}/conversations", {"title": "steal"}).get_json()["id"]
    sent = mallory.post(f"{API}/conversations/{conversation}/messages",
                        {"content": "read this", "attachments": [mine["id"]]})
    assert_error(sent, 404, "not_found")
    assert mallory.get(f"{API}/conversations/{conversation}/messages").get_json()["messages"] == []
    # still there for its owner
    assert client.get(f"{API}/uploads/{mine['id']}/content").data == b"alice's secret"
    assert row(app, mine["id"]) is not None


def test_anonymous_callers_are_401(app, client):
    assert_error(upload(client, b"hello"), 401)
    assert_error(client.get(f"{API}/uploads"), 401)
    assert_nothing_stored(app)


# ---- deletion --------------------------------------------------------------------------------

def test_deleting_an_upload_removes_its_bytes_and_is_audited(app, client, user):
    keep = created(client, b"keep me", "keep.txt")
    gone = created(client, b"delete me", "gone.txt")
    key = row(app, gone["id"]).storage_key
    assert client.delete(f"{API}/uploads/{gone['id']}").status_code == 204
    assert row(app, gone["id"]) is None
    assert [p.name for p in stored_files(app)] == [row(app, keep["id"]).storage_key]
    assert key not in {p.name for p in stored_files(app)}
    assert_error(client.get(f"{API}/uploads/{gone['id']}"), 404, "not_found")
    assert_error(client.delete(f"{API}/uploads/{gone['id']}"), 404, "not_found")
    with app.app_context():
        entry = db.session.scalar(select(AuditLog).where(AuditLog.action == "upload.deleted"))
        assert entry.target_id == gone["id"] and entry.details["name"] == "gone.txt"
    # the same bytes can be uploaded again afterwards: a new upload
    assert created(client, b"delete me", "again.txt")["id"] != gone["id"]


def test_deleting_the_account_removes_every_uploads_bytes(app, client, user):
    created(client, b"one", "one.txt")
    created(client, files.PNG, "two.png")
    other = client.new()
    other.signup("bob@example.com", PASSWORD)
    bobs = created(other, b"bob's file", "bob.txt")
    assert len(stored_files(app)) == 3
    assert client.delete(f"{API}/me", {"password": PASSWORD}).status_code == 204
    assert row_count(app) == 1
    assert [p.name for p in stored_files(app)] == [row(app, bobs["id"]).storage_key]


def test_openapi_lists_the_upload_routes(client):
    paths = client.get(f"{API}/openapi.json").get_json()["paths"]
    assert set(paths["/api/v1/uploads"]) == {"get", "post"}
    assert "multipart/form-data" in paths["/api/v1/uploads"]["post"]["requestBody"]["content"]
    assert set(paths["/api/v1/uploads/{upload_id}"]) == {"get", "delete"}
    assert "get" in paths["/api/v1/uploads/{upload_id}/content"]
