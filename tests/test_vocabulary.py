"""One vocabulary of drops and faults (issue 29): the words and counts the app, `zaprig inspect`,
the report and the summary share."""

from __future__ import annotations

from rig.core.vocabulary import IncidentCounter, fault_incidents, format_drops, plain_fault

LOST = (
    "laser not answering: lost the laser's serial port /dev/pts/2 (laser.port) during "
    "'SYST:FAUL?': (5, 'Input/output error'). Check its USB/serial cable and power"
)


def test_a_lost_laser_is_one_incident_however_many_fault_rows_it_makes() -> None:
    events = [
        (100, "info", "laser on at 20 mW", "laser"),
        (19200, "fault", LOST, "laser"),
        (
            19200,
            "fault",
            "laser may still be on: could not switch the laser on /dev/pts/2 off: "
            "lost the laser's serial port",
            "laser",
        ),
        (19200, "fault", f"session failed: {LOST}", "engine"),
    ]
    incidents = fault_incidents(events)
    assert len(incidents) == 1 and incidents[0].device == "laser" and incidents[0].events == 3
    # without sources (old files) the words decide, with the same count
    assert len(fault_incidents([e[:3] for e in events])) == 1
    # two devices failing are two incidents
    c = IncidentCounter()
    assert c.add(1, LOST, "laser") is not None
    assert c.add(2, "camera stopped delivering planes", "camera") is not None
    assert c.add(3, "session failed: camera stopped delivering planes") is None
    assert len(c) == 2


def test_device_errors_are_worded_for_people() -> None:
    text = plain_fault(LOST)
    for raw in ("/dev/pts/2", "SYST:FAUL?", "Input/output error", "(5,"):
        assert raw not in text
    assert "laser.port" in text and "Check its USB/serial cable" in text
    assert plain_fault("writer: OSError: [Errno 28] No space left on device") == (
        "writer: No space left on device"
    )


def test_drops_are_always_planes_volumes_and_frames() -> None:
    assert format_drops(1, 0) == "1 plane, 0 volumes, 0 stimulus frames"
    assert format_drops(0, 2, 1) == "0 planes, 2 volumes, 1 stimulus frame"
