"""What a request needs from a model beyond text, and which of it a model lacks (pure).

Each need is named by the request parameter that asks for it, so a refusal can say which
parameter no candidate can honour."""
from __future__ import annotations

from providers.catalog import ModelSpec
from providers.types import ChatRequest

#: capability -> the request parameter that needs it (for error messages)
PARAMETERS = {
    "tools": "tools",
    "parallel_tools": "parallel_tool_calls",
    "vision": "messages[].content[].image_url",
    "image_urls": "messages[].content[].image_url.url",
    "json_schema": "response_format",
    "reasoning": "reasoning_effort",
    "seed": "seed",
    "logprobs": "logprobs",
}


def required_capabilities(request: ChatRequest) -> tuple[str, ...]:
    """The capabilities `request` needs, in a fixed order."""
    needs: list[str] = []
    if request.tools or any(m.tool_calls or m.role == "tool" for m in request.messages):
        needs.append("tools")
    if request.tools and request.parallel_tool_calls is not None:
        needs.append("parallel_tools")
    images = request.images
    if images:
        needs.append("vision")
    if any(not i.is_inline for i in images):
        needs.append("image_urls")
    if request.response_format == "json_schema":
        needs.append("json_schema")
    if request.wants_reasoning:
        needs.append("reasoning")
    if request.seed is not None:
        needs.append("seed")
    if request.logprobs:
        needs.append("logprobs")
    return tuple(needs)


def missing_capabilities(model: ModelSpec, needs: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(n for n in needs if n not in model.capabilities)
