/**
 * The inbox page: one self-contained HTML document (no external resources: the CSP forbids them).
 * Requests arrive through server-sent events; every value from the box is inserted as text, never
 * as HTML.
 */
export const INBOX_PAGE = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>fourwall · approval inbox</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
  :root { font-family: system-ui, sans-serif; color: #1d2430; background: #f4f5f7; }
  body { margin: 0; }
  header { background: #1d2430; color: #fff; padding: 14px 24px; display: flex; align-items: baseline; gap: 16px; }
  header h1 { font-size: 18px; margin: 0; }
  header .state { font-size: 13px; opacity: .8; }
  main { max-width: 920px; margin: 24px auto; padding: 0 16px; }
  h2 { font-size: 14px; text-transform: uppercase; letter-spacing: .06em; color: #5b6472; }
  .card { background: #fff; border-radius: 8px; box-shadow: 0 1px 3px rgba(0,0,0,.12); padding: 16px 20px; margin-bottom: 14px; border-left: 5px solid #e0a100; }
  .meta { font-size: 12px; color: #5b6472; margin-bottom: 8px; }
  .what { font-family: ui-monospace, monospace; font-size: 15px; background: #f0f2f5; padding: 8px 10px; border-radius: 4px; white-space: pre-wrap; word-break: break-all; }
  dl { display: grid; grid-template-columns: 60px 1fr; gap: 4px 12px; font-size: 13px; margin: 10px 0; }
  dt { color: #5b6472; } dd { margin: 0; font-family: ui-monospace, monospace; word-break: break-all; }
  ul.changes { font-family: ui-monospace, monospace; font-size: 13px; margin: 6px 0; padding-left: 18px; max-height: 24em; overflow-y: auto; }
  ul.changes li.warn { color: #b00020; font-weight: 600; }
  .buttons { display: flex; gap: 10px; margin-top: 10px; }
  button { font-size: 14px; padding: 8px 18px; border-radius: 6px; border: 0; cursor: pointer; }
  button.yes { background: #1f883d; color: #fff; } button.no { background: #cf222e; color: #fff; } button.always { background: #dde3ea; }
  .empty { color: #5b6472; font-style: italic; }
  .files { margin: 8px 0; } .file { border-top: 1px solid #eceef1; padding: 6px 0; font-size: 13px; }
  .file label { font-family: ui-monospace, monospace; } .file .sides { color: #5b6472; font-size: 12px; margin-left: 24px; }
  .file pre { background: #f6f8fa; padding: 6px 8px; margin: 4px 0 0 24px; max-height: 24em; overflow: auto; font-size: 12px; }
  .file pre .add { color: #1f883d; } .file pre .del { color: #cf222e; } .file pre .hunk { color: #0969da; }
  table { width: 100%; border-collapse: collapse; font-size: 13px; background: #fff; }
  td { padding: 6px 10px; border-bottom: 1px solid #eceef1; font-family: ui-monospace, monospace; }
  .allow { color: #1f883d; font-weight: 600; } .deny { color: #cf222e; font-weight: 600; }
</style>
</head>
<body>
<header><h1>fourwall · approval inbox</h1><span class="state" id="state">connecting…</span></header>
<main>
  <h2>Waiting for you</h2>
  <div id="pending"><p class="empty">Nothing is waiting.</p></div>
  <h2>Decided</h2>
  <table><tbody id="decided"></tbody></table>
</main>
<script>
const SESSION = "__SESSION__";
const el = (tag, attrs = {}, ...kids) => {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
  for (const kid of kids) e.append(kid);
  return e;
};
async function answer(id, value) {
  const r = await fetch("/answer", { method: "POST", headers: { "Content-Type": "application/json", "X-Fourwall-Session": SESSION }, body: JSON.stringify({ id, answer: value }) });
  if (!r.ok) alert(await r.text());
}
function card(r) {
  // Only r.display (escaped on the server by render.ts visible(): controls, bidi, zero-width as
  // visible escapes, long values cut), and only as text nodes (never HTML).
  const c = el("div", { class: "card", "data-id": r.id });
  c.append(el("div", { class: "meta" }, r.display.title + " · " + new Date(r.time).toLocaleTimeString()));
  const dl = el("dl");
  for (const [k, v] of r.display.lines) dl.append(el("dt", {}, k), el("dd", { class: "what" }, v));
  c.append(dl);
  const b = el("div", { class: "buttons" });
  const yes = el("button", { class: "yes" }, r.files.length ? "Approve all" : "Approve"); yes.onclick = () => answer(r.id, "yes");
  const no = el("button", { class: "no" }, r.files.length ? "Deny all" : "Deny"); no.onclick = () => answer(r.id, "no");
  b.append(yes, no);
  if (r.files.length) {
    // a change-set, file by file: tick what to apply; each file's diff (escaped lines) unfolds
    const files = el("div", { class: "files" });
    const boxes = [];
    for (const f of r.files) {
      const box = el("input", { type: "checkbox", "data-i": String(f.i) });
      if (ticked.has(r.id + ":" + f.i)) box.checked = true; // live updates keep what was ticked
      boxes.push(box);
      const row = el("div", { class: "file" }, el("label", {}, box, " " + f.line));
      if (f.sides) row.append(el("div", { class: "sides" }, f.sides));
      if (f.diff.length) {
        const pre = el("pre");
        for (const line of f.diff) pre.append(el("div", { class: line.startsWith("@@") ? "hunk" : line.startsWith("+") ? "add" : line.startsWith("-") ? "del" : "" }, line));
        row.append(el("details", {}, el("summary", {}, "diff (" + f.diff.length + " lines)"), pre));
      } else if (f.note) row.append(el("div", { class: "sides" }, f.note));
      files.append(row);
    }
    c.append(files);
    const some = el("button", { class: "always" }, "Apply the ticked files only");
    some.onclick = () => answer(r.id, { approve: boxes.filter((x) => x.checked).map((x) => Number(x.dataset.i)) });
    b.append(some);
  }
  if (r.alwaysAllowed) { const a = el("button", { class: "always" }, "Always (this box)"); a.onclick = () => answer(r.id, "always"); b.append(a); }
  c.append(b);
  return c;
}
let ticked = new Set();
function render(state) {
  ticked = new Set([...document.querySelectorAll("input[data-i]:checked")].map((x) => x.closest(".card").dataset.id + ":" + x.dataset.i));
  const p = document.getElementById("pending");
  p.replaceChildren(...(state.pending.length ? state.pending.map(card) : [el("p", { class: "empty" }, "Nothing is waiting.")]));
  const d = document.getElementById("decided");
  d.replaceChildren(...state.decided.map((h) => el("tr", {}, el("td", { class: h.decision }, h.decision), el("td", {}, h.kind), el("td", {}, h.summary), el("td", {}, h.by))));
  document.title = (state.pending.length ? "(" + state.pending.length + ") " : "") + "fourwall · approval inbox";
}
const events = new EventSource("/events");
events.onopen = () => { document.getElementById("state").textContent = "live"; };
events.onerror = () => { document.getElementById("state").textContent = "disconnected (the box has ended?)"; };
events.onmessage = (m) => render(JSON.parse(m.data));
</script>
</body>
</html>
`;
