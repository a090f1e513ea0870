"""Any OpenAI-compatible chat-completions endpoint (client over httpx) and a local sandbox of it."""

from integrations.llm.client import ChatCompletionsClient, Completion, LlmError

__all__ = ["ChatCompletionsClient", "Completion", "LlmError"]
