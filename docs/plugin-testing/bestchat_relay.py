"""bestchat-relay, the example plugin of the testing guide: model "relay/<name>" asks the
OpenAI-compatible server at the config's base URL for a whole answer (no streaming)."""

import httpx

from bestchat.plugin_api import (
    Finish, OutboundRefused, Provider, ProviderAddressRefused, ProviderUnavailable, TextDelta, Usage,
    error_for_status, hookimpl, redact_key,
)


class RelayProvider(Provider):
    name = "relay"
    needs_key = False
    needs_base_url = True

    def stream(self, model, messages, *, options=None, tools=None):
        key = self.settings.api_key
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        try:
            # Every connection goes through the server's outbound policy (self.outbound).
            with httpx.Client(transport=self.outbound.httpx_transport(), timeout=30) as http:
                response = http.post(self.settings.base_url.rstrip("/") + "/chat/completions",
                                     json={"model": model, "messages": messages}, headers=headers)
        except OutboundRefused as refused:
            raise ProviderAddressRefused(f"relay: {refused.reason}") from None
        except httpx.HTTPError as error:
            raise ProviderUnavailable(f"relay: connection failed ({type(error).__name__})") from None
        if response.status_code != 200:
            raise error_for_status("relay", response.status_code, redact_key(response.text, key), response.headers)
        answer = response.json()
        yield TextDelta(answer["choices"][0]["message"]["content"])
        yield Usage(answer["usage"]["prompt_tokens"], answer["usage"]["completion_tokens"])
        yield Finish(answer["choices"][0]["finish_reason"])


@hookimpl
def register_providers(register):
    register(RelayProvider)
