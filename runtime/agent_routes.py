"""HTTP routes of the agent pipelines. Each route validates its body, then asks the Coordinator
actor (`services.coordinator`) with plain data — the caller's user and key id — and turns its
reply into the response (or a `{"error": ...}` body with the reply's status).

Assembly, not edge: this is where the HTTP edge (runtime/http) meets agents/, so it sits at the
top of runtime/ with the deployment that mounts it; agents/ itself never imports the edge."""
from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Body, Depends, Path
from pydantic import BaseModel, ConfigDict, Field

from agents.visual_delta import VisualChange
from runtime.http.auth import Principal
from runtime.http.errors import ApiError
from runtime.http.services import Services

MAX_CODE_CHARS = 200_000
MAX_TEXT_CHARS = 20_000
CHANGE_ID = r"^chg_[0-9a-f]{16}$"


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ReviewBody(_Body):
    code: str = Field(min_length=1, max_length=MAX_CODE_CHARS,
                      examples=["def load(path):\n    return eval(open(path).read())\n"])
    language: str | None = Field(default=None, max_length=40, examples=["python"])


class StepOut(BaseModel):
    step: str
    agent_id: str
    ok: bool
    platform: str
    model: str
    cost_usd: float
    latency_ms: float
    fallback_used: bool = False
    attempts: int = 0
    finish_reason: str | None = None
    error: str | None = None


class ReviewOut(BaseModel):
    run_id: str
    report: str
    steps: list[StepOut]
    missing_steps: list[str] = Field(description="analysis steps that failed (the report says so)")
    total_cost_usd: float
    steps_latency_ms: float = Field(description="sum of the steps: they run one after another")
    blackboard_entries: int


class VisualEditBody(VisualChange):
    model_config = ConfigDict(json_schema_extra={"examples": [{
        "type": "move", "component_id": "LoginButton", "page": "login",
        "before": {"x": 100, "y": 40}, "after": {"x": 150, "y": 40},
    }]})


class VisualEditOut(BaseModel):
    id: str
    status: str
    summary: str
    summary_source: Literal["ai", "template"]
    delta: dict[str, dict[str, Any]]
    affected_agents: list[str]
    summary_step: dict[str, Any]


class ConfirmBody(_Body):
    note: str | None = Field(default=None, max_length=MAX_TEXT_CHARS, description="what the user meant")
    source: str | None = Field(default=None, max_length=MAX_CODE_CHARS, description="the component's current source")
    framework: str = Field(default="react", min_length=1, max_length=40)


class ConfirmOut(BaseModel):
    id: str
    status: Literal["implemented", "failed"]
    summary: str
    learning: str | None
    learning_entry_id: str | None
    implementation: str | None
    fixes: dict[str, Any] | None = Field(description="the ensemble's proposals when implementing failed")
    steps: list[StepOut]
    total_cost_usd: float


class VisualEditView(BaseModel):
    id: str
    user_id: str
    status: str
    change: dict[str, Any]
    delta: dict[str, Any]
    summary: str
    summary_source: str
    affected_agents: list[str]
    created_at: float
    updated_at: float
    result: dict[str, Any] | None


class AgentRouteBody(_Body):
    query: str = Field(min_length=1, max_length=MAX_TEXT_CHARS,
                       examples=["My Stripe webhook returns 400 on refunds"])
    context: dict[str, Any] | None = Field(default=None, examples=[{"page": "billing"}])


class AgentRouteOut(BaseModel):
    run_id: str
    primary: str
    supporting: list[str] = Field(max_length=2)
    escalate_to: str | None
    confidence: float
    reasoning: str
    classification_source: Literal["ai", "keywords"]
    classification: dict[str, Any]
    matched: list[str]
    classifier: StepOut


class GenerateCodeBody(_Body):
    task: str = Field(min_length=1, max_length=MAX_TEXT_CHARS,
                      examples=["A function that merges two sorted lists"])
    language: str = Field(default="python", min_length=1, max_length=40, examples=["python"])
    context: str | None = Field(default=None, max_length=MAX_CODE_CHARS)
    current_code: str | None = Field(default=None, max_length=MAX_CODE_CHARS)


class GeneratedCodeOut(BaseModel):
    run_id: str
    language: str
    code: str
    text: str
    platform: str
    model: str
    cost_usd: float
    latency_ms: float
    fallback_used: bool
    attempts: int
    finish_reason: str | None


def _unavailable(exc: BaseException) -> bool:
    try:
        from ray.exceptions import ActorUnavailableError, RayActorError
    except ImportError:  # pragma: no cover - Ray is a dependency
        return False
    return isinstance(exc, (RayActorError, ActorUnavailableError))


def caller(who: Principal) -> dict[str, Any]:
    """Who runs a pipeline, as plain data: user, key and the key's budgets (when it has any)."""
    return {"user_id": who.user_id, "key_id": who.key_id, "budgets": tuple(who.budgets)}


def router(services: Services) -> APIRouter:
    router = APIRouter(tags=["agents"])
    principal = services.principal()

    async def call(method: str, **kwargs: Any) -> Any:
        if services.coordinator is None:
            raise ApiError(503, "agents_unavailable", "the agent coordinator is not running")
        try:
            reply = await getattr(services.coordinator, method).remote(**kwargs)
        except Exception as exc:
            if _unavailable(exc):
                raise ApiError(503, "agents_unavailable", "the agent coordinator is restarting; retry",
                               headers={"retry-after": "1"}) from None
            raise
        if reply["status"] >= 400:
            error = dict(reply["error"])
            raise ApiError(reply["status"], error.pop("type"), error.pop("message"),
                           field=error.pop("field", None), extra=error)
        return reply["body"]

    @router.post("/api/ai/review", response_model=ReviewOut)
    async def review(body: ReviewBody, who: Principal = Depends(principal)) -> Any:
        """Collaborative code review: structure → security → performance → synthesis."""
        return await call("review", **caller(who), code=body.code,
                          language=body.language)

    @router.post("/api/ai/visual-edits", response_model=VisualEditOut, status_code=201)
    async def capture(body: VisualEditBody, who: Principal = Depends(principal)) -> Any:
        """Capture a UI change: delta, affected agents, one-sentence summary. Nothing is
        implemented until the change is confirmed."""
        return await call("capture_visual_edit", **caller(who),
                          change=body.model_dump(mode="json"))

    @router.post("/api/ai/visual-edits/{change_id}/confirm", response_model=ConfirmOut)
    async def confirm(
        change_id: str = Path(pattern=CHANGE_ID),
        body: ConfirmBody | None = Body(default=None),
        who: Principal = Depends(principal),
    ) -> Any:
        """Confirm a captured change: learn the pattern, implement it (an ensemble proposes
        fixes when that fails) and share the learning. 409 when already confirmed."""
        body = body or ConfirmBody()
        return await call("confirm_visual_edit", **caller(who), is_admin=who.is_admin,
                          change_id=change_id, note=body.note, source=body.source,
                          framework=body.framework)

    @router.get("/api/ai/visual-edits/{change_id}", response_model=VisualEditView)
    async def get_change(change_id: str = Path(pattern=CHANGE_ID), who: Principal = Depends(principal)) -> Any:
        return await call("get_visual_edit", user_id=who.user_id, is_admin=who.is_admin, change_id=change_id)

    @router.post("/api/ai/agents/route", response_model=AgentRouteOut)
    async def route_agents(body: AgentRouteBody, who: Principal = Depends(principal)) -> Any:
        """Pick the primary agent, up to two supporting agents and an escalation target."""
        return await call("route_agents", **caller(who), query=body.query,
                          context=body.context)

    @router.post("/api/ai/generate-code", response_model=GeneratedCodeOut)
    async def generate(body: GenerateCodeBody, who: Principal = Depends(principal)) -> Any:
        """Generate code on the code/quality chain at temperature 0.2."""
        return await call("generate_code", **caller(who), task=body.task,
                          language=body.language, context=body.context, current_code=body.current_code)

    return router
