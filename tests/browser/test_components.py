"""Parts of the UI whose server side may not exist yet, driven directly: the tool-call card
with its approval prompt, file attachments (graceful without an uploads endpoint), and the
usage chart fed a stubbed GET /api/v1/usage."""

from __future__ import annotations

import json
from datetime import date, timedelta

import pytest

pytestmark = pytest.mark.browser


def test_tool_card_approval_prompt(page, signed_in):
    decisions = page.evaluate("""async () => {
      const { toolCard } = await import('/assets/js/chat/toolcard.js');
      const decisions = [];
      window.__decisions = decisions;
      const card = toolCard({ id: 'e1', message_id: 'm1', tool: 'web_search', risk: 'medium',
        status: 'pending_approval', arguments: { query: 'weather <b>now</b>' } },
        (execution, decision, remember) => decisions.push([execution.id, decision, remember]));
      card.id = 'card';
      document.body.append(card);
      return decisions.length;
    }""")
    assert decisions == 0
    card = page.locator("#card")
    assert card.get_by_text("Tool: web_search").is_visible()
    assert "weather <b>now</b>" in card.locator("pre").inner_text()
    assert card.get_by_text("Waiting for your approval").is_visible()
    card.get_by_role("button", name="Always allow").click()
    assert page.evaluate("() => window.__decisions") == [["e1", "approve", True]]
    assert card.get_by_role("button", name="Approve").is_disabled()

    page.evaluate("""async () => {
      const { toolCard } = await import('/assets/js/chat/toolcard.js');
      const card = toolCard({ id: 'e2', message_id: 'm1', tool: 'calculator', status: 'succeeded',
        arguments: { expression: '2+2' }, result: { value: 4 } }, () => {});
      card.id = 'done-card';
      document.body.append(card);
    }""")
    done = page.locator("#done-card")
    assert done.get_by_text("Done").is_visible()
    assert '"value": 4' in done.locator("details").nth(1).inner_text()
    assert done.get_by_role("button").count() == 0


def test_attach_file_shows_progress_or_notice(page, signed_in, tmp_path):
    upload = tmp_path / "notes.txt"
    upload.write_text("hello")
    with page.expect_file_chooser() as chooser:
        page.get_by_role("button", name="Attach files").click()
    chooser.value.set_files(str(upload))
    chip = page.locator(".attachments .attachment", has_text="notes.txt")
    chip.wait_for()
    chip.locator(".attachment-status").filter(has_not_text="Uploading").wait_for()
    status = chip.locator(".attachment-status").inner_text()
    assert status in ("Ready", "Uploads are not available on this server yet.")
    chip.get_by_role("button", name="Remove notes.txt").click()
    assert page.locator(".attachments .attachment").count() == 0


def test_usage_chart_and_table(page, signed_in):
    today = date.today()
    days = [{"date": (today - timedelta(days=i)).isoformat(), "prompt_tokens": 100 * i,
             "completion_tokens": 50 * i, "cost": 0.01 * i} for i in range(5)]
    models = [{"provider": "openai", "model": "gpt-4o-mini", "prompt_tokens": 1000,
               "completion_tokens": 500, "cost": 0.1, "requests": 7}]
    page.route("**/api/v1/usage?*", lambda route: route.fulfill(
        status=200, content_type="application/json", body=json.dumps({"days": days, "models": models})))
    page.goto("/usage")
    chart = page.get_by_role("img", name="Tokens and cost per day")
    chart.wait_for()
    assert page.locator(".chart g.bar").count() == 30
    row = page.get_by_role("row", name="openai/gpt-4o-mini")
    assert row.get_by_role("cell").all_inner_texts() == ["7", "1,000", "500", "$0.10"]
    assert "Total: 1,500 tokens" in page.locator(".usage-totals").inner_text()
