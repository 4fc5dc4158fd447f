"""A designer's session on the studio page, in a real browser: open an NPC, break its profile and see the
problem at its line, fix it and see the NPC reload, see an edit made on disk, talk and see the streamed
reply with its stats and the hidden reasoning, and run the NPC's behaviour tests. The README's picture of
the page is this test's screenshot: PARLEY_STUDIO_SCREENSHOT=docs/studio.png .venv/bin/pytest tests/studio"""
from __future__ import annotations

import os
import re
import time
from pathlib import Path

from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

WAIT_S = 30


def wait_for(driver, condition, what: str):
    return WebDriverWait(driver, WAIT_S, poll_frequency=0.1).until(lambda d: condition(d), message=what)


def set_source(driver, text: str) -> None:
    """Type into the editor as a designer would (the page lints on input)."""
    driver.execute_script("const s = document.getElementById('source'); s.value = arguments[0];"
                          "s.dispatchEvent(new Event('input'));", text)


def texts(driver, selector: str) -> list[str]:
    """The text of every element a selector finds, read at one moment (the page re-renders its lists)."""
    return driver.execute_script("return [...document.querySelectorAll(arguments[0])].map(e => e.textContent)",
                                 selector)


def npc_status(driver, file: str) -> str:
    found = texts(driver, f"#npcs li[data-file='{file}'] .status")
    return found[0] if found else ""


def test_a_designer_edits_talks_and_tests_an_npc(studio, browser):
    url, folder = studio
    original = (folder / "brenna.toml").read_text()
    browser.get(url)
    wait_for(browser, lambda d: npc_status(d, "brenna.toml") == "loaded", "the NPC list with brenna loaded")
    browser.find_element(By.CSS_SELECTOR, "#npcs li[data-file='brenna.toml']").click()
    wait_for(browser, lambda d: "Brenna Ironhand" in d.find_element(By.ID, "source").get_property("value"),
             "brenna's profile in the editor")

    # a broken edit: the problem appears at its line as it is typed, before anything is saved
    broken = original.replace("deadline_ms = 2500", 'deadline_ms = "soon"')
    line = next(i for i, text in enumerate(broken.splitlines(), 1) if "deadline_ms =" in text)
    set_source(browser, broken)
    problem = wait_for(browser, lambda d: [p for p in texts(d, "#problems li.problem") if "budget.deadline_ms" in p],
                       "the inline problem")[0]
    assert f"line {line}:" in problem and "wrong type" in problem
    assert [t.strip() for t in texts(browser, "#gutter .bad")] == [str(line)]
    assert (folder / "brenna.toml").read_text() == original  # nothing written yet

    browser.find_element(By.ID, "save").click()  # saved broken: the last good version keeps serving
    wait_for(browser, lambda d: npc_status(d, "brenna.toml") == "broken, last good version serving",
             "brenna marked broken, still serving")
    assert 'deadline_ms = "soon"' in (folder / "brenna.toml").read_text()

    fixed = original.replace("Good steel.", "Good steel, fairly priced.")
    set_source(browser, fixed)
    wait_for(browser, lambda d: texts(d, "#problems li") == ["No problems."], "no problems")
    browser.find_element(By.ID, "save").click()
    wait_for(browser, lambda d: npc_status(d, "brenna.toml") == "loaded", "brenna loaded again")
    assert (folder / "brenna.toml").read_text() == fixed

    # an edit made in another editor appears on the page
    on_disk = fixed.replace("fairly priced", "the best in Ashford")
    time.sleep(0.02)  # a new modification time
    (folder / "brenna.toml").write_text(on_disk)
    wait_for(browser, lambda d: "the best in Ashford" in d.find_element(By.ID, "source").get_property("value"),
             "the edit made on disk")

    # talk: the reply streams in, with its stats; the hidden reasoning only when asked for
    browser.find_element(By.ID, "show-reasoning").click()
    browser.find_element(By.ID, "line").send_keys("How much for an iron sword?")
    browser.find_element(By.ID, "send").click()
    wait_for(browser, lambda d: texts(d, "#log .turn .reasoning"), "a reply with its reasoning")
    assert "40" in texts(browser, "#log .turn .npc")[0]
    deltas = browser.execute_script("return Number(document.querySelector('#log .turn .npc').dataset.deltas)")
    assert deltas >= 1  # it streamed in (whole sentences), before the done frame
    stats = texts(browser, "#log .turn .stats")[0]
    assert "first words" in stats and "deadline met" in stats and "reasoning" in stats
    assert re.search(r"confidence (0\.\d\d|1\.00)", stats)  # what the profile's min_confidence is held against
    assert "never sent to games" in texts(browser, "#log .turn .reasoning")[0]

    # an action the NPC takes shows as the game would get it
    browser.find_element(By.ID, "line").send_keys("Can I see your wares?")
    browser.find_element(By.ID, "send").click()
    wait_for(browser, lambda d: len(texts(d, "#log .turn .stats")) == 2, "the second reply")
    assert texts(browser, "#log .turn .action") == ["action: open_shop {}"]

    # behaviour tests: the NPC's own cases, with pass rates
    browser.find_element(By.ID, "run-tests").click()
    wait_for(browser, lambda d: "passed" in texts(d, "#tests-status")[0], "the test results")
    assert texts(browser, "#tests-status") == ["4 of 4 passed (the saved file's cases)"]
    assert texts(browser, "#tests tbody td.pass") == ["PASS"] * 4

    shot = Path(os.environ.get("PARLEY_STUDIO_SCREENSHOT") or folder.parent / "studio.png")
    browser.save_screenshot(str(shot))
    assert shot.stat().st_size > 10_000
