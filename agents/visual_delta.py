"""Visual editor, pure parts: a captured UI change -> its delta -> the affected agents -> a
one-sentence template summary (used when the AI summary fails)."""
from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from agents.matching import STRONG_THRESHOLD, rank_agents, split_identifier, tokens
from agents.registry import Registry

ChangeType = Literal["move", "resize", "style", "text", "delete", "add"]
Delta = dict[str, dict[str, Any]]  # "path.to.key" -> {"from": old, "to": new}

MAX_AFFECTED = 6
MAX_LISTED_CHANGES = 3
MAX_VALUE_CHARS = 40
TRACKING_CAPABILITY = "change-tracking"
VISUAL_AREAS = frozenset({"visual-editor", "ui"})
_TYPE_TERMS: dict[str, tuple[str, ...]] = {
    "move": ("move", "position", "layout"),
    "resize": ("resize", "size", "layout"),
    "style": ("style",),
    "text": ("text", "copy"),
    "add": ("add", "component"),
    "delete": ("delete", "component"),
}
_HORIZONTAL = ("x", "left")
_VERTICAL = ("y", "top")
_AXES = ((_HORIZONTAL, ("right", "left")), (_VERTICAL, ("down", "up")))
_VERBS = {"move": "Moved", "resize": "Resized", "style": "Restyled", "text": "Edited"}


class VisualChange(BaseModel):
    """One change captured in the visual editor, with the component's state before and after."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    type: ChangeType
    component_id: str = Field(min_length=1, max_length=200)
    before: dict[str, Any] | None = None
    after: dict[str, Any] | None = None
    page: str | None = Field(default=None, max_length=500)

    @model_validator(mode="after")
    def _states_fit_the_type(self) -> "VisualChange":
        if self.type == "add":
            if self.after is None or self.before is not None:
                raise ValueError("an 'add' change needs `after` and no `before`")
        elif self.type == "delete":
            if self.before is None or self.after is not None:
                raise ValueError("a 'delete' change needs `before` and no `after`")
        elif self.before is None or self.after is None:
            raise ValueError(f"a {self.type!r} change needs both `before` and `after`")
        return self


def flatten(state: dict[str, Any] | None, prefix: str = "") -> dict[str, Any]:
    """Nested dicts as dotted paths: {"style": {"color": "red"}} -> {"style.color": "red"}."""
    flat: dict[str, Any] = {}
    for key, value in (state or {}).items():
        path = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            flat.update(flatten(value, path + "."))
        else:
            flat[path] = value
    return flat


def compute_delta(change: VisualChange) -> Delta:
    """The keys whose value differs between before and after (a missing key counts as None),
    in order of appearance: before's keys, then keys new in after."""
    before, after = flatten(change.before), flatten(change.after)
    delta: Delta = {}
    for key in list(before) + [k for k in after if k not in before]:
        old, new = before.get(key), after.get(key)
        if old != new:
            delta[key] = {"from": old, "to": new}
    return delta


def affected_agents(
    change: VisualChange, registry: Registry, delta: Delta | None = None
) -> list[str]:
    """Agent ids to notify: the change-tracking agents first, then UI and visual-editor agents
    matching the change type, component name and changed keys, then agents of other areas
    that match those strongly (e.g. the auth agent for a `LoginForm`)."""
    delta = compute_delta(change) if delta is None else delta
    words = list(_TYPE_TERMS[change.type]) + tokens(change.component_id)
    for key in delta:
        words += tokens(key.replace(".", " "))
    ranked = rank_agents(list(dict.fromkeys(words)), registry)
    always = [a.id for a in registry.with_capability(TRACKING_CAPABILITY)]
    visual = [r.agent.id for r in ranked if r.agent.area in VISUAL_AREAS]
    others = [
        r.agent.id
        for r in ranked
        if r.agent.area not in VISUAL_AREAS and r.confidence >= STRONG_THRESHOLD
    ]
    return list(dict.fromkeys(always + visual + others))[:MAX_AFFECTED]


def template_summary(change: VisualChange, delta: Delta | None = None) -> str:
    """One sentence describing the change, e.g. "Moved LoginButton 50px to the right."."""
    delta = compute_delta(change) if delta is None else delta
    name = change.component_id
    where = f" on the {change.page} page" if change.page else ""
    if change.type == "add":
        return _sentence(f"Added {name}{where}")
    if change.type == "delete":
        return _sentence(f"Deleted {name}{where}")
    if not delta:
        return _sentence(f"No visible change to {name}{where}")
    if change.type == "move" and (moved := _movement(delta)):
        return _sentence(f"Moved {name} {moved}{where}")
    if change.type == "text" and len(delta) == 1:
        (step,) = delta.values()
        old, new = _quoted(step["from"]), _quoted(step["to"])
        return _sentence(f"Changed the text of {name}{where} from {old} to {new}")
    verb = _VERBS[change.type]
    return _sentence(f"{verb} {name}{where}: {_listing(delta)}")


def _movement(delta: Delta) -> str | None:
    """"50px to the right and 10px up" when the position keys are plain numbers."""
    parts = []
    for keys, (positive, negative) in _AXES:
        key = next((k for k in keys if k in delta), None)
        if key is None:
            continue
        old, new = delta[key]["from"], delta[key]["to"]
        if not all(isinstance(v, int | float) and not isinstance(v, bool) for v in (old, new)):
            return None
        shift = new - old
        parts.append(f"{_number(abs(shift))}px {'to the ' if keys is _HORIZONTAL else ''}"
                     f"{positive if shift > 0 else negative}")
    return " and ".join(parts) or None


def _listing(delta: Delta) -> str:
    items = [
        f"{_humanize(key)} from {_value(step['from'])} to {_value(step['to'])}"
        for key, step in list(delta.items())[:MAX_LISTED_CHANGES]
    ]
    extra = len(delta) - len(items)
    if extra:
        items.append(f"{extra} more change{'s' if extra > 1 else ''}")
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def _humanize(key: str) -> str:
    """`style.backgroundColor` -> "background color" (a leading `style.` says nothing)."""
    parts = key.split(".")
    if len(parts) > 1 and parts[0] in ("style", "styles"):
        parts = parts[1:]
    return " ".join(w.lower() for part in parts for w in split_identifier(part)) or key


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


def _value(value: Any) -> str:
    if value is None:
        return "nothing"
    if isinstance(value, int | float) and not isinstance(value, bool):
        return _number(value)
    return _clip(str(value))


def _quoted(value: Any) -> str:
    return "nothing" if value is None else f'"{_clip(str(value))}"'


def _clip(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= MAX_VALUE_CHARS else text[: MAX_VALUE_CHARS - 1] + "…"


def _sentence(text: str) -> str:
    text = " ".join(text.split())
    return text if text.endswith((".", "!", "?")) else text + "."
