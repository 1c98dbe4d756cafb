"""Testing support shipped with BestChat: pytest fixtures (a ``pytest11`` plugin), a JSON test
client, and a fake OpenAI-compatible server for tests and benchmarks."""
