"""A local HTTP server speaking the five vendors' real wire protocols (OpenAI, Groq, OpenRouter,
Anthropic, Gemini): the upstream for tests, demos and benchmarks.

Paths are the vendors' own, relative to their base URLs: `/v1/chat/completions` (OpenAI),
`/openai/v1/...` (Groq), `/api/v1/...` (OpenRouter), `/v1/messages` (Anthropic),
`/v1beta/models/{model}:generateContent|:streamGenerateContent` (Gemini; `/v1/...` too).
Admin, loopback only: `GET /_sim/stats`, `GET /_sim/requests`, `POST /_sim/reset`,
`GET|POST|DELETE /_sim/faults` (body: a `FaultRule` or a list), `GET|POST /_sim/limits`.
"""
from providers.simulator.app import create_app
from providers.simulator.cli import main, serve
from providers.simulator.engine import Simulator, SimulatorConfig
from providers.simulator.faults import FaultRule

__all__ = ["FaultRule", "Simulator", "SimulatorConfig", "create_app", "main", "serve"]
