"""One adapter per protocol over the speech core: ours (HTTP, WebSocket) and OpenAI's."""
