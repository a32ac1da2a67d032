// The reconnect schedule as a pure function: full jitter after the cap, so
// 1,000 clients that lost the same server never come back in lockstep.

import assert from "node:assert/strict";
import { test } from "node:test";
import { backoffDelay, closeAction } from "../dist/index.js";

/** A seeded generator, so the spread is the same on every run. */
function mulberry32(seed) {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const opts = (random) => ({ baseMs: 500, capMs: 30_000, random });

test("1,000 clients spread their reconnects at every attempt, at the cap too", () => {
  const clients = Array.from({ length: 1000 }, (_, i) => mulberry32(i + 1));
  for (const attempt of [0, 3, 6, 10, 20, 40]) {
    const window = Math.min(30_000, 500 * 2 ** attempt);
    const delays = clients.map((random) => backoffDelay(attempt, opts(random)));
    assert.ok(delays.every((d) => d >= 0 && d < window), `attempt ${attempt} stays inside its window`);
    // No lockstep: the delays fill the window. Split it in 20 buckets; a
    // uniform spread puts ~50 in each, a lockstep puts nearly all in one.
    const buckets = new Array(20).fill(0);
    for (const d of delays) buckets[Math.floor((d / window) * 20)]++;
    assert.ok(Math.max(...buckets) < 100, `attempt ${attempt}: no bucket crowded: ${buckets}`);
    assert.ok(Math.min(...buckets) > 20, `attempt ${attempt}: no bucket empty: ${buckets}`);
    const same = new Map();
    for (const d of delays) same.set(d, (same.get(d) ?? 0) + 1);
    const crowd = Math.max(...same.values());
    assert.ok(crowd <= (window < 2_000 ? 10 : 5), `attempt ${attempt}: ${crowd} clients share one delay`);
  }
});

test("clients that failed together drift apart over successive attempts", () => {
  // Each client's total wait before attempt 8: their sum of jittered delays.
  const totals = Array.from({ length: 1000 }, (_, i) => {
    const random = mulberry32(1000 + i);
    let total = 0;
    for (let a = 0; a < 8; a++) total += backoffDelay(a, opts(random));
    return total;
  });
  totals.sort((a, b) => a - b);
  assert.ok(totals[999] - totals[0] > 30_000, "spread over more than the cap");
  assert.ok(new Set(totals.map((t) => Math.floor(t / 1000))).size > 40, "spread over many seconds");
});

test("the server's hint is a floor, and the jitter stays above it", () => {
  const random = mulberry32(7);
  for (let i = 0; i < 100; i++) {
    const d = backoffDelay(2, opts(random), 5_000);
    assert.ok(d >= 5_000 && d < 7_000, String(d));
  }
});

test("close codes: 4001 refreshes, 4003/4008 stop, 4009/4029 back off, the rest reconnect", () => {
  assert.equal(closeAction(4001), "refresh");
  assert.equal(closeAction(4003), "terminal");
  assert.equal(closeAction(4008), "terminal");
  assert.equal(closeAction(4009), "slow");
  assert.equal(closeAction(4029), "slow");
  for (const code of [1000, 1001, 1005, 1006, 1011, 4000]) assert.equal(closeAction(code), "reconnect", String(code));
});
