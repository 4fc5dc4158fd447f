// Parley Studio: edit an NPC's profile (linted as you type), talk to it through a real Parley server,
// run its behaviour tests. Plain JavaScript, no build step.
"use strict";

const $ = (id) => document.getElementById(id);
const state = { file: null, npc: null, mtime: null, dirty: false, lintTimer: null, rows: [] };

async function api(path, body) {
  const options = body === undefined ? {} : {
    method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) };
  const response = await fetch(path, options);
  const value = await response.json();
  if (!response.ok) throw new Error(value.error || response.statusText);
  return value;
}

// ---- NPCs ------------------------------------------------------------------------------------------

function renderNpcs(live) {
  state.rows = live.files;
  $("serving").textContent = `serving: ${live.serving.join(", ") || "none"}`;
  const list = $("npcs");
  list.replaceChildren(...live.files.map((row) => {
    const item = document.createElement("li");
    item.dataset.file = row.file;
    item.className = (row.problems.length ? "broken" : "") + (row.file === state.file ? " selected" : "");
    item.innerHTML = "<span class='name'></span><span class='status'></span>";
    item.querySelector(".name").textContent = row.npc + (row.npc === row.file.replace(/\.toml$/, "") ? "" : ` (${row.file})`);
    item.querySelector(".status").textContent = row.status;
    item.addEventListener("click", () => select(row.file));
    return item;
  }));
}

async function refreshNpcs() {
  try { renderNpcs(await api("/api/npcs")); } catch (e) { $("serving").textContent = `server: ${e.message}`; }
}

async function select(file) {
  if (state.dirty && file !== state.file && !confirm("Leave this profile? Its unsaved edits are lost.")) return;
  let profile;
  try { profile = await api(`/api/profile?file=${encodeURIComponent(file)}`); } catch (e) {
    $("save-status").textContent = `cannot open ${file}: ${e.message}`;
    return;
  }
  const row = state.rows.find((r) => r.file === file) || {};
  Object.assign(state, { file, npc: row.npc || file.replace(/\.toml$/, ""), mtime: profile.mtime_ns, dirty: false });
  if (row.deadline_ms) {  // the NPC's own deadline until the designer moves the slider
    $("deadline").value = row.deadline_ms;
    $("deadline-label").textContent = `${$("deadline").value} ms`;
  }
  $("file-name").textContent = file;
  $("source").value = profile.text;
  for (const id of ["source", "save", "send", "run-tests"]) $(id).disabled = false;
  $("save-status").textContent = "";
  $("log").replaceChildren();
  $("tests").tBodies[0].replaceChildren();
  document.querySelectorAll("#npcs li").forEach((li) => li.classList.toggle("selected", li.dataset.file === file));
  renderGutter([]);
  lint();
}

// ---- editing -----------------------------------------------------------------------------------------

function renderGutter(problems) {
  const bad = new Map();
  for (const p of problems) if (p.line) bad.set(p.line, [...(bad.get(p.line) || []), `${p.key}: ${p.message}`]);
  const lines = $("source").value.split("\n").length;
  const gutter = $("gutter");
  gutter.replaceChildren(...Array.from({ length: lines }, (_, i) => {
    const span = document.createElement("span");
    span.textContent = `${i + 1}\n`;
    if (bad.has(i + 1)) {
      span.className = "bad";
      span.title = bad.get(i + 1).join("\n");
    }
    return span;
  }));
  gutter.scrollTop = $("source").scrollTop;
}

function renderProblems(problems) {
  renderGutter(problems);
  const list = $("problems");
  if (!problems.length) {
    const ok = document.createElement("li");
    ok.className = "ok";
    ok.textContent = "No problems.";
    list.replaceChildren(ok);
    return;
  }
  list.replaceChildren(...problems.map((p) => {
    const item = document.createElement("li");
    item.className = "problem";
    item.dataset.line = p.line || "";
    item.textContent = `${p.line ? `line ${p.line}: ` : ""}${p.key ? `${p.key}: ` : ""}${p.message}`;
    item.addEventListener("click", () => goToLine(p.line));
    return item;
  }));
}

function goToLine(line) {
  if (!line) return;
  const source = $("source");
  const lines = source.value.split("\n");
  const start = lines.slice(0, line - 1).reduce((n, l) => n + l.length + 1, 0);
  source.focus();
  source.setSelectionRange(start, start + lines[line - 1].length);
}

async function lint() {
  if (!state.file) return;
  const text = $("source").value;
  try {
    const result = await api("/api/lint", { file: state.file, text });
    if ($("source").value === text) renderProblems(result.problems);
  } catch (e) { renderProblems([{ line: null, key: "", message: e.message }]); }
}

async function save() {
  $("save-status").textContent = "saving…";
  try {
    const saved = await api("/api/save", { file: state.file, text: $("source").value, mtime_ns: state.mtime });
    Object.assign(state, { mtime: saved.mtime_ns, dirty: false });
    renderProblems(saved.problems);
    renderNpcs(saved);
    const row = saved.files.find((f) => f.file === state.file);
    $("save-status").textContent = `saved: ${row ? row.status : "written"}`;
  } catch (e) { $("save-status").textContent = `not saved: ${e.message}`; }
}

async function watchDisk() {  // an edit in another editor appears here (or is announced, if this one has edits)
  if (!state.file) return;
  try {
    const profile = await api(`/api/profile?file=${encodeURIComponent(state.file)}`);
    if (profile.mtime_ns !== state.mtime) {
      state.mtime = profile.mtime_ns;
      if (state.dirty) {
        $("save-status").textContent = "the file changed on disk; saving here overwrites it";
      } else {
        $("source").value = profile.text;
        $("save-status").textContent = "reloaded: the file changed on disk";
        lint();
      }
    }
  } catch (e) { /* the file went away: the NPC list says so */ }
}

// ---- talking -------------------------------------------------------------------------------------------

function parseState(text) {
  const values = {};
  for (const line of text.split("\n")) {
    const at = line.indexOf("=");
    if (at > 0) values[line.slice(0, at).trim()] = line.slice(at + 1).trim();
  }
  return values;
}

function line(parent, className, text) {
  const div = document.createElement("div");
  div.className = className;
  div.textContent = text;
  parent.appendChild(div);
  return div;
}

async function talk(event) {
  event.preventDefault();
  const text = $("line").value.trim();
  if (!text || !state.file || $("send").disabled) return;
  $("line").value = "";
  $("send").disabled = true;  // one reply at a time: the next line waits for this one
  const turn = line($("log"), "turn", "");
  line(turn, "you", `${$("speaker").value || "Player"}: ${text}`);
  const npc = line(turn, "npc", "");
  npc.dataset.deltas = "0";
  const body = { npc: state.npc, text, speaker: $("speaker").value,
                 session: $("session").value, state: parseState($("state").value),
                 deadline_ms: Number($("deadline").value), reasoning: $("show-reasoning").checked };
  try {
    await stream(turn, npc, body);
  } catch (e) {
    line(turn, "error", `could not talk: ${e.message}`);
  } finally {
    $("send").disabled = false;
  }
}

async function stream(turn, npc, body) {
  const response = await fetch("/api/talk", { method: "POST", headers: { "Content-Type": "application/json" },
                                              body: JSON.stringify(body) });
  if (!response.ok) throw new Error((await response.json()).error || response.statusText);
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buffer += decoder.decode(value, { stream: true });
    let end;
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      const chunk = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      if (chunk.startsWith("data: ")) show(turn, npc, JSON.parse(chunk.slice(6)));
    }
    $("log").scrollTop = $("log").scrollHeight;
  }
}

function show(turn, npc, frame) {
  if (frame.type === "delta") {
    npc.textContent += frame.text;
    npc.dataset.deltas = String(Number(npc.dataset.deltas) + 1);
  } else if (frame.type === "action") {
    line(turn, "action", `action: ${frame.name} ${JSON.stringify(frame.args)}`);
  } else if (frame.type === "done") {
    npc.textContent = frame.text;
    const s = frame.stats;
    const flags = [s.reasoning_cut && "reasoning cut", s.fallback_used && "fallback line",
                   s.finish_reason === "unsure" && "unsure line (below min_confidence)"].filter(Boolean);
    // confidence: what the profile's min_confidence is held against (docs/profiles.md, "Unsure replies")
    line(turn, "stats", `first words ${s.ttft_ms === null ? "–" : Math.round(s.ttft_ms) + " ms"} · total ` +
         `${Math.round(s.total_ms)} ms · reasoning ${s.reasoning_tokens} tokens` +
         (s.confidence === null || s.confidence === undefined ? "" : ` · confidence ${s.confidence.toFixed(2)}`) +
         ` · deadline ${s.deadline_met ? "met" : "MISSED"} (${Math.round(s.deadline_ms)} ms)` +
         (flags.length ? ` · ${flags.join(", ")}` : ""));
  } else if (frame.type === "reasoning") {
    line(turn, "reasoning", `reasoning (never sent to games): ${frame.text || "(none)"}`);
  } else if (frame.type === "error") {
    line(turn, "error", `error ${frame.code}: ${frame.message}`);
  }
}

// ---- behaviour tests --------------------------------------------------------------------------------------

async function runTests() {
  $("tests-status").textContent = "running… (each case several times: this can take a while)";
  $("run-tests").disabled = true;
  try {
    const { results } = await api("/api/tests", { file: state.file });
    $("tests").tBodies[0].replaceChildren(...results.map((r) => {
      const row = document.createElement("tr");
      for (const [text, cls] of [[r.line ?? "", ""], [r.say, ""],
                                 [`${r.passed}/${r.runs} (need ${Math.round(r.pass_rate * 100)}%)`, ""],
                                 [r.ok ? "PASS" : "FAIL", r.ok ? "pass" : "fail"], [r.failures.join("; "), "why"]]) {
        const cell = document.createElement("td");
        cell.textContent = text;
        if (cls) cell.className = cls;
        row.appendChild(cell);
      }
      return row;
    }));
    const passed = results.filter((r) => r.ok).length;
    $("tests-status").textContent = results.length ? `${passed} of ${results.length} passed (the saved file's cases)`
                                                   : "no test cases in the saved file ([[tests]])";
  } catch (e) { $("tests-status").textContent = `could not run: ${e.message}`; }
  $("run-tests").disabled = false;
}

// ---- wiring ---------------------------------------------------------------------------------------------------

$("source").addEventListener("input", () => {
  state.dirty = true;
  renderGutter([]);
  clearTimeout(state.lintTimer);
  state.lintTimer = setTimeout(lint, 250);
});
$("source").addEventListener("scroll", () => { $("gutter").scrollTop = $("source").scrollTop; });
$("save").addEventListener("click", save);
$("say").addEventListener("submit", talk);
$("run-tests").addEventListener("click", runTests);
$("deadline").addEventListener("input", () => { $("deadline-label").textContent = `${$("deadline").value} ms`; });
window.addEventListener("beforeunload", (event) => { if (state.dirty) event.preventDefault(); });
setInterval(watchDisk, 1500);
setInterval(() => { if (!state.dirty) refreshNpcs(); }, 3000);
refreshNpcs();
