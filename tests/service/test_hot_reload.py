"""Profiles reload while serving; a broken edit keeps the last good NPC and is reported."""
from __future__ import annotations

import time


def wait_for(predicate, timeout=10.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(0.05)
    return False


def test_broken_edit_keeps_the_last_good_npc_and_reports_the_error(make_server):
    server = make_server()
    path = server.profiles / "brenna.toml"
    good = path.read_text()
    with server.client() as c:
        path.write_text(good.replace('reasoning_effort = "low"', 'reasoning_effort = "extreme"'))
        report = c.reload_profiles()
        assert "brenna" in report["kept"] and "brenna" in report["npcs"]
        (err,) = [e for e in report["errors"] if e["file"].endswith("brenna.toml")]
        assert err["key"] == "reasoning_effort" and err["line"] and "low | medium | high" in err["message"]
        # named within the profiles folder: the answer does not reveal where the server keeps its files
        assert err["file"] == "brenna.toml" and str(server.profiles.resolve()) not in str(report)
        assert list(c.reply("brenna", "Still there?"))[-1]["type"] == "done"
        assert server.engine.npcs["brenna"].reasoning_effort == "low"  # the last good version

        path.write_text(good.replace("Brenna Ironhand", "Brenna the Bold"))
        report = c.reload_profiles()
        assert report["errors"] == [] and "brenna" in report["loaded"]
    assert server.engine.npcs["brenna"].name == "Brenna the Bold"


def test_a_linked_profile_is_named_by_its_link_never_by_where_it_points(make_server, tmp_path):
    # an outside probe: links to /proc/<pid>/environ and to a file outside came back as those paths
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    secret = outside / "secret_settings.txt"
    secret.write_text('reasoning_effort = "hunter2"\napi_secret = "x"\n')  # a key profiles have: its value was quoted
    server = make_server()
    (server.profiles / "linked.toml").symlink_to(secret)
    (server.profiles / "dangling.toml").symlink_to(outside / "missing" / "gone.toml")
    with server.client() as c:
        report = c.reload_profiles()
    files = {e["file"] for e in report["errors"]}
    assert {"linked.toml", "dangling.toml"} <= files, report["errors"]
    assert str(outside) not in str(report) and "hunter2" not in str(report) and "api_secret" not in str(report)
    linked = [e for e in report["errors"] if e["file"] == "linked.toml"]
    assert len(linked) == 1 and "outside the profiles folder" in linked[0]["message"], linked


def test_edits_are_picked_up_without_asking(make_server):
    server = make_server()
    new = server.profiles / "wren.toml"
    new.write_text('name = "Wren"\npersona = "A fletcher."\nfallback_lines = ["Busy."]\n')
    assert wait_for(lambda: "wren" in server.engine.npcs)
    with server.client() as c:
        assert "wren" in [n["id"] for n in c.list_npcs()]
        assert list(c.reply("wren", "Arrows?"))[-1]["type"] == "done"
    new.unlink()
    assert wait_for(lambda: "wren" not in server.engine.npcs)


def test_after_a_profile_changes_its_new_prefix_runs_while_the_server_is_idle(make_server):
    # the first line to an NPC after an edit ran its new prefix whole, mid-serving: a step the worker cannot
    # interrupt, with other replies waiting
    from runtime.context_fit import npc_prefix

    server = make_server()
    path = server.profiles / "brenna.toml"
    with server.client() as c:
        path.write_text(path.read_text().replace("Brenna Ironhand", "Brenna the Bold"))
        assert c.reload_profiles()["errors"] == []
    engine = server.engine
    new = tuple(npc_prefix(engine.tok, engine.npcs["brenna"]))
    assert wait_for(lambda: new in engine.prefixes)


def test_the_server_keeps_answering_while_it_reads_many_changed_profiles(make_server):
    # an outside probe: 1,000 profiles appearing at once held every connection for 4.9 s (health unanswered)
    import msgpack
    import zmq

    server = make_server(profile_poll_s=3600)  # read on request only
    template = (server.profiles / "brenna.toml").read_text()
    for i in range(400):
        (server.profiles / f"extra_{i}.toml").write_text(template)
    with server.client() as designer, server.client() as game:
        reload_id = designer.send("reload_profiles")
        time.sleep(0.05)  # the reload is under way
        health_id = game.send("health")
        poller = zmq.Poller()
        poller.register(designer.socket, zmq.POLLIN)
        poller.register(game.socket, zmq.POLLIN)
        first = dict(poller.poll(30_000))
        assert game.socket in first and designer.socket not in first  # health first, while the reload runs
        health = msgpack.unpackb(game.socket.recv(), raw=False)
        assert health["id"] == health_id and health["status"] == "ok" and health["npcs"] == 4
        report = msgpack.unpackb(designer.socket.recv(), raw=False)
    assert report["id"] == reload_id and report["type"] == "done" and len(report["loaded"]) == 400
    assert "extra_399" in server.engine.npcs


def test_profile_links_in_a_loop_are_each_an_error_not_an_internal_failure(make_server):
    # an outside probe: a profile linking to itself, or two linking to each other, made reload_profiles
    # answer `internal` (Path.resolve raised on the loop)
    server = make_server()
    (server.profiles / "loop.toml").symlink_to(server.profiles / "loop.toml")
    (server.profiles / "ping.toml").symlink_to(server.profiles / "pong.toml")
    (server.profiles / "pong.toml").symlink_to(server.profiles / "ping.toml")
    with server.client() as c:
        report = c.reload_profiles()
        assert {"loop.toml", "ping.toml", "pong.toml"} <= {e["file"] for e in report["errors"]}, report
        assert "brenna" in report["npcs"] and c.health()["status"] == "ok"


def test_a_profiles_folder_renamed_away_keeps_its_npcs_serving_until_it_is_back(make_server):
    # an outside probe: renaming the folder (a checkout, a sync) removed every NPC until it came back
    server = make_server()
    away = server.profiles.with_name("profiles-away")
    with server.client() as c:
        server.profiles.rename(away)
        report = c.reload_profiles()
        assert report["removed"] == [] and "brenna" in report["npcs"]
        assert [e["message"] for e in report["errors"]] == ["the profiles folder is gone; its NPCs keep serving "
                                                            "until it is back"]
        assert list(c.reply("brenna", "Still open?"))[-1]["type"] == "done"
        away.rename(server.profiles)
        report = c.reload_profiles()
        assert report["errors"] == [] and "brenna" in report["npcs"]


def test_a_reload_under_way_when_the_server_stops_is_answered_shutting_down(make_server):
    # a review: a reload_profiles being read as the server stopped got no frame at all
    import msgpack
    import zmq

    server = make_server()
    slow = server.server.profiles.reload

    def slower():
        time.sleep(1.0)
        return slow()
    server.server.profiles.reload = slower
    with server.client() as c:
        c.socket.setsockopt(zmq.RCVTIMEO, 10_000)  # no answer at all: fail, do not hang
        rid = c.send("reload_profiles")
        time.sleep(0.2)  # being read
        server.stop()
        answer = msgpack.unpackb(c.socket.recv(), raw=False)
    assert answer["id"] == rid and answer["type"] == "error" and answer["code"] == "shutting_down"


def test_a_reload_slower_than_the_clients_timeout_is_waited_for_not_sent_again(make_server):
    # the reference client took reload_profiles for a request answered at once: silent past its timeout (a
    # thousand changed files take seconds), it was sent again on a new connection, and then given up on
    server = make_server()
    watcher, reads = server.server.profiles, []
    real = watcher.reload

    def slow_read():
        reads.append(time.monotonic())
        time.sleep(1.5)
        return real()
    watcher.reload = slow_read
    with server.client(timeout_s=0.3, retries=1) as c:
        report = c.reload_profiles()
        assert report["errors"] == [] and "brenna" in report["npcs"]
        assert len(reads) == 1  # read once: the request was not sent again
        assert c.health()["status"] == "ok"
