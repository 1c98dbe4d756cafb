"""bestchat-shout: model "shout/loud" answers with your last message in capitals,
and the "shout" tool lets other models do the same."""

from bestchat.plugin_api import Finish, Provider, TextDelta, Usage, hookimpl


class ShoutProvider(Provider):
    name = "shout"
    label = "Shout (offline)"
    needs_key = False
    default_models = ("loud",)

    def stream(self, model, messages, *, options=None, tools=None):
        last = next((m["content"] for m in reversed(messages) if m["role"] == "user"), "")
        words = shout(last).split()
        for index, word in enumerate(words):
            yield TextDelta(word if index == 0 else " " + word)
        yield Usage(prompt_tokens=len(last.split()), completion_tokens=len(words))
        yield Finish("stop")


def shout(text: str) -> str:
    """Return the text in capitals, with an exclamation mark."""
    return text.upper().rstrip(".!") + "!"


@hookimpl
def register_providers(register):
    register(ShoutProvider)


@hookimpl
def register_tools(register):
    register(shout)
