"""Attachments in the web UI against a live server with the upload API: files picked with the
paperclip, dropped on the chat and pasted into the box upload with a progress bar; Send waits
for them; the sent message shows them as chips (images as thumbnails) linking to their bytes; a
file over the server's limit shows the server's own refusal; a deleted upload says "deleted".

The server runs with a small UPLOAD_MAX_BYTES so that an "oversize" file is small too.
"""

from __future__ import annotations

import re
import struct
import zlib

import pytest

from tests.browser.helpers import answer_text, api, ask, expected_reply, require_route
from tests.browser.server import LiveServer

pytestmark = pytest.mark.browser

MAX_BYTES = 64 * 1024
USER_MESSAGE = "article.role-user"


@pytest.fixture(scope="module")
def server():
    with LiveServer(UPLOAD_MAX_BYTES=str(MAX_BYTES)) as live:
        yield live


@pytest.fixture(autouse=True)
def upload_api(server):
    require_route(server, "POST", "/api/v1/uploads", "the upload API, helper H1")


def png_bytes(width: int = 4, height: int = 3) -> bytes:
    """A real (tiny, red) PNG image."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    rows = b"".join(b"\x00" + b"\xff\x00\x00" * width for _ in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")


def chip(page, name: str):
    return page.locator(".attachments .attachment", has_text=name)


def wait_ready(page, name: str) -> None:
    chip(page, name).locator(".attachment-status", has_text="Ready").wait_for()


def attach(page, *paths) -> None:
    with page.expect_file_chooser() as chooser:
        page.get_by_role("button", name="Attach files").click()
    chooser.value.set_files([str(p) for p in paths])


def test_attach_a_text_file_and_an_image_then_send(page, signed_in, tmp_path):
    notes = tmp_path / "notes.txt"
    notes.write_text("The launch code is pineapple.\n")
    image = tmp_path / "pixel.png"
    image.write_bytes(png_bytes())
    attach(page, notes, image)
    wait_ready(page, "notes.txt")
    wait_ready(page, "pixel.png")
    # The image chip shows a local preview; every chip can be removed.
    preview = chip(page, "pixel.png").locator("img.attachment-thumb")
    page.wait_for_function("img => img.complete && img.naturalWidth === 4", arg=preview.element_handle())
    assert chip(page, "notes.txt").get_by_role("button", name="Remove notes.txt").is_visible()
    assert chip(page, "notes.txt").locator("progress").count() == 0

    said = "What is in these files?"
    ask(page, said)
    # The demo model says what reached it: the file's text and the image itself.
    assert answer_text(page) == expected_reply(said).replace(
        " Configure", " I received notes.txt (5 words of text), an image (image/png). Configure")
    assert page.locator(".attachments .attachment").count() == 0  # the composer is empty again

    sent = page.locator(USER_MESSAGE).last.locator(".message-attachments")
    link = sent.get_by_role("link", name="notes.txt")
    assert re.fullmatch(r"/api/v1/uploads/[0-9a-f-]{36}/content", link.get_attribute("href"))
    thumb = sent.locator("img.attachment-thumb")
    assert re.fullmatch(r"/api/v1/uploads/[0-9a-f-]{36}/content", thumb.get_attribute("src"))
    page.wait_for_function("img => img.complete && img.naturalWidth === 4", arg=thumb.element_handle())

    # The same after a reload, from the stored message.
    page.reload()
    page.locator(USER_MESSAGE).last.locator(".message-attachments").get_by_role("link", name="notes.txt").wait_for()
    assert page.locator(USER_MESSAGE).last.locator("img.attachment-thumb").count() == 1


def test_progress_bar_and_send_waits_for_the_upload(context, page, signed_in, tmp_path):
    big = tmp_path / "slow.txt"
    big.write_text("slow upload line\n" * 3000)  # ~51 KB, under the limit
    cdp = context.new_cdp_session(page)
    cdp.send("Network.enable")
    cdp.send("Network.emulateNetworkConditions",
             {"offline": False, "latency": 0, "downloadThroughput": -1, "uploadThroughput": 16 * 1024})
    page.get_by_label("Message", exact=True).fill("Here is a slow file")
    attach(page, big)
    progress = chip(page, "slow.txt").locator("progress")
    progress.wait_for()
    assert page.get_by_role("button", name="Send").is_disabled()
    page.wait_for_function("p => p.value > 0 && p.value < 100", arg=progress.element_handle(), timeout=10000)
    assert page.get_by_role("button", name="Send").is_disabled()
    cdp.send("Network.emulateNetworkConditions",
             {"offline": False, "latency": 0, "downloadThroughput": -1, "uploadThroughput": -1})
    wait_ready(page, "slow.txt")
    assert page.get_by_role("button", name="Send").is_enabled()


DROP = """([selector, name, text]) => {
  const target = document.querySelector(selector);
  const data = new DataTransfer();
  data.items.add(new File([text], name, { type: 'text/plain' }));
  const fire = (type) => target.dispatchEvent(new DragEvent(type, { dataTransfer: data, bubbles: true, cancelable: true }));
  fire('dragenter');
  fire('dragover');
  window.__zoneShown = !document.querySelector('.drop-zone').hidden;
  fire('drop');
  return window.__zoneShown;
}"""

PASTE = """async (selector) => {
  const canvas = document.createElement('canvas');
  canvas.width = 5; canvas.height = 5;
  canvas.getContext('2d').fillRect(0, 0, 5, 5);
  const blob = await new Promise((resolve) => canvas.toBlob(resolve, 'image/png'));
  const data = new DataTransfer();
  data.items.add(new File([blob], 'image.png', { type: 'image/png' }));
  const box = document.querySelector(selector);
  box.focus();
  box.dispatchEvent(new ClipboardEvent('paste', { clipboardData: data, bubbles: true, cancelable: true }));
}"""


def test_drop_and_paste_attach_files(page, signed_in):
    shown = page.evaluate(DROP, [".thread", "dropped.txt", "dropped text"])
    assert shown, "the drop zone was not shown while dragging files"
    assert page.locator(".drop-zone").is_hidden()
    wait_ready(page, "dropped.txt")

    page.evaluate(PASTE, "#composer-input")
    wait_ready(page, "image.png")
    assert chip(page, "image.png").locator("img.attachment-thumb").count() == 1
    assert page.get_by_label("Message", exact=True).input_value() == ""  # nothing pasted as text

    ask(page, "dropped and pasted")
    sent = page.locator(USER_MESSAGE).last.locator(".message-attachments")
    sent.get_by_role("link", name="dropped.txt").wait_for()
    assert sent.locator("img.attachment-thumb").count() == 1


UPLOAD = """async ([name, size]) => {
  const me = await (await fetch('/api/v1/me', { credentials: 'same-origin' })).json();
  const form = new FormData();
  form.append('file', new File(['x'.repeat(size)], name, { type: 'text/plain' }));
  const response = await fetch('/api/v1/uploads', { method: 'POST', body: form,
    credentials: 'same-origin', headers: { 'X-CSRF-Token': me.csrf_token, Accept: 'application/json' } });
  return { status: response.status, body: await response.json() };
}"""


def sentence(text: str) -> str:
    """How the UI words a server message (api.js friendlyError)."""
    text = text[0].upper() + text[1:]
    return text if text[-1] in ".!?" else text + "."


def test_oversize_file_shows_the_servers_error(page, signed_in, tmp_path):
    size = MAX_BYTES + 4096
    direct = page.evaluate(UPLOAD, ["direct.txt", size])
    assert direct["status"] == 413 and direct["body"]["error"]["code"] == "too_large"
    big = tmp_path / "big.txt"
    big.write_bytes(b"x" * size)
    attach(page, big)
    status = chip(page, "big.txt").locator(".attachment-status")
    status.filter(has_not_text="Uploading").wait_for()
    assert status.inner_text() == sentence(direct["body"]["error"]["message"])
    assert "failed" in chip(page, "big.txt").get_attribute("class")
    # A failed file does not hold Send back, and is not sent.
    page.get_by_label("Message", exact=True).fill("without the big file")
    assert page.get_by_role("button", name="Send").is_enabled()
    chip(page, "big.txt").get_by_role("button", name="Remove big.txt").click()
    assert page.locator(".attachments .attachment").count() == 0


def test_a_deleted_upload_says_deleted(page, signed_in, tmp_path):
    gone = tmp_path / "gone.txt"
    gone.write_text("soon deleted")
    attach(page, gone)
    wait_ready(page, "gone.txt")
    ask(page, "a file I will delete")
    link = page.locator(USER_MESSAGE).last.get_by_role("link", name="gone.txt")
    upload_id = link.get_attribute("href").split("/")[-2]
    status, _ = api(page, "DELETE", f"/uploads/{upload_id}")
    assert status == 204
    page.reload()
    deleted = page.locator(USER_MESSAGE).last.locator(".attachment.deleted", has_text="gone.txt")
    deleted.locator(".attachment-status", has_text="deleted").wait_for()
    assert deleted.get_by_role("link").count() == 0
