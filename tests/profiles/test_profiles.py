"""Profile validation: every problem named with file, line, key and what is allowed."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from runtime.profiles import ProfileError, load_profiles, parse_profile

SHIPPED = Path(__file__).resolve().parents[2] / "npc_profiles"

GOOD = """name = "Ada"
persona = "A tinker."
fallback_lines = ["Hm."]
"""


def write(tmp_path, text, name="ada.toml"):
    path = tmp_path / name
    path.write_text(text)
    return path


def problems(path):
    with pytest.raises(ProfileError) as err:
        parse_profile(path)
    return err.value.problems


def test_shipped_profiles_are_valid_and_complete():
    report = load_profiles(SHIPPED)
    assert not report.problems
    assert set(report.npcs) == {"brenna", "aldric", "marta"}
    for npc in report.npcs.values():
        assert npc.knowledge and npc.fallback_lines and npc.sample_lines and npc.actions


def test_file_name_is_the_id_by_default(tmp_path):
    assert parse_profile(write(tmp_path, GOOD)).id == "ada"


def test_every_problem_is_reported_with_line_key_and_allowed_values(tmp_path):
    text = GOOD + 'reasoning_effort = "extreme"\ncolour = "red"\n\n[budget]\ndeadline_ms = "soon"\nmax_final_tokens = 0\n'
    found = {p.key: p for p in problems(write(tmp_path, text))}
    assert set(found) == {"reasoning_effort", "colour", "budget.deadline_ms", "budget.max_final_tokens"}
    assert found["reasoning_effort"].line == 4 and "low | medium | high" in found["reasoning_effort"].message
    assert found["colour"].line == 5 and "unknown key; allowed here:" in found["colour"].message
    assert found["budget.deadline_ms"].line == 8 and "wrong type" in found["budget.deadline_ms"].message
    assert found["budget.max_final_tokens"].line == 9 and "1 to 1024" in found["budget.max_final_tokens"].message
    assert str(found["colour"]).startswith(f"{tmp_path / 'ada.toml'}:5: colour:")


def test_missing_required_keys(tmp_path):
    keys = {p.key for p in problems(write(tmp_path, 'name = "Ada"\n'))}
    assert keys == {"persona", "fallback_lines"}


def test_toml_syntax_error_names_the_line(tmp_path):
    (found,) = problems(write(tmp_path, GOOD + "knowledge = [\"unterminated\n"))
    assert found.line == 4 and "TOML syntax error" in found.message


def test_not_utf8_and_oversized_files(tmp_path):
    (found,) = problems(_bytes(tmp_path, b"name = \"\xff\xfe\"\n"))
    assert "not UTF-8" in found.message
    (found,) = problems(_bytes(tmp_path, b"# " + b"x" * 300_000))
    assert "at most" in found.message


@pytest.mark.parametrize("key", ["a." * 10_000 + "b = 1", "[" + "a." * 10_000 + "b]\nx = 1",
                                 '"a" . ' * 10_000 + '"b" = 1', "x = {" + "a." * 10_000 + "b = 1}"])
def test_a_key_of_thousands_of_dotted_parts_is_refused_before_tomllib_spends_memory_on_it(tmp_path, key):
    # tomllib's memory grows with the square of a dotted key's length: 80,000 parts (160 KB, under the size
    # limit) took a server past 20 GB; 10,000 cost some 400 MB before this check
    import tracemalloc

    tracemalloc.start()
    try:
        (found,) = problems(write(tmp_path, GOOD + "# a.b.c.d.e.f and 'a.b' in a comment or string count for nothing\n"
                                  + key + "\n"))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert found.line == 5 and "10001 dotted parts" in found.message and "at most 32" in found.message
    assert peak < 20 << 20, peak


def test_dotted_keys_and_floats_a_profile_really_holds_still_read(tmp_path):
    text = GOOD + 'min_confidence = 0.80\nstyle.description = "Curt. Says little."\n"budget" . "deadline_ms" = 900\n'
    npc = parse_profile(write(tmp_path, text))
    assert npc.min_confidence == 0.80 and npc.deadline_ms == 900 and npc.style == "Curt. Says little."


def test_a_profile_saved_by_a_windows_editor_with_a_byte_order_mark_and_crlf_reads(tmp_path):
    # an outside probe: the BOM was "TOML syntax error: Invalid statement (at line 1, column 1)"
    npc = parse_profile(_bytes(tmp_path, b"\xef\xbb\xbf" + GOOD.replace("\n", "\r\n").encode()))
    assert npc.name == "Ada" and npc.fallback_lines == ("Hm.",)
    (found,) = problems(_bytes(tmp_path, b"\xef\xbb\xbf" + (GOOD + 'colour = "red"\n').encode()))
    assert found.line == 4 and found.key == "colour"  # lines count as the designer sees them


def _bytes(tmp_path, data):
    path = tmp_path / "bin.toml"
    path.write_bytes(data)
    return path


def test_duplicate_ids_are_refused(tmp_path):
    write(tmp_path, GOOD + 'id = "same"\n', "a.toml")
    write(tmp_path, GOOD + 'id = "same"\n', "b.toml")
    report = load_profiles(tmp_path)
    assert list(report.npcs) == ["same"]
    assert any("already used" in p.message for p in report.problems)


def test_lint_command_exit_codes_and_output(tmp_path):
    write(tmp_path, GOOD)
    ok = subprocess.run([sys.executable, "-m", "runtime.cli", "lint", str(tmp_path)], capture_output=True, text=True)
    assert ok.returncode == 0 and "1 NPC profile(s) OK (ada); 0 problem(s)" in ok.stdout
    write(tmp_path, GOOD + 'reasoning_effort = "max"\n', "bad.toml")
    bad = subprocess.run([sys.executable, "-m", "runtime.cli", "lint", str(tmp_path)], capture_output=True, text=True)
    assert bad.returncode == 1 and "bad.toml:4: reasoning_effort:" in bad.stdout


def test_lint_refuses_a_profile_named_as_a_windows_device(tmp_path):
    """aux.toml loads on Linux, but no Windows machine can hold it: the studio's designers could not check it
    out, nor a player's install write it. Lint says so (the studio refused to create one; a file copied in
    was passed)."""
    write(tmp_path, GOOD)
    write(tmp_path, GOOD, "aux.toml")
    out = subprocess.run([sys.executable, "-m", "runtime.cli", "lint", str(tmp_path)], capture_output=True, text=True)
    assert out.returncode == 1, out.stdout
    assert "aux.toml: Windows reserves the name AUX for a device" in out.stdout and "rename it" in out.stdout
    assert "1 problem(s)" in out.stdout


def test_max_input_tokens_is_read_and_checked(tmp_path):
    assert parse_profile(write(tmp_path, GOOD)).max_input_tokens == 256
    assert parse_profile(write(tmp_path, GOOD + "[budget]\nmax_input_tokens = 64\n")).max_input_tokens == 64
    (bad,) = problems(write(tmp_path, GOOD + "[budget]\nmax_input_tokens = 0\n"))
    assert bad.key == "budget.max_input_tokens" and bad.line == 5 and "1 to 2000" in bad.message


def test_unsure_settings_are_checked_and_read(tmp_path):
    npc = parse_profile(write(tmp_path, GOOD + 'min_confidence = 0.9\nunsure_lines = ["No idea, friend."]\n'))
    assert npc.min_confidence == 0.9 and npc.unsure_lines == ("No idea, friend.",)
    assert parse_profile(write(tmp_path, GOOD)).min_confidence == 0.0  # off unless a designer asks
    found = {p.key: p for p in problems(write(tmp_path, GOOD + 'min_confidence = 1.5\nunsure_lines = []\n'))}
    assert set(found) == {"min_confidence", "unsure_lines"}
    assert found["min_confidence"].line == 4 and "0 (off) up to, not including, 1" in found["min_confidence"].message
    assert found["unsure_lines"].line == 5 and "1 to 32 strings" in found["unsure_lines"].message


def test_lines_the_runtime_says_as_written_must_be_printable_and_say_something(tmp_path):
    """A fallback or unsure line goes to the game as the designer wrote it: a control character (a stray
    escape, a NUL a C string would end at) or a line of spaces is refused with where and how to fix it."""
    # a zero-width space alone passed, and was said invisibly (an outside probe)
    for text, line in (('fallback_lines = ["Hm.", "Bad\\u0000line"]\n', 3), ('fallback_lines = ["   "]\n', 3),
                       ('fallback_lines = ["\\u200b"]\n', 3), ('fallback_lines = ["\\u200b \\u2060\\u0301"]\n', 3),
                       ('fallback_lines = ["Hm."]\nunsure_lines = ["Er\\u001b[0m"]\n', 4)):
        (bad,) = problems(write(tmp_path, 'name = "Ada"\npersona = "A tinker."\n' + text))
        assert bad.line == line and "no control characters" in bad.message, (text, bad)
    npc = parse_profile(write(tmp_path, GOOD.replace('["Hm."]', '["Hm.\\nWell.", "\\tTabbed."]')))
    assert npc.fallback_lines == ("Hm.\nWell.", "\tTabbed.")  # tabs and line breaks are text


def test_min_confidence_needs_reasoning_to_judge(tmp_path):
    text = GOOD + 'min_confidence = 0.8\n\n[budget]\nmax_reasoning_tokens = 0\n'
    (found,) = problems(write(tmp_path, text))
    assert found.key == "min_confidence" and found.line == 4 and "max_reasoning_tokens = 0" in found.message


def test_a_problem_in_the_second_action_names_its_own_lines(tmp_path):
    """An outside review: every [[actions]] entry's problems were reported at the first entry's lines."""
    text = GOOD + ('[[actions]]\nname = "open_shop"\ndescription = "Opens the shop."\n\n'
                   '[[actions]]\nname = "9bad"\ndescription = ""\n\n[[actions]]\nname = "rent_room"\n')
    found = sorted((p.key, p.line) for p in problems(write(tmp_path, text)))
    # the second entry's name and description at lines 9 and 10; the third's missing description at its header (12)
    assert found == [("actions.description", 10), ("actions.description", 12), ("actions.name", 9)]


def test_a_folder_that_vanishes_as_it_is_listed_does_not_read_as_every_profile_deleted(tmp_path):
    # a review: the folder checked, then gone before its files were listed, removed every NPC
    from runtime.profile_registry import ProfileRegistry

    folder = tmp_path / "profiles"
    folder.mkdir()
    write(folder, GOOD)
    registry = ProfileRegistry(folder)
    assert "ada" in registry.reload().loaded
    listing = registry._stamps

    def gone_while_listing():
        folder.rename(tmp_path / "away")
        return listing()
    registry._stamps = gone_while_listing
    result = registry.reload()
    assert result.removed == [] and "ada" in registry.npcs


def test_an_edit_that_takes_another_npcs_id_is_reported_kept_like_any_broken_edit(tmp_path):
    # an outside probe: the NPC kept serving its last good version, but reload_profiles' `kept` left it out
    import time

    from runtime.profile_registry import ProfileRegistry

    write(tmp_path, GOOD + 'id = "ada"\n', "a.toml")
    write(tmp_path, GOOD + 'id = "bea"\n', "b.toml")
    registry = ProfileRegistry(tmp_path)
    assert sorted(registry.reload().loaded) == ["ada", "bea"]
    time.sleep(0.01)
    write(tmp_path, GOOD + 'id = "ada"  # taken from a.toml\n', "b.toml")
    result = registry.reload()
    assert result.kept == ["bea"] and "bea" in registry.npcs and result.removed == []


@pytest.mark.parametrize("name", ["Bren\\u0000na", "Bren\\nna", "\\u200b", "   ", "Bren\\u202ena"])
def test_a_name_games_could_not_show_as_it_is_is_refused_naming_its_line(tmp_path, name):
    # an outside probe: a NUL in a name was accepted (list_npcs hands it to games; C strings end there)
    (found,) = problems(write(tmp_path, GOOD.replace('name = "Ada"', f'name = "{name}"')))
    assert found.key == "name" and found.line == 1 and "control" in found.message


def test_a_name_with_accents_spaces_and_punctuation_loads(tmp_path):
    npc = parse_profile(write(tmp_path, GOOD.replace('name = "Ada"', "name = \"Éowyn O'Neil-Brand, the 2nd\"")))
    assert npc.name == "Éowyn O'Neil-Brand, the 2nd"
