// dom.js — the two tiny helpers every panel needs: make an element whose text is set with
// textContent (never parsed as HTML: everything shown comes from the broker), and read a JSON
// field as a finite number or nothing.
//
// Why it exists: charts.js and panels.js each had their own copy; one copy keeps the rule
// "data goes in as text only" in one place.

export function el(tag, className, text) {
  const e = document.createElement(tag);
  if (className) e.className = className;
  if (text != null) e.textContent = String(text);
  return e;
}

export function num(v) {
  return typeof v === "number" && Number.isFinite(v) ? v : null;
}
