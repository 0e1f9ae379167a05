"""Intents that answer or keep time against the sample home: HassGetState, timers, the time
and date, HassNevermind, and what the home does with an intent outside the contract."""

from __future__ import annotations

from assistant.errors import InvalidAction
from assistant.home.actions import HomeService
from tests.home.conftest import Clock, intent, say

# ----- HassGetState -----


async def test_get_state_of_a_cover(service: HomeService) -> None:
    assert await say(service, "HassGetState", name="cover.garage_door") == (
        "The garage door is closed."
    )


async def test_get_state_counts_the_lights_that_are_on_in_an_area(service: HomeService) -> None:
    out = await service.handle(
        intent("HassGetState", area="living_room", domain="light", state="on"), "r-1"
    )

    assert out.speech == (
        "Yes, 2 lights are on in the living room: the living room light and the floor lamp."
    )
    assert out.data["answer"] is True


async def test_get_state_answers_no_when_none_match(service: HomeService) -> None:
    out = await service.handle(
        intent("HassGetState", area="kitchen", domain="light", state="on"), "r-1"
    )

    assert out.speech == "No, no lights are on in the kitchen."
    assert out.data["answer"] is False


async def test_get_state_yes_no_for_one_named_lock(service: HomeService) -> None:
    assert await say(service, "HassGetState", name="lock.front_door", state="locked") == (
        "Yes, the front door is locked."
    )
    assert await say(service, "HassGetState", name="lock.front_door", state="unlocked") == (
        "No, the front door is locked."
    )


async def test_get_state_of_a_sensor_says_its_value_and_unit(service: HomeService) -> None:
    assert await say(service, "HassGetState", name="sensor.bathroom_humidity") == (
        "The bathroom humidity is 58 percent."
    )


async def test_get_state_reads_the_state_after_a_change(service: HomeService) -> None:
    await service.handle(intent("HassTurnOn", name="cover.garage_door"), "r-1")

    assert await say(service, "HassGetState", name="cover.garage_door", state="open") == (
        "Yes, the garage door is open."
    )


async def test_get_state_of_an_area_describes_each_device(service: HomeService) -> None:
    assert await say(service, "HassGetState", area="office") == (
        "The desk lamp is on at 90 percent. The space heater is off. "
        "The office CO2 is 640 parts per million."
    )


# ----- timers, time, nevermind -----


async def test_start_a_timer(service: HomeService) -> None:
    out = await service.handle(intent("HassStartTimer", minutes=5), "r-1")

    assert out.speech == "Timer set for 5 minutes."
    assert [t.duration_s for t in service.timers()] == [300.0]


async def test_start_a_named_timer_of_hours_and_minutes(service: HomeService) -> None:
    out = await service.handle(intent("HassStartTimer", hours=1, minutes=30, name="roast"), "r")

    assert out.speech == "Roast timer set for 1 hour and 30 minutes."
    assert out.timers[0].name == "roast"


async def test_timer_status_says_the_time_left(service: HomeService, clock: Clock) -> None:
    await service.handle(intent("HassStartTimer", minutes=5, name="pasta"), "r-1")
    clock.advance(50)

    out = await service.handle(intent("HassTimerStatus", name="pasta"), "r-2")

    assert out.speech == "The pasta timer has 4 minutes and 10 seconds left."


async def test_timer_status_lists_every_running_timer(service: HomeService) -> None:
    await service.handle(intent("HassStartTimer", minutes=10), "r-1")
    await service.handle(intent("HassStartTimer", minutes=3, name="tea"), "r-2")

    assert await say(service, "HassTimerStatus") == (
        "You have 2 timers: the tea timer has 3 minutes left and the timer for 10 minutes "
        "has 10 minutes left."
    )


async def test_timer_status_without_timers(service: HomeService) -> None:
    assert await say(service, "HassTimerStatus") == "There are no timers running."


async def test_cancel_a_timer_by_name(service: HomeService) -> None:
    await service.handle(intent("HassStartTimer", minutes=10, name="pasta"), "r-1")
    await service.handle(intent("HassStartTimer", minutes=3, name="tea"), "r-2")

    out = await service.handle(intent("HassCancelTimer", name="Pasta timer"), "r-3")

    assert out.speech == "Cancelled the pasta timer."
    assert [t.name for t in service.timers()] == ["tea"]


async def test_cancel_without_a_name_cancels_the_most_recent(
    service: HomeService, clock: Clock
) -> None:
    await service.handle(intent("HassStartTimer", minutes=10), "r-1")
    clock.advance(1)
    await service.handle(intent("HassStartTimer", seconds=90), "r-2")

    assert await say(service, "HassCancelTimer") == (
        "Cancelled the timer for 1 minute and 30 seconds."
    )
    assert [t.duration_s for t in service.timers()] == [600.0]


async def test_cancel_when_no_timer_runs_says_so(service: HomeService) -> None:
    out = await service.handle(intent("HassCancelTimer"), "r-1")

    assert out.speech == "There's no timer running." and not out.ok


async def test_cancel_all_timers(service: HomeService) -> None:
    await service.handle(intent("HassStartTimer", minutes=10), "r-1")
    await service.handle(intent("HassStartTimer", minutes=3, name="tea"), "r-2")

    assert await say(service, "HassCancelAllTimers") == "Cancelled 2 timers."
    assert service.timers() == []


async def test_a_timer_without_a_duration_is_refused(service: HomeService) -> None:
    out = await service.handle(intent("HassStartTimer", name="pasta"), "r-1")

    assert out.speech == "Say how long the timer should run, for example 5 minutes."
    assert service.timers() == []


async def test_nevermind_does_nothing(service: HomeService) -> None:
    out = await service.handle(intent("HassNevermind"), "r-1")

    assert (out.speech, out.changes, out.ok) == ("", (), True)


async def test_current_time_and_date(service: HomeService) -> None:
    assert await say(service, "HassGetCurrentTime") == "It's 3:05 PM."
    assert await say(service, "HassGetCurrentDate") == "Today is Tuesday, March 4, 2025."


async def test_an_intent_outside_the_contract_is_refused(service: HomeService) -> None:
    out = await service.handle(intent("HassVacuumStart"), "r-1")

    assert isinstance(out.error, InvalidAction) and "HassTurnOn" in str(out.error)


async def test_intent_changes_are_logged_with_the_request_id_and_recogniser(
    service: HomeService,
) -> None:
    await service.handle(intent("HassTurnOn", name="light.hall"), "voice-7")

    logged = service.state.changes(device="light.hall")
    assert [(c.request_id, c.source) for c in logged] == [("voice-7", "voice/templates")]
