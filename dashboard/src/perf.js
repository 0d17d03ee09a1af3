// perf.js — measures how smooth the page really is. The issue asks for the frame time under
// load (p95); the only honest source for it is the browser's own frame clock, so a
// requestAnimationFrame loop records the gap between consecutive frames. The samples live in a
// fixed ring (no allocation per frame, so measuring does not itself cause GC pauses).

const CAPACITY = 10000;

export function createFrameSampler() {
  const ring = new Float64Array(CAPACITY);
  let count = 0;      // samples ever taken since the last reset
  let next = 0;       // write position in the ring
  let last = 0;       // timestamp of the previous frame, 0 = none yet
  let running = false;

  function tick(now) {
    if (!running) return;
    if (last !== 0) {
      ring[next] = now - last;
      next = (next + 1) % CAPACITY;
      count++;
    }
    last = now;
    requestAnimationFrame(tick);
  }

  function pct(sorted, p) {
    if (sorted.length === 0) return 0;
    const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil(p * sorted.length) - 1));
    return sorted[i];
  }

  return {
    start() {
      if (running) return;
      running = true;
      last = 0;
      requestAnimationFrame(tick);
    },
    stop() { running = false; },
    reset() { count = 0; next = 0; last = 0; },
    // Percentiles over the kept samples (at most the last 10,000 frames), in milliseconds.
    stats() {
      const n = Math.min(count, CAPACITY);
      const sorted = Float64Array.from(ring.subarray(0, n)).sort();
      const round = (v) => Math.round(v * 100) / 100;
      return {
        count: n,
        p50: round(pct(sorted, 0.50)),
        p95: round(pct(sorted, 0.95)),
        p99: round(pct(sorted, 0.99)),
        max: round(n ? sorted[n - 1] : 0),
      };
    },
  };
}
