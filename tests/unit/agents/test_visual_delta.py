from __future__ import annotations

import pytest
from pydantic import ValidationError

from agents.registry import default_registry
from agents.visual_delta import VisualChange, affected_agents, compute_delta, flatten, template_summary


@pytest.fixture(scope="module")
def registry():
    return default_registry()


def change(type_, before=None, after=None, component="LoginButton", page=None) -> VisualChange:
    return VisualChange(type=type_, component_id=component, before=before, after=after, page=page)


# -- validation -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("type_", "before", "after", "message"),
    [
        ("add", None, None, "needs `after`"),
        ("add", {"x": 1}, {"x": 1}, "no `before`"),
        ("delete", None, None, "needs `before`"),
        ("delete", {"x": 1}, {"x": 2}, "no `after`"),
        ("move", {"x": 1}, None, "both"),
        ("style", None, {"color": "red"}, "both"),
    ],
)
def test_states_must_fit_the_change_type(type_, before, after, message):
    with pytest.raises(ValidationError, match=message):
        change(type_, before, after)


def test_unknown_types_and_empty_components_are_rejected():
    with pytest.raises(ValidationError):
        VisualChange(type="rotate", component_id="X", before={}, after={})
    with pytest.raises(ValidationError):
        VisualChange(type="move", component_id="", before={"x": 1}, after={"x": 2})


# -- delta -------------------------------------------------------------------------------------------


def test_delta_lists_changed_keys_with_from_and_to():
    delta = compute_delta(change("move", {"x": 10, "y": 20, "z": 1}, {"x": 60, "y": 20, "z": 1}))
    assert delta == {"x": {"from": 10, "to": 60}}


def test_delta_covers_added_and_removed_keys_in_order():
    delta = compute_delta(change("style", {"color": "red", "border": "1px"}, {"color": "red", "opacity": 0.5}))
    assert delta == {"border": {"from": "1px", "to": None}, "opacity": {"from": None, "to": 0.5}}
    assert list(delta) == ["border", "opacity"]


def test_nested_state_is_flattened_to_dotted_keys():
    before = {"style": {"backgroundColor": "blue", "font": {"size": 14}}}
    after = {"style": {"backgroundColor": "green", "font": {"size": 14}}}
    assert compute_delta(change("style", before, after)) == {
        "style.backgroundColor": {"from": "blue", "to": "green"}
    }
    assert flatten({"a": {}, "b": {"c": 1}}) == {"a": {}, "b.c": 1}


def test_add_and_delete_deltas_cover_the_whole_state():
    assert compute_delta(change("add", None, {"text": "Sale", "x": 5})) == {
        "text": {"from": None, "to": "Sale"},
        "x": {"from": None, "to": 5},
    }
    assert compute_delta(change("delete", {"width": 200}, None)) == {"width": {"from": 200, "to": None}}


# -- template summary ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("the_change", "expected"),
    [
        (change("move", {"x": 10, "y": 20}, {"x": 60, "y": 10}, page="checkout"),
         "Moved LoginButton 50px to the right and 10px up on the checkout page."),
        (change("move", {"left": 30}, {"left": 5.5}), "Moved LoginButton 24.5px to the left."),
        (change("move", {"x": "10%"}, {"x": "20%"}), "Moved LoginButton: x from 10% to 20%."),
        (change("resize", {"width": 200, "height": 100}, {"width": 300, "height": 150}, component="HeroImage"),
         "Resized HeroImage: width from 200 to 300 and height from 100 to 150."),
        (change("style", {"style": {"backgroundColor": "blue"}}, {"style": {"backgroundColor": "green"}}),
         "Restyled LoginButton: background color from blue to green."),
        (change("text", {"text": "Welcome"}, {"text": "Hello there"}, component="PageTitle"),
         'Changed the text of PageTitle from "Welcome" to "Hello there".'),
        (change("add", None, {"text": "Sale"}, component="PromoBanner", page="home"),
         "Added PromoBanner on the home page."),
        (change("delete", {"width": 200}, None, component="Sidebar"), "Deleted Sidebar."),
        (change("style", {"color": "red"}, {"color": "red"}), "No visible change to LoginButton."),
    ],
)
def test_template_summary(the_change, expected):
    assert template_summary(the_change, compute_delta(the_change)) == expected


def test_summary_lists_at_most_three_changes_and_counts_the_rest():
    before = {k: 1 for k in "abcde"}
    after = {k: 2 for k in "abcde"}
    summary = template_summary(change("style", before, after))
    assert summary == "Restyled LoginButton: a from 1 to 2, b from 1 to 2, c from 1 to 2 and 2 more changes."


def test_summary_is_one_line_and_clips_long_values():
    the_change = change("text", {"text": "short"}, {"text": "line one\nline two " + "x" * 80})
    summary = template_summary(the_change)
    assert "\n" not in summary and summary.endswith('…".')
    assert len(summary) < 120


# -- affected agents -----------------------------------------------------------------------------


def test_change_tracking_agent_comes_first(registry):
    agents = affected_agents(change("move", {"x": 1}, {"x": 2}), registry)
    assert agents[0] == "visual-editor-coordinator"
    assert "layout-agent" in agents


@pytest.mark.parametrize(
    ("the_change", "expected"),
    [
        (change("style", {"style": {"backgroundColor": "blue"}}, {"style": {"backgroundColor": "green"}}),
         {"style-editor-agent", "theming-agent"}),
        (change("style", {"fontSize": 14}, {"fontSize": 16}), {"typography-agent"}),
        (change("text", {"text": "a"}, {"text": "b"}), {"content-editor-agent"}),
        (change("delete", {"width": 200}, None, component="Sidebar"), {"component-library-agent"}),
        (change("resize", {"width": 1}, {"width": 2}), {"layout-agent"}),
    ],
)
def test_agents_matching_the_changed_keys_are_affected(registry, the_change, expected):
    assert expected <= set(affected_agents(the_change, registry))


def test_strong_matches_outside_the_ui_are_included(registry):
    the_change = change("style", {"border": "1px"}, {"border": "2px"}, component="StripeCheckoutForm")
    agents = affected_agents(the_change, registry)
    assert "stripe-payments" in agents and "forms-agent" in agents


def test_affected_agents_are_bounded_unique_and_deterministic(registry):
    the_change = change("style", {"color": "a", "fontSize": 1, "border": "x"}, {"color": "b", "fontSize": 2, "border": "y"})
    first = affected_agents(the_change, registry)
    assert first == affected_agents(the_change, registry)
    assert len(first) == len(set(first)) <= 6
