"""The atlas's page: one static, self-contained HTML file (no network, no libraries).

It shows, from the cell records that `atlas.build_atlas` wrote:

- a grid per source (rows: layers, columns: the whole layer then each map), each
  cell a spectrogram thumbnail with an audio player;
- which layers differ most: per source and layer, the spread of each feature
  over the layer's cells, in units of that feature's spread over every cell of
  the source,

      spread(layer, f) = sd_{cells of layer}(f) / sd_{all cells of source}(f)
      score(layer)     = mean_f spread(layer, f)
      shift(layer)     = mean_f mean_{cells} |f(out) - f(source)| / sd_{all}(f)

  (score: how different the layer's maps sound from each other; shift: how far
  the layer moves the sound away from where it started);
- every cell's features in a table sortable by any column;
- the parameters used.

Pictures and sounds are files next to index.html, addressed by relative links.
The page's script only sorts tables; a page with no script still shows everything.
"""

from __future__ import annotations

import html
import os

import numpy as np

FEATURES = (("rms", "RMS", 4), ("spectral_centroid_hz", "centroid Hz", 0),
            ("spectral_flatness", "flatness", 4), ("spectral_flux", "flux", 4))

STYLE = """
body { font: 14px/1.4 system-ui, sans-serif; margin: 1.2em 2em; color: #222; background: #fafafa; }
h1 { margin-bottom: .2em; } h2 { margin-top: 1.6em; border-bottom: 1px solid #ccc; }
.note { color: #555; } .warn { background: #fff3cd; padding: .5em 1em; border-radius: 4px; }
.row { display: flex; align-items: flex-start; gap: 10px; margin: 8px 0; }
.rowhead { width: 110px; flex: none; padding-top: 30px; }
.rowhead b { font-size: 15px; } .rowhead span { display: block; color: #666; font-size: 12px; }
figure { margin: 0; width: 200px; background: #fff; border: 1px solid #ddd; border-radius: 4px;
         padding: 4px; }
figure img { width: 200px; height: 100px; display: block; image-rendering: auto; }
figure audio { width: 200px; height: 30px; margin-top: 3px; }
figcaption { font-size: 12px; color: #444; }
figure.failed { height: 150px; background: #fbeaea; }
table { border-collapse: collapse; background: #fff; margin: .5em 0; }
th, td { border: 1px solid #ddd; padding: 3px 8px; text-align: right; }
td.t, th.t { text-align: left; }
th button { font: inherit; font-weight: bold; border: 0; background: none; cursor: pointer;
            padding: 0; }
th[aria-sort=ascending]::after { content: " \\25B2"; }
th[aria-sort=descending]::after { content: " \\25BC"; }
.bar { display: inline-block; height: 10px; background: #c0504d; vertical-align: middle;
       margin-right: 6px; }
body.show-change figure img.spec, body:not(.show-change) figure img.change { display: none; }
.view { background: #fff; border: 1px solid #ddd; border-radius: 4px; padding: 4px 10px;
        display: inline-block; }
:target figure, figure:target { outline: 3px solid #4c72b0; }
"""

SCRIPT = """
// Pictures: the dreamed spectrograms, or their change from the sound dreamed from.
for (const radio of document.querySelectorAll("input[name=view]")) {
  radio.addEventListener("change", () =>
    document.body.classList.toggle("show-change", radio.value === "change" && radio.checked));
}
// Sort a table by the clicked column: numbers by their data-v, text otherwise.
for (const table of document.querySelectorAll("table.sortable")) {
  const heads = Array.from(table.tHead.rows[0].cells);
  heads.forEach((th, col) => {
    const button = th.querySelector("button");
    if (!button) return;
    button.addEventListener("click", () => {
      const ascending = th.getAttribute("aria-sort") !== "ascending";
      heads.forEach(h => h.removeAttribute("aria-sort"));
      th.setAttribute("aria-sort", ascending ? "ascending" : "descending");
      const body = table.tBodies[0];
      const value = row => {
        const cell = row.cells[col];
        return cell.dataset.v !== undefined ? parseFloat(cell.dataset.v) : cell.textContent;
      };
      const rows = Array.from(body.rows);
      rows.sort((a, b) => {
        const x = value(a), y = value(b);
        const d = typeof x === "number" ? x - y : String(x).localeCompare(String(y));
        return ascending ? d : -d;
      });
      for (const row of rows) body.appendChild(row);
    });
  });
}
"""


def write_page(out_dir: str, meta: dict, records: list[dict]) -> str:
    """Writes `out_dir/index.html` from the atlas metadata and cell records; returns its path."""
    path = os.path.join(out_dir, "index.html")
    tmp = path + ".part"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(render_page(meta, records))
    os.replace(tmp, path)
    return path


def render_page(meta: dict, records: list[dict]) -> str:
    e = html.escape
    layer_order = {x["name"]: i for i, x in enumerate(meta["layers"])}
    failed = [r for r in records if "error" in r]
    dreamed = [r for r in records if "error" not in r]
    parts = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
             '<link rel="icon" href="data:,">',
             f"<title>audiodream atlas: {e(meta['model'])}</title>",
             f"<style>{STYLE}</style></head><body>",
             f"<h1>Layer atlas of {e(meta['model'])}</h1>",
             f'<p class="note">Every layer of the model dreamed on its own, whole and for '
             f"{meta['maps']} feature maps spread over its range, from "
             f"{' and from '.join(e(s['title']) for s in meta['sources'])} "
             f"(after Bisig &amp; Wegner's layer experiment). {len(records)} of "
             f"{meta['cells_total']} cells, {meta['render_seconds']:.0f} s of dreaming; "
             f"written {e(meta['written'])}.</p>"]
    if failed:
        parts.append(f'<p class="warn">{len(failed)} cells could not be dreamed (the reason is '
                     "in each): they are tried again when the command runs again.</p>")
    if len(records) < meta["cells_total"]:
        parts.append('<p class="warn">This atlas is not finished: run the same command again '
                     "to render the rest (finished cells are kept).</p>")
    parts.append("<p class=\"note\">Spectrograms: 30 Hz to Nyquist on a log scale (low at the "
                 "bottom), time left to right, all on one level scale (-100 to -10 dBFS). "
                 "Jump to: <a href=\"#summary\">which layers differ</a> | "
                 "<a href=\"#features\">features table</a> | "
                 "<a href=\"#parameters\">parameters</a>.</p>")
    parts.append('<p class="view">Pictures: <label><input type="radio" autocomplete="off" '
                 'name="view" value="spectrogram" checked> spectrograms</label> <label>'
                 '<input type="radio" autocomplete="off" name="view" value="change"> change '
                 "from the start (dB, red louder, blue quieter, +-12 dB)</label></p>")
    for source in meta["sources"]:
        parts.append(_grid(meta, source, [r for r in records if r["source"] == source["name"]]))
    parts.append(_summary(meta, dreamed, layer_order))
    parts.append(_features_table(meta, dreamed, layer_order))
    parts.append(_parameters(meta))
    parts.append(f"<script>{SCRIPT}</script></body></html>")
    return "\n".join(parts)


def _audio(src: str) -> str:
    return f'<audio controls preload="metadata" src="{html.escape(src)}"></audio>'


def _grid(meta: dict, source: dict, records: list[dict]) -> str:
    e = html.escape
    src = f"sources/{source['name']}.{meta['format']}"
    out = [f'<h2 id="grid-{e(source["name"])}">Dreamed from {e(source["title"])}</h2>',
           '<div class="row"><div class="rowhead"><b>start</b>'
           f"<span>{source['duration']:.2f} s, {source['rate']} Hz</span></div>",
           f'<figure><img src="sources/{e(source["name"])}.png" alt="spectrogram of '
           f'{e(source["title"])}">{_audio(src)}<figcaption>the sound dreamed from'
           "</figcaption></figure></div>"]
    for layer in meta["layers"]:
        cells = [r for r in records if r["layer"] == layer["name"]]
        if not cells:
            continue
        out.append(f'<div class="row"><div class="rowhead"><b>{e(layer["name"])}</b>'
                   f"<span>{e(layer['module_type'])}, {layer['channels']} maps</span></div>")
        for r in cells:
            if "error" in r:
                out.append(f'<figure id="{e(r["key"])}" class="failed"><figcaption>'
                           f"{e(r['label'])}: not dreamed. {e(r['error'])}</figcaption>"
                           "</figure>")
                continue
            f = r["output_features"]
            out.append(f'<figure id="{e(r["key"])}"><img class="spec" src="{e(r["image"])}" '
                       f'alt="spectrogram of {e(r["key"])}"><img class="change" '
                       f'src="{e(r["change_image"])}" alt="change made by {e(r["key"])}">'
                       f'{_audio(r["audio"])}'
                       f"<figcaption>{e(r['label'])}: centroid "
                       f"{f['spectral_centroid_hz']:.0f} Hz, flatness "
                       f"{f['spectral_flatness']:.3f}</figcaption></figure>")
        out.append("</div>")
    return "\n".join(out)


def _sortable_head(columns: list[tuple[str, bool]]) -> str:
    cells = "".join(f'<th class="{"t" if text else ""}"><button type="button">'
                    f"{html.escape(name)}</button></th>" for name, text in columns)
    return f"<thead><tr>{cells}</tr></thead>"


def layer_summary(records: list[dict]) -> list[dict]:
    """Per (source, layer): mean and spread of each feature, the spread score and shift."""
    rows = []
    for source in dict.fromkeys(r["source"] for r in records):
        mine = [r for r in records if r["source"] == source]
        values = {k: np.array([r["output_features"][k] for r in mine]) for k, _, _ in FEATURES}
        scale = {k: v.std() if v.std() > 0 else 1.0 for k, v in values.items()}
        for layer in dict.fromkeys(r["layer"] for r in mine):
            cells = [r for r in mine if r["layer"] == layer]
            row = {"source": source, "layer": layer, "cells": len(cells)}
            spreads, shifts = [], []
            for k, _, _ in FEATURES:
                v = np.array([r["output_features"][k] for r in cells])
                start = np.array([r["input_features"][k] for r in cells])
                row[k] = (float(v.mean()), float(v.std()))
                spreads.append(v.std() / scale[k])
                shifts.append(np.mean(np.abs(v - start)) / scale[k])
            row["spread"] = float(np.mean(spreads))
            row["shift"] = float(np.mean(shifts))
            rows.append(row)
    return rows


def _summary(meta: dict, records: list[dict], layer_order: dict) -> str:
    rows = layer_summary(records)
    top = max([r["spread"] for r in rows] + [1e-9])
    titles = {s["name"]: s["title"] for s in meta["sources"]}
    out = ['<h2 id="summary">Which layers differ most</h2>',
           '<p class="note"><b>spread</b>: how different a layer\'s cells sound from each other '
           "(each feature's standard deviation over the layer's cells, in units of its deviation "
           "over all cells of the same source; mean of the four). <b>shift</b>: how far the "
           "layer moves the sound from where it started, in the same units. Columns sort on "
           "click.</p>",
           '<table class="sortable" id="summary-table">',
           _sortable_head([("source", True), ("layer", True), ("cells", False),
                           ("spread", False), ("shift", False)]
                          + [(f"{label} mean \u00b1 sd", False) for _, label, _ in FEATURES]),
           "<tbody>"]
    for r in rows:
        width = int(round(80 * r["spread"] / top))
        cells = [f'<td class="t">{html.escape(titles.get(r["source"], r["source"]))}</td>',
                 f'<td class="t" data-v="{layer_order.get(r["layer"], 0)}">'
                 f"{html.escape(r['layer'])}</td>",
                 f'<td data-v="{r["cells"]}">{r["cells"]}</td>',
                 f'<td data-v="{r["spread"]:.6g}"><span class="bar" style="width:{width}px">'
                 f"</span>{r['spread']:.2f}</td>",
                 f'<td data-v="{r["shift"]:.6g}">{r["shift"]:.2f}</td>']
        for k, _, digits in FEATURES:
            mean, sd = r[k]
            cells.append(f'<td data-v="{mean:.6g}">{mean:.{digits}f} \u00b1 {sd:.{digits}f}</td>')
        out.append("<tr>" + "".join(cells) + "</tr>")
    out.append("</tbody></table>")
    return "\n".join(out)


def _features_table(meta: dict, records: list[dict], layer_order: dict) -> str:
    titles = {s["name"]: s["title"] for s in meta["sources"]}
    out = ['<h2 id="features">Features of every cell</h2>',
           '<p class="note">Bisig &amp; Wegner\'s four features of each dreamed sound '
           "(RMS: loudness; spectral centroid: brightness; flatness: noisiness; flux: "
           "roughness), and the objective at the first and last iteration. Click a column "
           "to sort by it, again to reverse.</p>",
           '<table class="sortable" id="features-table">',
           _sortable_head([("source", True), ("layer", True), ("maps", True)]
                          + [(label, False) for _, label, _ in FEATURES]
                          + [("objective first", False), ("objective last", False),
                             ("seconds", False)]),
           "<tbody>"]
    for r in records:
        f = r["output_features"]
        maps_v = r["maps"][0] if r["maps"] else -1
        cells = [f'<td class="t">{html.escape(titles.get(r["source"], r["source"]))}</td>',
                 f'<td class="t" data-v="{layer_order.get(r["layer"], 0)}">'
                 f"{html.escape(r['layer'])}</td>",
                 f'<td class="t" data-v="{maps_v}"><a href="#{html.escape(r["key"])}">'
                 f"{html.escape(r['label'])}</a></td>"]
        for k, _, digits in FEATURES:
            cells.append(f'<td data-v="{f[k]:.6g}">{f[k]:.{digits}f}</td>')
        for v in (r["loss_first"], r["loss_last"]):
            cells.append(f'<td data-v="{v:.6g}">{v:.4g}</td>' if v is not None
                         else '<td data-v="0">-</td>')
        cells.append(f'<td data-v="{r["seconds"]:.4g}">{r["seconds"]:.2f}</td>')
        out.append("<tr>" + "".join(cells) + "</tr>")
    out.append("</tbody></table>")
    return "\n".join(out)


def _parameters(meta: dict) -> str:
    e = html.escape
    rows = [("model", meta["model"]), ("model rate", f"{meta['sample_rate']} Hz"),
            ("maps per layer", meta["maps"]), ("longest input", f"{meta['seconds']} s"),
            ("sound files", meta["format"])]
    rows += [(f"asked: {k}", v) for k, v in sorted(meta["requested"].items())]
    rows += [(k, v) for k, v in sorted(meta["resolved"].items()) if k != "model"]
    body = "".join(f'<tr><td class="t">{e(str(k))}</td><td class="t">{e(str(v))}</td></tr>'
                   for k, v in rows)
    return (f'<h2 id="parameters">Parameters</h2><p class="note">Every cell was dreamed with '
            f"these (the server's values after its defaults), its own layer and maps aside.</p>"
            f"<table>{body}</table>")
