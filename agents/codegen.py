"""Code generation: the code/quality chain at temperature 0.2 with the requested language's
system prompt (agents.prompts.code_generation_messages)."""
from __future__ import annotations

from dataclasses import dataclass

from agents.prompts import code_generation_messages, normalize_language
from agents.steps import PipelineError, RunContext, StepCall, code_blocks, run_step
from runtime.core.gateway import Gateway

ENDPOINT = "/api/ai/generate-code"
GENERATE = StepCall("generate", "codegen", "code", "quality", 4096, 0.2)


@dataclass(frozen=True, slots=True)
class GeneratedCode:
    run_id: str
    language: str
    code: str  # the first fenced block of the answer, or the whole answer when it has none
    text: str  # the whole answer (code and explanation)
    platform: str
    model: str
    cost_usd: float
    latency_ms: float
    fallback_used: bool
    attempts: int
    finish_reason: str | None


def generation_context(context: str | None, current_code: str | None) -> str | None:
    """What the model gets besides the task: the caller's context, then the current code."""
    parts = []
    if context and context.strip():
        parts.append(context.strip())
    if current_code and current_code.strip():
        parts.append("Current code:\n" + current_code.rstrip())
    return "\n\n".join(parts) or None


async def generate_code(
    gateway: Gateway,
    task: str,
    language: str,
    context: str | None,
    current_code: str | None,
    run: RunContext,
) -> GeneratedCode:
    """Raise `PipelineError` (503) when no platform of the chain answered."""
    messages = code_generation_messages(language, task, generation_context(context, current_code))
    step = await run_step(gateway, GENERATE, messages, run)
    if not step.ok:
        raise PipelineError(503, "upstream_unavailable", f"code generation failed: {step.error}",
                            extra={"run_id": run.run_id, "step": step.summary()})
    text = step.text or ""
    blocks = code_blocks(text)
    return GeneratedCode(
        run_id=run.run_id, language=normalize_language(language), code=blocks[0] if blocks else text,
        text=text, platform=step.platform, model=step.model, cost_usd=step.cost_usd,
        latency_ms=round(step.latency_ms, 3), fallback_used=step.fallback_used,
        attempts=step.attempts, finish_reason=step.finish_reason,
    )
