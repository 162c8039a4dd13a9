"""The look of the HTML report (`textmend_client.report`): its style sheet, one colour per
category, the small script for hovering and filtering, and the Content-Security-Policy that
lets the page load nothing else.
"""

from __future__ import annotations

from collections.abc import Mapping

# One hue per category, so that the same kind of damage looks the same everywhere: degrees
# on the HSL colour wheel, chosen by hand to go round it in the proto's order of categories,
# so that neighbours differ (repeated_block, last in the proto, took 20; an unknown category
# shares undecodable's red).
HUES: Mapping[str, int] = {
    "undecodable": 0,
    "encoding": 30,
    "mojibake": 48,
    "cjk_phase_slip": 90,
    "cjk_wrong_codec": 130,
    "ruby_leak": 165,
    "markup_leak": 195,
    "control_char": 215,
    "replacement_char": 240,
    "private_use": 265,
    "noncharacter": 285,
    "stray_bom": 305,
    "zero_width": 325,
    "bidi_control": 345,
    "repeated_block": 20,
    "unknown": 0,
}

CSS = """
:root { color-scheme: light; --fg: #1d1f23; --muted: #6a7079; --line: #d9dce1; }
* { box-sizing: border-box; }
body { font: 14px/1.45 system-ui, sans-serif; color: var(--fg); margin: 0 auto;
  padding: 1.5rem; max-width: 1600px; background: #fbfbfc; }
h1 { font-size: 1.5rem; margin: 0 0 1rem; }
h2 { font-size: 1.15rem; margin: 0; overflow-wrap: anywhere; }
table { border-collapse: collapse; margin: .25rem 0 1rem; }
th, td { text-align: left; padding: .2rem .7rem .2rem 0; border-bottom: 1px solid var(--line);
  vertical-align: top; }
td.n, th.n { text-align: right; font-variant-numeric: tabular-nums; }
.tiles { display: flex; gap: .75rem; flex-wrap: wrap; margin-bottom: 1rem; }
.tile { border: 1px solid var(--line); border-radius: 6px; padding: .5rem .9rem;
  background: #fff; min-width: 7rem; }
.tile b { display: block; font-size: 1.4rem; }
.summary-grid { display: flex; gap: 2.5rem; flex-wrap: wrap; }
.verdict { display: inline-block; padding: 0 .45rem; border-radius: 4px; font-weight: 600;
  font-size: .85rem; }
.v-clean { background: #dff3e4; color: #155724; }
.v-repaired { background: #dde9fb; color: #12407a; }
.v-suspect { background: #fff0c2; color: #6b4a00; }
.v-unreadable, .v-failed, .v-unknown { background: #fbdada; color: #7a1010; }
.doc { background: #fff; border: 1px solid var(--line); border-radius: 8px;
  padding: 1rem; margin: 1.25rem 0; }
.meta { color: var(--muted); margin: .3rem 0 .8rem; overflow-wrap: anywhere; }
.note { color: var(--muted); font-style: italic; margin: .5rem 0; }
.warn { color: #7a1010; }
.cmp { display: grid; grid-template-columns: 1fr 1fr; gap: 0 1rem; }
.colhead { font-weight: 600; color: var(--muted); padding-bottom: .25rem; }
.side { margin: 0; padding: .35rem .5rem; background: #f6f7f9; border-radius: 4px;
  font: 13px/1.55 ui-monospace, SFMono-Regular, Menlo, Consolas, monospace;
  white-space: pre-wrap; overflow-wrap: anywhere; unicode-bidi: isolate; }
.gap { grid-column: 1 / -1; text-align: center; color: var(--muted); font-size: .85rem;
  padding: .3rem 0; }
.ln::before { content: attr(data-n); display: inline-block; min-width: 3.5ch;
  margin-right: 1ch; color: #9aa0a8; text-align: right; user-select: none; }
.ln.cont::before { content: "…" attr(data-n); }
.edit { text-decoration: none; border-radius: 3px; padding: 0 1px; unicode-bidi: isolate; }
del.edit { text-decoration: line-through; text-decoration-thickness: 1px; }
.edit.empty::after { content: "∅"; font-size: .8em; opacity: .7; }
.find { border: 1.5px dashed; border-radius: 3px; unicode-bidi: isolate; }
.find:empty::after { content: "◇"; font-size: .8em; }
.inv { display: inline-block; font-size: .75em; line-height: 1.2; padding: 0 2px;
  margin: 0 1px; border: 1px solid #b3261e; border-radius: 3px; color: #b3261e;
  background: #fff; unicode-bidi: isolate; direction: ltr; }
.elided { color: var(--muted); font-style: italic; }
.hot { outline: 2px solid #111; outline-offset: 1px; }
.swatch { display: inline-block; width: .9em; height: .9em; border-radius: 2px;
  vertical-align: -1px; margin-right: .35em; }
.find-swatch { background: transparent !important; border: 1.5px dashed; }
details { margin-top: .75rem; }
summary { cursor: pointer; color: var(--muted); }
.problems td { font-size: 13px; }
.problems code { font: 12px ui-monospace, monospace; overflow-wrap: anywhere; }
label.filter { margin-right: .8rem; white-space: nowrap; }
body.only-problems .doc.is-clean { display: none; }
"""

SCRIPT = """
(function () {
  "use strict";
  var root = document.documentElement;
  // Hovering an edit or finding outlines it in both columns.
  var hot = [];
  document.addEventListener("mouseover", function (event) {
    var target = event.target.closest ? event.target.closest("[data-k]") : null;
    hot.forEach(function (el) { el.classList.remove("hot"); });
    hot = [];
    if (!target) { return; }
    var key = target.getAttribute("data-k");
    document.querySelectorAll('[data-k="' + key + '"]').forEach(function (el) {
      el.classList.add("hot");
      hot.push(el);
    });
  });
  // Category filters: unticking a category takes its colour off every highlight.
  document.querySelectorAll("input[data-cat]").forEach(function (box) {
    box.addEventListener("change", function () {
      document.body.classList.toggle("off-" + box.getAttribute("data-cat"), !box.checked);
    });
  });
  var only = document.getElementById("only-problems");
  if (only) {
    only.addEventListener("change", function () {
      document.body.classList.toggle("only-problems", only.checked);
    });
  }
  root.setAttribute("data-js", "ready");
})();
"""

# No network, no plugins, no frames: only the inline style and script.
CSP = (
    "default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; "
    "img-src data:; base-uri 'none'; form-action 'none'"
)


def category_css() -> str:
    """The rules that colour each category (`HUES`): edits filled, findings outlined, and
    nothing for a category whose filter box is unticked."""
    rules = []
    for name, hue in HUES.items():
        rules.append(
            f".edit.c-{name}, .swatch.c-{name} {{ background: hsl({hue} 85% 80%); }}\n"
            f"ins.edit.c-{name} {{ background: hsl({hue} 75% 72%); }}\n"
            f".find.c-{name}, .find-swatch.c-{name} {{ border-color: hsl({hue} 70% 38%); }}\n"
            f"body.off-{name} .c-{name} {{ background: transparent; border-color: transparent; }}"
        )
    return "\n".join(rules)
