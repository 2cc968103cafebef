"""Batch config: every way a config can be wrong is caught before any board, with the file, key
path, line and what is allowed; valid configs and the shipped examples load; part numbers decode."""

from __future__ import annotations

import hashlib
import shutil
import textwrap
from pathlib import Path

import pytest

from gangflash.orchestrator import config_errors as ce
from gangflash.orchestrator.config import (
    ConfigErrors, format_errors, load_config, make_sim_probes, sim_boards_from_spec,
)
from gangflash.orchestrator.config_errors import SourceIndex
from gangflash.orchestrator.config_schema import SerialNumberSpec
from gangflash.orchestrator.partnumbers import (
    FLASH_SIZE_CODES, PartNumberError, decode_part_number, format_size, normalize_family,
)

from .demo_firmware import PATH as DEMO_IMAGE, demo_image

REPO = Path(__file__).resolve().parents[2]
DEMO_SHA = hashlib.sha256(demo_image()).hexdigest()

BASE = """\
[batch]
name = "t"

[firmware]
path = "fw.bin"
base_address = 0x08000000

[[slot]]
label = "A1"
probe = "066DFF000000000000000001"
"""


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    shutil.copy(DEMO_IMAGE, tmp_path / "fw.bin")
    return tmp_path


def write(folder: Path, text: str, name: str = "batch.toml") -> Path:
    path = folder / name
    path.write_text(textwrap.dedent(text))
    return path


def errors_of(path: Path) -> list[ce.ConfigError]:
    with pytest.raises(ConfigErrors) as caught:
        load_config(path)
    return caught.value.errors


def only(errors: list[ce.ConfigError], cls: type[ce.ConfigError], key: str) -> ce.ConfigError:
    found = [e for e in errors if isinstance(e, cls) and e.key == key]
    assert len(found) == 1, format_errors(errors)
    return found[0]


def line_of(path: Path, fragment: str) -> int:
    return next(n for n, line in enumerate(path.read_text().splitlines(), 1) if fragment in line)


# --- valid configs --------------------------------------------------------------------------------

def test_minimal_config_gets_documented_defaults(folder):
    config = load_config(write(folder, BASE))
    assert config.name == "t"
    assert config.journal == folder / "batch.journal.db"
    assert config.mode == "batch"
    assert config.firmware.path == folder / "fw.bin"
    assert config.firmware.format == "bin" and config.firmware.size == 16384
    assert config.firmware.sha256 == DEMO_SHA
    assert config.firmware.segments == ((0x08000000, 0x08004000),)
    assert config.firmware.image is not None and config.firmware.image.size == 16384
    p = config.pipeline
    assert (p.erase, p.verify, p.connect_under_reset, p.swd_khz, p.reset_after, p.unlock, p.rdp_after,
            p.halt_reset, p.stage_timeout_s) == ("auto", "crc", False, 4000, True, False, 0, True, 60.0)
    assert (config.retry.attempts, config.retry.delay_s) == (2, 0.5)
    assert config.serial_number is None and config.sim is None
    assert config.target.chip is None and config.target.family is None
    assert not config.all_probes and config.slots[0].serial == "066DFF000000000000000001"


def test_full_config_round_trips_every_key(folder):
    (folder / "sn.csv").write_text("lot,serial\n1,AB-0001\n1,AB-0002\n\n2,AB-0003\n")
    (folder / "logs").mkdir()
    path = write(folder, f"""\
        [batch]
        name = "full"
        journal = "logs/full.db"
        mode = "auto"
        [firmware]
        path = "fw.bin"
        format = "bin"
        base_address = 0x08000000
        sha256 = "{DEMO_SHA.upper()}"
        [target]
        chip = "stm32f103c8t6"
        family = "stm32f1"
        [[slot]]
        label = "A1"
        probe = "066DFF000000000000000001"
        port = "1-1.4.1"
        [[slot]]
        label = "A2"
        probe = "066DFF000000000000000001"
        port = "1-1.4.2"
        [[slot]]
        label = "B1"
        probe = "tcp://127.0.0.1:7184/0670FF535155878281194437"
        [pipeline]
        erase = "mass"
        verify = "readback"
        connect_under_reset = true
        swd_khz = 1800
        reset_after = false
        unlock = true
        rdp_after = 1
        halt_reset = false
        stage_timeout_s = 12
        [retry]
        attempts = 3
        delay_s = 0
        [serial_number]
        address = 0x0800FC00
        format = "csv"
        file = "sn.csv"
        column = "serial"
        length = 12
        include_uid = true
        on_failure = "reuse"
        [sim]
        pace = 0
        [[sim.board]]
        chip = "f412"
        probe_model = "V3"
        serial = "0670FF535155878281194437"
        label = "A1"
        faults = {{ stuck_bits = {{ "0x08000010" = 0x0F }}, power_loss_at = 2, write_protected = [1] }}
        probe_faults = {{ usb_stall_on = 7, swd_wait_burst = 2 }}
        """)
    config = load_config(path)
    assert config.journal == folder / "logs" / "full.db" and config.mode == "auto"
    assert config.firmware.expected_sha256 == DEMO_SHA
    assert (config.target.chip, config.target.family) == ("STM32F103C8", "F1")
    assert config.target.flash_size == 64 * 1024
    assert [(s.label, s.serial, s.port, s.server) for s in config.slots] == [
        ("A1", "066DFF000000000000000001", "1-1.4.1", None),
        ("A2", "066DFF000000000000000001", "1-1.4.2", None),
        ("B1", "0670FF535155878281194437", None, "127.0.0.1:7184")]
    p = config.pipeline
    assert (p.erase, p.verify, p.connect_under_reset, p.swd_khz, p.reset_after, p.unlock, p.rdp_after,
            p.halt_reset, p.stage_timeout_s) == ("mass", "readback", True, 1800, False, True, 1, False, 12.0)
    assert (config.retry.attempts, config.retry.delay_s) == (3, 0.0)
    sn = config.serial_number
    assert (sn.address, sn.format, sn.column, sn.csv_values, sn.length, sn.include_uid, sn.on_failure) == (
        0x0800FC00, "csv", "serial", ("AB-0001", "AB-0002", "AB-0003"), 12, True, "reuse")
    assert sn.area == (0x0800FC00, 0x0800FC00 + 12 + 12)
    board = config.sim.boards[0]
    assert config.sim.pace == 0.0
    assert (board.chip, board.probe_model, board.serial, board.label) == (
        "F412ZG", "V3", "0670FF535155878281194437", "A1")
    assert dict(board.faults) == {"stuck_bits": {0x08000010: 0x0F}, "power_loss_at": 2.0, "write_protected": (1,)}
    assert dict(board.probe_faults) == {"usb_stall_on": 7, "swd_wait_burst": 2}
    probe = make_sim_probes(config.sim.boards, clock=lambda: 0.0)[0]
    assert probe.serial_string == board.serial and probe.faults.usb_stall_on == 7


def test_demo_config_is_eight_mixed_boards_with_survivable_and_fatal_faults():
    config = load_config(REPO / "configs" / "demo.toml")
    boards = config.sim.boards
    assert len(boards) == 8 and config.all_probes
    assert {b.chip[:2] for b in boards} == {"F1", "F4", "L4"}
    assert {b.probe_model for b in boards} >= {"V2", "V2-1", "V3"}
    survivable = {"watchdog_running", "thumb_bit_clear", "interrupts_firing"}
    seeded = [b for b in boards if b.faults and set(b.faults) <= survivable]
    assert 1 <= len(seeded) <= 2
    fatal = [b for b in boards if "write_protected" in b.faults]
    assert len(fatal) == 1 and fatal[0].chip == "F103C8"
    assert 0 in fatal[0].faults["write_protected"]          # page 0 holds the image start
    assert config.firmware.segments[0][0] == 0x08000000
    assert len({b.serial for b in boards}) == 8
    assert config.serial_number.area[0] >= config.firmware.segments[0][1]


def test_production_example_loads_and_documents_every_key():
    path = REPO / "configs" / "production-example.toml"
    config = load_config(path)
    assert config.target.chip == "STM32F103C8" and len(config.slots) == 4
    text = path.read_text()
    for key in ("name", "journal", "mode", "path", "format", "base_address", "sha256", "chip", "family",
                "label", "probe", "port", "all", "label_prefix", "erase", "verify", "connect_under_reset",
                "swd_khz", "reset_after", "unlock", "rdp_after", "halt_reset", "stage_timeout_s",
                "attempts", "delay_s", "address", "start", "step", "template", "file", "column",
                "encoding", "length", "include_uid", "on_failure", "pace", "probe_model", "serial",
                "faults", "probe_faults"):
        assert f"{key} =" in text, key


def test_committed_demo_image_is_the_generated_one_and_fits_the_smallest_chip():
    assert DEMO_IMAGE.read_bytes() == demo_image()
    assert len(demo_image()) <= decode_part_number("STM32F103C8").flash_size


# --- syntax and schema errors -----------------------------------------------------------------------

def test_toml_syntax_error_names_file_line_and_column(folder):
    path = write(folder, BASE + "[pipeline]\nerase = auto\n")
    [error] = errors_of(path)
    assert isinstance(error, ce.ConfigSyntaxError)
    assert error.line == 12 and error.column is not None
    assert str(error).startswith(f"{path}:12:")


def test_unknown_key_suggests_the_closest_known_one_with_its_line(folder):
    path = write(folder, BASE + "[pipeline]\neraes = 'auto'\n[pipline]\n")
    errors = errors_of(path)
    error = only(errors, ce.UnknownKey, "pipeline.eraes")
    assert error.line == 12 and "did you mean 'erase'?" in str(error) and "stage_timeout_s" in error.allowed
    top = only(errors, ce.UnknownKey, "pipline")
    assert top.line == 13 and "did you mean 'pipeline'?" in str(top)


def test_wrong_type_says_what_type_belongs(folder):
    path = write(folder, BASE + "[pipeline]\nswd_khz = '4000'\nunlock = 1\n")
    errors = errors_of(path)
    swd = only(errors, ce.WrongType, "pipeline.swd_khz")
    assert "must be an integer, not a string" in str(swd) and swd.line == 12
    assert "must be true or false" in str(only(errors, ce.WrongType, "pipeline.unlock"))


@pytest.mark.parametrize("key, value, allowed", [
    ("erase", "'fast'", "'auto', 'sectors', 'mass'"),
    ("verify", "'md5'", "'crc', 'readback', 'none'"),
    ("rdp_after", "2", "0 or 1"),
    ("swd_khz", "50000", "1..24000"),
    ("stage_timeout_s", "0", "seconds > 0"),
])
def test_bad_pipeline_values_list_what_is_allowed(folder, key, value, allowed):
    path = write(folder, BASE + f"[pipeline]\n{key} = {value}\n")
    error = only(errors_of(path), ce.BadValue, f"pipeline.{key}")
    assert error.line == 12 and f"(allowed: {allowed})" in str(error) and "batch.toml:12:" in str(error)


def test_bad_choice_suggests_the_near_miss(folder):
    error = only(errors_of(write(folder, BASE + "[batch2]\n[pipeline]\nerase = 'mas'\n")),
                 ce.BadValue, "pipeline.erase")
    assert "did you mean 'mass'?" in str(error)


def test_retry_attempts_must_be_at_least_one(folder):
    error = only(errors_of(write(folder, BASE + "[retry]\nattempts = 0\n")), ce.BadValue, "retry.attempts")
    assert "allowed: an integer >= 1" in str(error)


def test_missing_required_keys_are_named(folder):
    path = write(folder, "[batch]\nmode = 'batch'\n[slots]\nall = true\n")
    errors = errors_of(path)
    assert "is required" in str(only(errors, ce.MissingKey, "batch.name"))
    assert "[firmware] table is required" in str(only(errors, ce.MissingKey, "firmware"))


def test_bin_without_base_address_and_hex_with_one(folder):
    errors = errors_of(write(folder, BASE.replace("base_address = 0x08000000\n", "")))
    assert "required for a bin image" in str(only(errors, ce.MissingKey, "firmware.base_address"))
    hex_path = folder / "fw.hex"
    hex_path.write_text(":0400000001020304F2\n:00000001FF\n")
    text = BASE.replace('"fw.bin"', '"fw.hex"')
    error = only(errors_of(write(folder, text)), ce.ConflictingKeys, "firmware.base_address")
    assert "only applies to bin images" in str(error) and error.line == 6


def test_missing_firmware_file_names_path_key_and_line(folder):
    path = write(folder, BASE.replace("fw.bin", "nope.bin"))
    error = only(errors_of(path), ce.MissingFile, "firmware.path")
    assert error.line == 5 and str(folder / "nope.bin") in str(error) and str(path) in str(error)


def test_corrupt_image_is_reported_with_its_own_line(folder):
    (folder / "bad.hex").write_text(":0400000001020304F2\n:0400040001020304FF\n:00000001FF\n")
    error = only(errors_of(write(folder, BASE.replace('"fw.bin"', '"bad.hex"').replace(
        "base_address = 0x08000000\n", ""))), ce.BadImage, "firmware.path")
    assert "line 2" in str(error) and error.line == 5


def test_malformed_sha256_is_a_bad_value(folder):
    path = write(folder, BASE + "")
    path.write_text(path.read_text().replace("[[slot]]", "sha256 = 'abc'\n[[slot]]", 1))
    error = only(errors_of(path), ce.BadValue, "firmware.sha256")
    assert "64 hexadecimal digits" in str(error) and error.line == 8


def test_sha256_mismatch_names_both_digests(folder):
    wrong = "0" * 64
    path = write(folder, BASE.replace("[[slot]]", f"sha256 = '{wrong}'\n[[slot]]", 1))
    error = only(errors_of(path), ce.ChecksumMismatch, "firmware.sha256")
    assert DEMO_SHA in str(error) and wrong in str(error) and error.line == 8


def test_missing_journal_folder_is_reported(folder):
    path = write(folder, BASE.replace('name = "t"', 'name = "t"\njournal = "no/such/j.db"'))
    error = only(errors_of(path), ce.MissingFile, "batch.journal")
    assert "does not exist" in str(error) and error.line == 3


# --- slots -------------------------------------------------------------------------------------------

SLOT = '\n[[slot]]\nlabel = "{label}"\nprobe = "{probe}"\n'


def test_two_slots_with_one_probe_serial_are_refused(folder):
    path = write(folder, BASE + SLOT.format(label="A2", probe="066DFF000000000000000001"))
    error = only(errors_of(path), ce.DuplicateProbe, "slot[2].probe")
    assert error.line == 14 and "slot[1] (line 10)" in str(error) and "port" in str(error)


def test_one_serial_on_two_ports_is_allowed_but_one_port_twice_is_not(folder):
    text = BASE + 'port = "1-1.1"\n' + SLOT.format(label="A2", probe="066DFF000000000000000001")
    assert len(load_config(write(folder, text + 'port = "1-1.2"\n')).slots) == 2
    error = only(errors_of(write(folder, text + 'port = "1-1.1"\n')), ce.DuplicateProbe, "slot[2].port")
    assert "already bound to slot[1]" in str(error)


def test_two_slots_with_one_label_are_refused(folder):
    path = write(folder, BASE + SLOT.format(label="A1", probe="066DFF000000000000000002"))
    error = only(errors_of(path), ce.DuplicateLabel, "slot[2].label")
    assert error.line == 13 and "'A1' is already used by slot[1] (line 9)" in str(error)


def test_slot_list_and_all_probes_together_are_refused(folder):
    path = write(folder, BASE + "[slots]\nall = true\n")
    error = only(errors_of(path), ce.ConflictingKeys, "slots.all")
    assert error.line == line_of(path, "all = true") and "cannot be used together" in str(error)


def test_no_slots_at_all_is_refused(folder):
    text = BASE[:BASE.index("[[slot]]")]
    assert "[slots] all = true" in str(only(errors_of(write(folder, text)), ce.MissingKey, "slot"))


@pytest.mark.parametrize("probe", ["tcp://127.0.0.1:port/SER", "tcp://host:7184/", "usb://x", "has space"])
def test_malformed_probe_is_refused(folder, probe):
    error = only(errors_of(write(folder, BASE.replace("066DFF000000000000000001", probe))),
                 ce.BadValue, "slot[1].probe")
    assert "tcp://HOST:PORT/SERIAL" in str(error)


def test_a_tcp_probe_without_a_port_uses_the_stlink_server_default(folder):
    config = load_config(write(folder, BASE.replace('"066DFF000000000000000001"', '"tcp://10.0.0.5/066DFF01"')))
    assert (config.slots[0].serial, config.slots[0].server) == ("066DFF01", "10.0.0.5:7184")


def test_bad_port_path_and_slot_without_probe_or_port(folder):
    errors = errors_of(write(folder, BASE + 'port = "usb3"\n[[slot]]\nlabel = "B"\n'))
    assert "not a USB port path" in str(only(errors, ce.BadValue, "slot[1].port"))
    assert "needs a probe serial, a USB port path" in str(only(errors, ce.MissingKey, "slot[2].probe"))


# --- target, image fit, serial area ------------------------------------------------------------------

def test_image_that_does_not_fit_the_expected_chip_is_refused(folder):
    text = BASE.replace("0x08000000", "0x0800E000") + "[target]\nchip = 'STM32F103C8'\n"
    error = only(errors_of(write(folder, text)), ce.ImageDoesNotFit, "firmware.path")
    assert "STM32F103C8" in str(error) and "0x08000000..0x08010000" in str(error) and error.line == 5
    assert load_config(write(folder, BASE.replace("0x08000000", "0x0800C000") + "[target]\nchip = 'F103C8'\n"))


def test_image_too_big_for_a_16k_part(folder):
    big = folder / "big.bin"
    big.write_bytes(bytes(32 * 1024))
    text = BASE.replace("fw.bin", "big.bin") + "[target]\nchip = 'STM32F030F4'\n"
    error = only(errors_of(write(folder, text)), ce.ImageDoesNotFit, "firmware.path")
    assert "16 KiB" in str(error)


@pytest.mark.parametrize("chip, message", [("STM32F103", "expected STM32"), ("STM32F103CX", "flash-size letter")])
def test_undecodable_chip(folder, chip, message):
    error = only(errors_of(write(folder, BASE + f"[target]\nchip = '{chip}'\n")), ce.BadValue, "target.chip")
    assert message in str(error) and "STM32F103C8" in error.allowed


def test_unknown_family_and_contradicting_family(folder):
    error = only(errors_of(write(folder, BASE + "[target]\nfamily = 'F5'\n")), ce.BadValue, "target.family")
    assert "F4" in error.allowed and "L4" in error.allowed
    error = only(errors_of(write(folder, BASE + "[target]\nchip = 'STM32L432KC'\nfamily = 'F4'\n")),
                 ce.ConflictingKeys, "target.family")
    assert "family L4" in str(error)


SERIAL = "[serial_number]\nformat = 'counter'\nstart = 1\ntemplate = 'SN-%06d'\naddress = {address}\n"


@pytest.mark.parametrize("address, message", [
    ("0x08010000", "runs past STM32F103C8 flash"),
    ("0x0800FFFC", "runs past STM32F103C8 flash"),
    ("0x07FFFFF0", "below flash"),
    ("0x08003FFC", "overlaps the image at 0x08003FFC..0x08004000"),
])
def test_serial_number_area_outside_flash_or_over_the_image(folder, address, message):
    text = BASE + "[target]\nchip = 'STM32F103C8'\n" + SERIAL.format(address=address)
    error = only(errors_of(write(folder, text)), ce.SerialNumberPlacement, "serial_number.address")
    assert message in str(error) and error.line == 17


def test_serial_counter_recipe_errors(folder):
    text = BASE + "[serial_number]\naddress = 0x0800FC00\nformat = 'counter'\nstart = 1\n" \
        "template = 'SN-%d-%d'\nfile = 'x.csv'\nlength = 2\n"
    errors = errors_of(write(folder, text))
    assert "exactly one integer" in str(only(errors, ce.BadValue, "serial_number.template"))
    assert "only applies to format = csv" in str(only(errors, ce.ConflictingKeys, "serial_number.file"))
    u32 = BASE + "[serial_number]\naddress = 0x0800FC00\nformat = 'counter'\nstart = -1\n" \
        "encoding = 'u32le'\ntemplate = 'X%d'\n"
    errors = errors_of(write(folder, u32))
    assert "does not fit 32 bits" in str(only(errors, ce.BadValue, "serial_number.start"))
    assert "binary number" in str(only(errors, ce.ConflictingKeys, "serial_number.template"))
    short = BASE + SERIAL.format(address="0x0800FC00") + "length = 4\n"
    assert "at least 9" in str(only(errors_of(write(folder, short)), ce.BadValue, "serial_number.length"))


def test_serial_csv_errors(folder):
    csv_text = BASE + "[serial_number]\naddress = 0x0800FC00\nformat = 'csv'\nfile = 'sn.csv'\n"
    path = write(folder, csv_text)
    error = only(errors_of(path), ce.MissingFile, "serial_number.file")
    assert "sn.csv does not exist" in str(error) and error.line == line_of(path, "file = 'sn.csv'")
    (folder / "sn.csv").write_text("serial\nA1\nA2\nA1\n")
    error = only(errors_of(write(folder, csv_text)), ce.BadValue, "serial_number.file")
    assert "line 4: 'A1' repeats line 2" in str(error)
    (folder / "sn.csv").write_text("serial\nA1\n")
    errors = errors_of(write(folder, csv_text + "column = 'sn'\nencoding = 'u32le'\n"))
    assert only(errors, ce.BadValue, "serial_number.column").allowed == "serial"
    assert "u32le only works" in str(only(errors, ce.ConflictingKeys, "serial_number.encoding"))


# --- sim ----------------------------------------------------------------------------------------------

def test_sim_fault_knobs_are_checked_against_the_simulator(folder):
    text = BASE + textwrap.dedent("""\
        [sim]
        [[sim.board]]
        chip = "F103C8"
        [[sim.board]]
        chip = "F999"
        probe_model = "V4"
        faults = { watchdog_runing = true, write_protected = "0" }
        probe_faults = { usb_stall_on = 1.5 }
        """)
    path = write(folder, text)
    errors = errors_of(path)
    assert "did you mean 'watchdog_running'?" in str(only(errors, ce.UnknownKey, "sim.board[2].faults.watchdog_runing"))
    wp = only(errors, ce.WrongType, "sim.board[2].faults.write_protected")
    assert "array of integers" in str(wp) and wp.line == line_of(path, "watchdog_runing")
    assert "an integer" in str(only(errors, ce.WrongType, "sim.board[2].probe_faults.usb_stall_on"))
    assert "F103C8" in only(errors, ce.BadValue, "sim.board[2].chip").allowed
    assert "'V2-1'" in only(errors, ce.BadValue, "sim.board[2].probe_model").allowed


def test_sim_boards_from_spec_count_or_chip_list():
    four = sim_boards_from_spec("4")
    assert [b.chip for b in four] == ["F103C8", "F412ZG", "L432KC", "F103RC"]
    assert len({b.serial for b in four}) == 4
    two = sim_boards_from_spec("F103C8, l432")
    assert [b.chip for b in two] == ["F103C8", "L432KC"] and two[0].serial == four[0].serial
    for bad in ("0", "", "F999"):
        with pytest.raises(ValueError):
            sim_boards_from_spec(bad)


# --- reporting ----------------------------------------------------------------------------------------

def test_all_errors_are_reported_together_in_file_order(folder):
    text = BASE.replace('name = "t"', 'name = "t"\nmod = 1') + "[pipeline]\nerase = 'x'\n[retry]\nattempts = 0\n"
    path = write(folder, text)
    with pytest.raises(ConfigErrors) as caught:
        load_config(path)
    errors = caught.value.errors
    assert [e.key for e in errors] == ["batch.mod", "pipeline.erase", "retry.attempts"]
    assert [e.line for e in errors] == [3, 13, 15]
    lines = format_errors(caught.value).splitlines()
    assert len(lines) == 3 and all(str(path) in line for line in lines)
    assert str(caught.value).startswith("3 problems in the batch config")


def test_unreadable_config_file(folder):
    [error] = errors_of(folder / "missing.toml")
    assert isinstance(error, ce.MissingFile) and "missing.toml" in str(error)


def test_source_index_finds_nested_and_inline_keys():
    index = SourceIndex(textwrap.dedent("""\
        [batch]
        name = "x"
        [[slot]]
        label = "a"
        [[slot]]
          probe = "p"   # indented
        [sim]
        [[sim.board]]
        chip = "F1"
        [[sim.board]]
        faults = { a = 1, "b" = [1,
          2] }
        [sim.board.probe_faults]
        usb_stall_on = 3
        text = '''
        [fake]
        '''
        """))
    assert index.line_of("slot[2].probe") == 6
    assert index.line_of("slot[2].label") == 5              # falls back to the table header
    assert index.line_of("sim.board[2].faults.b") == 11
    assert index.line_of("sim.board[2].probe_faults.usb_stall_on") == 14
    assert index.line_of("fake") is None
    assert index.line_of("nowhere.at.all") is None


# --- serial number recipe ----------------------------------------------------------------------------

def test_serial_values_and_encoding():
    counter = SerialNumberSpec(address=0x0800FC00, format="counter", start=998, step=1, template="SN%03d", length=5)
    assert [counter.value_at(i) for i in range(3)] == ["SN998", "SN999", None]   # 6 chars do not fit 5
    assert counter.encode("SN998") == b"SN998"
    padded = SerialNumberSpec(address=0, format="counter", template="%d", length=8, include_uid=True)
    assert padded.encode("42", bytes(range(12))) == b"42" + bytes(6) + bytes(range(12))
    with pytest.raises(ValueError):
        padded.encode("42")
    u32 = SerialNumberSpec(address=0, format="counter", start=0xFFFFFFFE, encoding="u32le", length=4)
    assert [u32.value_at(i) for i in range(3)] == ["4294967294", "4294967295", None]
    assert u32.encode("258") == b"\x02\x01\x00\x00"
    csv_spec = SerialNumberSpec(address=0, format="csv", csv_values=("A", "B"), length=1)
    assert [csv_spec.value_at(i) for i in range(3)] == ["A", "B", None]
    assert csv_spec.source != counter.source


# --- part numbers -------------------------------------------------------------------------------------

@pytest.mark.parametrize("text, name, family, line, pins, size", [
    ("STM32F103C8", "STM32F103C8", "F1", "103", 48, 64 * 1024),
    ("stm32f103c8t6", "STM32F103C8", "F1", "103", 48, 64 * 1024),
    ("F103RC", "STM32F103RC", "F1", "103", 64, 256 * 1024),
    ("STM32F412ZGT6", "STM32F412ZG", "F4", "412", 144, 1024 * 1024),
    ("STM32L432KC", "STM32L432KC", "L4", "432", 32, 256 * 1024),
    ("STM32L4R5ZI", "STM32L4R5ZI", "L4", "4R5", 144, 2048 * 1024),
    ("STM32G0B1RE", "STM32G0B1RE", "G0", "0B1", 64, 512 * 1024),
    ("STM32H743ZI", "STM32H743ZI", "H7", "743", 144, 2048 * 1024),
    ("STM32F030F4P6", "STM32F030F4", "F0", "030", 20, 16 * 1024),
    ("STM32WB55RGV6", "STM32WB55RG", "WB", "55", 64, 1024 * 1024),
    ("STM32F429ZE", "STM32F429ZE", "F4", "429", 144, 512 * 1024),
    ("STM32F746NH", "STM32F746NH", "F7", "746", 216, 1536 * 1024),
])
def test_part_numbers_decode(text, name, family, line, pins, size):
    part = decode_part_number(text)
    assert (part.name, part.family, part.line, part.pins, part.flash_size) == (name, family, line, pins, size)
    assert part.flash_end == 0x08000000 + size


def test_every_flash_size_letter_decodes():
    sizes = {code: decode_part_number(f"STM32F401C{code}").flash_size for code in FLASH_SIZE_CODES}
    assert sizes == {"4": 16384, "6": 32768, "8": 65536, "B": 131072, "Z": 196608, "C": 262144,
                     "D": 393216, "E": 524288, "F": 786432, "G": 1048576, "H": 1572864, "I": 2097152}


@pytest.mark.parametrize("text", ["", "STM32", "STM32F103", "STM32F103C", "STM32F103CX", "ATSAMD21", "F1"])
def test_bad_part_numbers_say_why(text):
    with pytest.raises(PartNumberError) as caught:
        decode_part_number(text)
    assert repr(text) in str(caught.value)


def test_part_helpers():
    part = decode_part_number("STM32F103C8")
    assert part.contains(0x08000000, 0x08010000) and not part.contains(0x08000000, 0x08010001)
    assert part.describe() == "STM32F103C8 (F1, 64 KiB flash)"
    assert normalize_family(" stm32l4 ") == "L4"
    assert format_size(1536 * 1024) == "1.5 MiB" and format_size(1000) == "1000 bytes"


def test_tcp_probe_cannot_be_bound_to_a_usb_port(folder):
    text = BASE.replace('"066DFF000000000000000001"', '"tcp://127.0.0.1:7184/066DFF01"') + 'port = "1-1.2"\n'
    error = only(errors_of(write(folder, text)), ce.ConflictingKeys, "slot[1].port")
    assert "no USB port" in str(error) and error.line == 11
