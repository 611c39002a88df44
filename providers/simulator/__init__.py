"""A local HTTP server speaking the five vendors' real wire protocols (OpenAI, Groq, OpenRouter,
Anthropic, Gemini): the upstream for tests, demos and benchmarks."""
from providers.simulator.app import create_app
from providers.simulator.cli import main, serve
from providers.simulator.engine import Simulator, SimulatorConfig
from providers.simulator.faults import FaultRule

__all__ = ["FaultRule", "Simulator", "SimulatorConfig", "create_app", "main", "serve"]
