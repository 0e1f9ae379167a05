"""The intents that change devices (and HassClimateGetTemperature), against the sample home:
what the home says and what it changes.
The sample home (assistant/home/sample_home.yaml) at first start: kitchen light and counter
lights off; living room light (80 %) and floor lamp (40 %) on; blinds open; thermostat set to
21 °C, reading 20.5 °C; speaker paused on track 1 at volume 35; TV paused at 20; bedroom fan off
at 50 %; front door and garage side door locked; garage door closed.
"""

from __future__ import annotations

from assistant.errors import InvalidAction, UnknownDevice
from assistant.home.actions import HomeService
from assistant.home.model import Change
from tests.home.conftest import intent, say

# ----- HassTurnOn / HassTurnOff -----


async def test_turn_on_a_named_light(service: HomeService) -> None:
    out = await service.handle(intent("HassTurnOn", name="light.kitchen_ceiling"), "r-1")

    assert out.speech == "Turned on the kitchen light."
    assert out.changes == (Change("light.kitchen_ceiling", "on", False, True),)
    assert out.ok and out.targets == ("light.kitchen_ceiling",)


async def test_turn_on_a_light_that_is_on_changes_nothing_and_says_so(
    service: HomeService,
) -> None:
    out = await service.handle(intent("HassTurnOn", name="light.floor_lamp"), "r-1")

    assert out.speech == "The floor lamp is already on at 40 percent."
    assert out.changes == () and out.ok


async def test_turn_off_an_area_turns_off_its_lights_switches_and_fans_only(
    service: HomeService,
) -> None:
    out = await service.handle(intent("HassTurnOff", area="living_room"), "r-1")

    assert out.speech == "Turned off 2 lights in the living room."
    assert {c.device for c in out.changes} == {"light.living_room_ceiling", "light.floor_lamp"}
    assert service.state_of("cover.living_room_blinds")["open"] is True  # not a switch


async def test_turn_off_every_light_in_the_home_by_domain(service: HomeService) -> None:
    out = await service.handle(intent("HassTurnOff", domain="light"), "r-1")

    assert out.speech == "Turned off 3 lights."
    assert not any(s["on"] for k, s in service.state.all().items() if k.startswith("light."))


async def test_turn_on_a_garage_door_by_device_class_opens_it(service: HomeService) -> None:
    out = await service.handle(
        intent("HassTurnOn", area="garage", domain="cover", device_class="garage"), "r-1"
    )

    assert out.speech == "Opened the garage door."
    assert service.state_of("cover.garage_door") == {"open": True, "position": 100}


async def test_turn_off_a_cover_closes_it_to_position_0(service: HomeService) -> None:
    out = await service.handle(intent("HassTurnOff", name="cover.living_room_blinds"), "r-1")

    assert out.speech == "Closed the living room blinds."
    assert service.state_of("cover.living_room_blinds") == {"open": False, "position": 0}


async def test_turn_on_a_lock_locks_it_and_turn_off_unlocks_it(service: HomeService) -> None:
    assert await say(service, "HassTurnOff", name="lock.front_door") == "Unlocked the front door."
    assert service.state_of("lock.front_door") == {"locked": False}
    assert await say(service, "HassTurnOn", name="lock.front_door") == "Locked the front door."
    assert service.state_of("lock.front_door") == {"locked": True}


async def test_turn_on_a_media_player_plays_and_turn_off_pauses(service: HomeService) -> None:
    assert await say(service, "HassTurnOn", name="media_player.tv") == "Resumed the TV."
    assert service.state_of("media_player.tv")["playing"] is True
    assert await say(service, "HassTurnOff", name="media_player.tv") == "Paused the TV."


async def test_a_sensor_cannot_be_turned_on(service: HomeService) -> None:
    out = await service.handle(intent("HassTurnOn", name="sensor.office_co2"), "r-1")

    assert out.speech == "The office CO2 can't be turned on."
    assert isinstance(out.error, InvalidAction) and out.changes == ()


async def test_an_unknown_device_or_area_is_an_answer_not_an_exception(
    service: HomeService,
) -> None:
    device = await service.handle(intent("HassTurnOn", name="light.attic"), "r-1")
    area = await service.handle(intent("HassTurnOn", area="attic"), "r-1")

    assert device.speech == "There is no device 'light.attic' in the home."
    assert area.speech == "There is no area 'attic' in the home."
    assert isinstance(device.error, UnknownDevice) and isinstance(area.error, UnknownDevice)


async def test_an_area_without_such_devices_says_so(service: HomeService) -> None:
    assert await say(service, "HassTurnOn", area="hall", domain="fan") == (
        "There are no fans in the hall."
    )


# ----- HassLightSet -----


async def test_light_set_brightness_in_an_area_turns_the_lights_on(service: HomeService) -> None:
    out = await service.handle(intent("HassLightSet", area="kitchen", brightness=30), "r-1")

    assert out.speech == "Set 2 lights in the kitchen to 30 percent."
    assert service.state_of("light.kitchen_ceiling") == {"on": True, "brightness": 30}
    assert service.state_of("light.kitchen_counter") == {"on": True, "brightness": 30}


async def test_light_set_brightness_0_turns_the_light_off(service: HomeService) -> None:
    out = await service.handle(intent("HassLightSet", name="light.floor_lamp", brightness=0), "r")

    assert out.speech == "Turned off the floor lamp."
    assert service.state_of("light.floor_lamp")["on"] is False


async def test_a_brighter_step_raises_the_brightness(service: HomeService) -> None:
    out = await service.handle(
        intent("HassLightSet", name="light.floor_lamp", brightness_step=20), "r-1"
    )

    assert out.speech == "Brightened the floor lamp to 60 percent."
    assert out.changes == (Change("light.floor_lamp", "brightness", 40, 60),)


async def test_a_dimmer_step_stops_at_1_percent_and_keeps_the_light_on(
    service: HomeService,
) -> None:
    out = await service.handle(
        intent("HassLightSet", name="light.floor_lamp", brightness_step=-90), "r-1"
    )

    assert out.speech == "Dimmed the floor lamp to 1 percent."
    assert service.state_of("light.floor_lamp") == {"on": True, "brightness": 1}


async def test_dimming_a_light_that_is_off_leaves_it_off(service: HomeService) -> None:
    out = await service.handle(
        intent("HassLightSet", name="light.kitchen_ceiling", brightness_step=-20), "r-1"
    )

    assert out.speech == "The kitchen light is already off."
    assert out.changes == ()


async def test_a_brightness_past_100_is_refused_with_the_range(service: HomeService) -> None:
    out = await service.handle(
        intent("HassLightSet", name="light.kitchen_ceiling", brightness=150), "r-1"
    )

    assert out.speech == "The kitchen light's brightness goes from 0 to 100, not 150."
    assert isinstance(out.error, InvalidAction)
    assert service.state_of("light.kitchen_ceiling") == {"on": False, "brightness": 100}


async def test_light_set_on_a_fan_is_refused(service: HomeService) -> None:
    assert await say(service, "HassLightSet", name="fan.bedroom_fan", brightness=50) == (
        "The bedroom fan can't be dimmed."
    )


# ----- HassSetPosition, HassFanSetSpeed -----


async def test_set_position_opens_a_cover_part_way(service: HomeService) -> None:
    out = await service.handle(
        intent("HassSetPosition", name="cover.bedroom_curtains", position=40), "r-1"
    )

    assert out.speech == "Set the bedroom curtains to 40 percent open."
    assert service.state_of("cover.bedroom_curtains") == {"open": True, "position": 40}


async def test_set_position_0_closes_the_cover(service: HomeService) -> None:
    assert await say(service, "HassSetPosition", name="cover.living_room_blinds", position=0) == (
        "Closed the living room blinds."
    )
    assert service.state_of("cover.living_room_blinds")["open"] is False


async def test_fan_speed_turns_the_fan_on(service: HomeService) -> None:
    out = await service.handle(
        intent("HassFanSetSpeed", name="fan.bedroom_fan", percentage=75), "r-1"
    )

    assert out.speech == "Set the bedroom fan to 75 percent."
    assert service.state_of("fan.bedroom_fan") == {"on": True, "percentage": 75}


# ----- climate -----


async def test_set_temperature_without_a_target_uses_the_only_thermostat(
    service: HomeService,
) -> None:
    out = await service.handle(intent("HassClimateSetTemperature", temperature=22.5), "r-1")

    assert out.speech == "Set the thermostat to 22.5 degrees."
    assert out.changes == (Change("climate.thermostat", "target_temperature", 21.0, 22.5),)


async def test_a_warmer_step_raises_the_target_temperature(service: HomeService) -> None:
    out = await service.handle(intent("HassClimateSetTemperature", temperature_step=1), "r-1")

    assert out.speech == "Raised the thermostat to 22 degrees."


async def test_a_temperature_out_of_range_is_refused(service: HomeService) -> None:
    out = await service.handle(intent("HassClimateSetTemperature", temperature=60), "r-1")

    assert out.speech == "The thermostat's target temperature goes from 5 to 35 degrees, not 60."
    assert out.changes == () and isinstance(out.error, InvalidAction)


async def test_get_temperature_answers_the_thermostats_reading(service: HomeService) -> None:
    out = await service.handle(intent("HassClimateGetTemperature"), "r-1")

    assert out.speech == "It's 20.5 degrees in the living room."
    assert out.data == {"temperature": 20.5, "unit": "°C"}


async def test_get_temperature_of_an_area_without_a_thermostat_reads_its_sensor(
    service: HomeService,
) -> None:
    assert await say(service, "HassClimateGetTemperature", area="garden") == (
        "It's 14.5 degrees in the garden."
    )


async def test_get_temperature_where_nothing_measures_it_says_so(service: HomeService) -> None:
    assert await say(service, "HassClimateGetTemperature", area="garage") == (
        "There's no thermometer in the garage."
    )


# ----- HassSetVolume and media -----


async def test_set_volume_of_a_named_player(service: HomeService) -> None:
    out = await service.handle(
        intent("HassSetVolume", name="media_player.tv", volume_level=30), "r"
    )

    assert out.speech == "Set the volume of the TV to 30 percent."
    assert out.changes == (Change("media_player.tv", "volume", 20, 30),)


async def test_a_louder_step_turns_the_volume_up(service: HomeService) -> None:
    assert (
        await say(service, "HassSetVolume", name="media_player.living_room_speaker", volume_step=10)
        == "Turned the living room speaker up to 45 percent."
    )


async def test_an_untargeted_volume_with_two_players_asks_which(service: HomeService) -> None:
    out = await service.handle(intent("HassSetVolume", volume_level=30), "r-1")

    assert out.speech == "Which one? There are 2 media players: the living room speaker and the TV."
    assert isinstance(out.error, InvalidAction) and out.changes == ()


async def test_pause_without_a_target_pauses_what_is_playing(service: HomeService) -> None:
    await service.set("media_player.living_room_speaker", {"playing": True}, "r-0")

    out = await service.handle(intent("HassMediaPause"), "r-1")

    assert out.speech == "Paused the living room speaker."
    assert out.changes == (Change("media_player.living_room_speaker", "playing", True, False),)


async def test_pause_when_nothing_plays_says_so(service: HomeService) -> None:
    assert await say(service, "HassMediaPause") == "Nothing is playing."


async def test_unpause_a_named_player(service: HomeService) -> None:
    assert await say(service, "HassMediaUnpause", name="media_player.tv") == "Resumed the TV."
    assert service.state_of("media_player.tv")["playing"] is True


async def test_next_and_previous_move_through_the_tracks(service: HomeService) -> None:
    await service.set("media_player.living_room_speaker", {"playing": True}, "r-0")

    assert await say(service, "HassMediaNext") == "Skipped to track 2 on the living room speaker."
    assert await say(service, "HassMediaPrevious") == (
        "Went back to track 1 on the living room speaker."
    )
    assert await say(service, "HassMediaPrevious") == (
        "The living room speaker is already on the first track."
    )
