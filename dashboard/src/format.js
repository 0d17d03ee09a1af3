// format.js — the dashboard's text for durations and for the "Logins refused" tile, as pure
// functions of their inputs (no DOM, no clock unless passed), so node:test can pin them.
//
// Why it exists: two things an operator reads at a glance came out wrong. A duration rounded
// in two places at once showed "23 h 60 min"; here every duration is rounded ONCE to its
// smallest unit shown and only then split into larger units. And the refused-logins tile put
// the count of the last stats interval (0) next to the count since start (13) with nothing
// saying which was which; here the tile's text names each number.

const nf = new Intl.NumberFormat("en-US");
function count(n) { return Number.isFinite(n) ? nf.format(n) : "—"; }

// "2 h 5 min" for a non-negative number of seconds, at the precision that matters at that size:
// seconds under 90 s, minutes under 90 min, hours and minutes under 2 days, then whole days.
export function durationText(seconds) {
  if (!Number.isFinite(seconds)) return "—";
  const a = Math.abs(seconds);
  if (a < 89.5) return Math.round(a) + " s";
  const min = Math.round(a / 60);          // rounded once: the split below cannot make 60 min
  if (min < 90) return min + " min";
  if (min < 2 * 24 * 60) return Math.floor(min / 60) + " h " + (min % 60) + " min";
  return Math.round(a / 86400) + " d";
}

// "in 23 h 59 min" / "3 min ago": a deadline (unix seconds) read against now (ms).
export function untilText(unixS, nowMs) {
  const d = unixS - nowMs / 1000;
  const t = durationText(Math.abs(d));
  return Math.round(d) >= 0 ? "in " + t : t + " ago";
}

// The header's "up 3d 4h" / "up 2h 5m" / "up 4m 12s" from the stats' uptime_s. Whole seconds
// first (uptime_s may carry a fraction), so the parts always add up and stay below 60 / 24.
export function uptimeText(seconds) {
  if (!Number.isFinite(seconds) || seconds < 0) return "";
  const sec = Math.floor(seconds);
  const d = Math.floor(sec / 86400), h = Math.floor((sec % 86400) / 3600), m = Math.floor((sec % 3600) / 60);
  return d ? `${d}d ${h}h` : h ? `${h}h ${m}m` : `${m}m ${sec % 60}s`;
}

// The "Logins refused" tile from the newest stats message and the one before it (or null).
// value: refusals in the last stats interval (the big number: is anyone failing to log in
// now?). sub: two short lines that fit a tile, which interval that was, then the total since
// the broker started; title (the tooltip): the same with the accepted logins, in full.
// Without an earlier message, or across a broker restart (counters went back), the interval's
// count is unknown: the value is "—", never a 0 that the total would contradict.
export function refusedTile(stats, prev) {
  const auth = stats && stats.auth;
  const total = auth ? auth.refused_total : undefined;
  const accepted = auth ? auth.accepted : undefined;
  const since = `${count(total)} since start`;
  const title = `Logins refused since the broker started: ${count(total)}; accepted: ${count(accepted)}.`;
  const pa = prev && prev.auth;
  const restarted = pa && (!(total >= pa.refused_total) ||
    (Number.isFinite(stats.uptime_s) && Number.isFinite(prev.uptime_s) && stats.uptime_s < prev.uptime_s));
  if (!Number.isFinite(total) || !pa || !Number.isFinite(pa.refused_total) || restarted) {
    return { value: "—", alert: false, sub: `last interval: pending\n${since}`,
             title: "Refused in the last stats interval: known at the next stats message. " + title };
  }
  const d = total - pa.refused_total;
  const secs = Number.isFinite(stats.ts) && Number.isFinite(prev.ts) && stats.ts > prev.ts ? (stats.ts - prev.ts) / 1000 : null;
  const span = secs != null ? "in the last " + durationText(secs) : "in the last interval";
  return { value: count(d), alert: d > 0, sub: `${span}\n${since}`,
           title: `Refused in the last stats interval${secs != null ? " (" + durationText(secs) + ")" : ""}: ${count(d)}. ` + title };
}
