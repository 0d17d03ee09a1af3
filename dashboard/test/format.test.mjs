// format.test.mjs: the dashboard's durations and its "Logins refused" tile (dashboard/src/format.js).
// Both once showed the operator something false-looking: a custody rotation "in 23 h 60 min"
// (a duration rounded after being split into hours and minutes), and a refused-logins tile
// reading 0 above a line saying "13 refused" (an interval count next to a total, unlabelled).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { durationText, untilText, uptimeText, refusedTile } from '../src/format.js';

test('a deadline 23 h 59 min 30 s away reads "in 24 h 0 min", never "23 h 60 min"', () => {
  const now = 1767225600000;
  assert.equal(untilText(now / 1000 + 86370, now), 'in 24 h 0 min');
  assert.equal(untilText(now / 1000 + 86369, now), 'in 23 h 59 min');
  assert.equal(untilText(now / 1000 - 3 * 60, now), '3 min ago');
  assert.equal(untilText(now / 1000 + 45.4, now), 'in 45 s');
  assert.equal(untilText(now / 1000 + 3 * 86400, now), 'in 3 d');
});

test('no duration shows "h 60 min", and the text never runs backwards as time grows', () => {
  let prev = -1;
  for (let s = 0; s < 2 * 86400 + 600; s += 7.3) {
    const t = durationText(s);
    assert.doesNotMatch(t, / h (6\d|[7-9]\d|\d{3,}) min$/, `durationText(${s}) = ${t}`);
    // Read the text back as seconds: it must stay within half a unit of s and be monotonic.
    const m = t.match(/^(?:(\d+) d|(?:(\d+) h )?(\d+) min|(\d+) s)$/);
    assert.ok(m, `durationText(${s}) = ${t}`);
    const back = m[1] ? +m[1] * 86400 : m[4] ? +m[4] : (+(m[2] || 0) * 60 + +m[3]) * 60;
    const unit = m[1] ? 86400 : m[4] ? 1 : 60;
    assert.ok(Math.abs(back - s) <= unit / 2 + 1e-9, `durationText(${s}) = ${t}`);
    assert.ok(back >= prev, `durationText(${s}) = ${t} went backwards`);
    prev = back;
  }
});

test('uptime keeps whole seconds even when uptime_s has a fraction', () => {
  assert.equal(uptimeText(59.75), '0m 59s');
  assert.equal(uptimeText(3599.9), '59m 59s');
  assert.equal(uptimeText(3600), '1h 0m');
  assert.equal(uptimeText(90061), '1d 1h');
  assert.equal(uptimeText(undefined), '');
});

test('the refused tile names its numbers: the interval count, then the totals since start', () => {
  const prev = { ts: 1000000, uptime_s: 100, auth: { accepted: 110, refused_total: 13 } };
  const now = { ts: 1010000, uptime_s: 110, auth: { accepted: 120, refused_total: 13 } };
  const quiet = refusedTile(now, prev);
  assert.equal(quiet.value, '0');
  assert.equal(quiet.alert, false);
  assert.equal(quiet.sub, 'in the last 10 s\n13 since start');
  assert.equal(quiet.title, 'Refused in the last stats interval (10 s): 0. Logins refused since the broker started: 13; accepted: 120.');

  const busy = refusedTile({ ...now, auth: { accepted: 1250, refused_total: 1013 } }, prev);
  assert.equal(busy.value, '1,000');
  assert.equal(busy.alert, true);
  assert.equal(busy.sub, 'in the last 10 s\n1,013 since start');
  assert.match(busy.title, /: 1,000\. .*: 1,013; accepted: 1,250\.$/);
});

test('without an earlier stats message, or after a broker restart, the interval count is unknown, not 0', () => {
  const first = refusedTile({ ts: 1, uptime_s: 10, auth: { accepted: 120, refused_total: 13 } }, null);
  assert.equal(first.value, '—');
  assert.equal(first.alert, false);
  assert.match(first.sub, /\n13 since start$/);
  assert.match(first.title, /accepted: 120\.$/);

  const prev = { ts: 1000000, uptime_s: 5000, auth: { accepted: 900, refused_total: 40 } };
  const restarted = refusedTile({ ts: 1010000, uptime_s: 10, auth: { accepted: 3, refused_total: 2 } }, prev);
  assert.equal(restarted.value, '—');
  assert.match(restarted.sub, /\n2 since start$/);

  const noAuth = refusedTile({ ts: 1 }, null);
  assert.equal(noAuth.value, '—');
  assert.match(noAuth.sub, /\n— since start$/);
});
