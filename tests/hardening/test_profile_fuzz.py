"""Broken profile files: always a clear ProfileError, never a crash, and the last good NPC stays."""
from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from runtime.profile_registry import ProfileRegistry
from runtime.profiles import ProfileError, parse_profile

GOOD = 'name = "Ada"\npersona = "A tinker."\nfallback_lines = ["Hm."]\n'
FRAGMENTS = ['name = ', '"Ada"', "persona = 3", "[budget]", "[[actions]]", "deadline_ms = -1", "= =", '"""',
             "knowledge = [1, 2]", "[style]\nsample_lines = 'x'", "\x00", "é", "[sampling]\ntop_p = 2",
             "reasoning_effort = 'high'", "fallback_lines = []", "x" * 5000, "[budget]\n[budget]", "id = 'Bad Id'"]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.sampled_from(FRAGMENTS) | st.text(max_size=40), max_size=12))
def test_any_text_gives_a_profile_or_a_clear_error(tmp_path, parts):
    path = tmp_path / "fuzz.toml"
    path.write_text(GOOD + "\n".join(parts), encoding="utf-8", errors="surrogatepass")
    try:
        parse_profile(path)
    except ProfileError as exc:
        assert exc.problems and all(p.file == str(path) and p.message for p in exc.problems)


def test_last_good_npc_survives_a_file_turning_into_garbage_or_a_folder(tmp_path):
    path = tmp_path / "ada.toml"
    path.write_text(GOOD)
    registry = ProfileRegistry(tmp_path)
    assert registry.reload().loaded == ["ada"]
    path.write_bytes(b"\xff\x00 garbage = = =")
    result = registry.reload()
    assert result.kept == ["ada"] and "ada" in registry.npcs and result.problems
    path.unlink()
    path.mkdir()  # replaced by something that cannot be read as a file
    result = registry.reload()
    assert result.kept == ["ada"] and "ada" in registry.npcs and not result.removed  # the last good one serves
    assert [p.file for p in result.problems] == [str(path)]
    assert "not a regular file (a folder" in result.problems[0].message


def test_last_good_npc_survives_its_file_turning_into_a_symlink_loop_or_a_dangling_link(tmp_path):
    """An outside probe: a file whose stat fails (a link to itself, a link to nothing) was taken for a
    deleted one, so the NPC went away instead of keeping its last good version."""
    path = tmp_path / "ada.toml"
    path.write_text(GOOD)
    registry = ProfileRegistry(tmp_path)
    assert registry.reload().loaded == ["ada"]
    for target in (path.name, "nowhere.toml"):
        path.unlink()
        path.symlink_to(target)
        result = registry.reload()
        assert result.kept == ["ada"] and "ada" in registry.npcs and not result.removed, target
        assert [p.file for p in result.problems] == [str(path)]
    path.unlink()
    path.write_text(GOOD.replace("A tinker.", "A mender."))  # fixed: the new version loads
    result = registry.reload()
    assert result.loaded == ["ada"] and registry.npcs["ada"].persona == "A mender." and not result.problems
    path.unlink()  # really gone: the NPC goes too
    assert registry.reload().removed == ["ada"] and "ada" not in registry.npcs


def test_a_file_refused_for_a_taken_id_loads_once_the_id_is_free(tmp_path):
    """An outside review: b.toml claiming a.toml's id was refused, and when a.toml was deleted the id's NPC went
    away for good: b.toml's own stamp never changed, so no scan read it again."""
    (tmp_path / "a.toml").write_text(GOOD)
    registry = ProfileRegistry(tmp_path)
    assert registry.reload().loaded == ["a"]
    (tmp_path / "b.toml").write_text('id = "a"\n' + GOOD.replace("A tinker.", "A mender."))
    result = registry.reload()
    assert [(p.key, p.line) for p in result.problems] == [("id", 1)] and registry.npcs["a"].persona == "A tinker."
    (tmp_path / "a.toml").unlink()
    result = registry.reload()
    assert result.loaded == ["a"] and not result.removed and not result.problems
    assert registry.npcs["a"].persona == "A mender." and not registry.has_changes()


def test_a_file_name_with_a_line_break_cannot_forge_a_log_line(tmp_path, caplog):
    # an outside probe: such a name was written to the server log as it is, a line of its own
    (tmp_path / "x\nCRITICAL all NPCs deleted.toml").write_text("name = 3\n")
    with caplog.at_level("WARNING", logger="runtime.profile_registry"):
        ProfileRegistry(tmp_path).reload()
    lines = [r.getMessage() for r in caplog.records if "profile problem" in r.getMessage()]
    assert lines and all("\n" not in line for line in lines)
    assert any("x\\x0aCRITICAL all NPCs deleted.toml" in line for line in lines), lines
