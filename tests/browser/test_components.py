"""Parts of the UI: the tool-call card with its approval prompt (driven directly), and the usage
page after a real chat. Attachments are in test_uploads_ui.py."""

from __future__ import annotations

import pytest

from tests.browser.helpers import expected_reply, send, wait_done

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


def test_usage_chart_and_table_from_a_real_chat(page, signed_in):
    page.goto("/")
    send(page, "count my tokens")
    wait_done(page)
    page.goto("/usage")
    chart = page.get_by_role("img", name="Tokens and cost per day")
    chart.wait_for()
    assert page.locator(".chart g.bar").count() == 30
    cells = page.get_by_role("row", name="demo/demo").get_by_role("cell").all_inner_texts()
    assert cells[0] == "1" and int(cells[2]) == len(expected_reply("count my tokens").split())
    assert "Total:" in page.locator(".usage-totals").inner_text()


def test_a_queued_answer_says_it_waits_for_a_slot(page, signed_in):
    page.evaluate("""async () => {
      const { messageView } = await import('/assets/js/chat/message-view.js');
      const store = { executionsFor: () => [], versions: () => ({ list: [], index: 0 }) };
      const actions = { onEdit() {}, onRegenerate() {}, onChoose() {}, onDecide() {} };
      for (const status of ['queued', 'pending']) {
        const view = messageView({ id: status, role: 'assistant', status, content: '', parts: [] }, store, actions);
        view.id = `answer-${status}`;
        document.body.append(view);
      }
    }""")
    queued, pending = page.locator("#answer-queued"), page.locator("#answer-pending")
    assert queued.get_attribute("aria-busy") == "true"
    assert queued.get_by_text("Queued: the server is busy").is_visible()
    assert queued.get_by_role("button").count() == 0  # no Regenerate while it waits
    assert pending.get_by_label("Assistant is thinking").is_visible()
    assert pending.get_by_text("Queued").count() == 0
