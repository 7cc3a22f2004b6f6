// check.js drives esdbdouble with the official KurrentDB Node client
// (@kurrent/kurrentdb-client: grpc-js for appends, subscriptions, metadata
// and deletes; its native client for reads), so that the double is checked
// by a second client, written by the server's authors, and cannot drift
// from the protocol the real server speaks where the Go client does not
// look. TestNodeClient (nodecheck_test.go) starts a double and runs
//
//	node check.js kurrentdb://127.0.0.1:PORT?tls=false
//
// Each check prints "ok - NAME" or "FAIL - NAME: why"; the script exits 1
// when one failed.
"use strict";

const assert = require("node:assert/strict");
const crypto = require("node:crypto");
const {
  KurrentDBClient,
  jsonEvent,
  binaryEvent,
  streamNameFilter,
  WrongExpectedVersionError,
  StreamNotFoundError,
  StreamDeletedError,
  ANY,
  NO_STREAM,
  STREAM_EXISTS,
  START,
  END,
  FORWARDS,
  BACKWARDS,
} = require("@kurrent/kurrentdb-client");

// The server's checkpoint interval for a filter with a count window is its
// read batch (32 events) times the multiplier.
const COUNT_WINDOW = 32;

const url = process.argv[2];
if (!url) {
  console.error("usage: node check.js kurrentdb://HOST:PORT?tls=false");
  process.exit(2);
}
const client = KurrentDBClient.connectionString(url);
// Every stream of a run has a random tag, so a run never reads another's.
const tag = crypto.randomBytes(6).toString("hex");
const name = (s) => `node${tag}-${s}`;

async function collect(iterable) {
  const out = [];
  for await (const e of iterable) out.push(e);
  return out;
}

function samePosition(got, want, what) {
  assert.ok(got && want, `${what}: a position is missing (got ${fmt(got)}, want ${fmt(want)})`);
  assert.equal(BigInt(got.commit), BigInt(want.commit), `${what}: commit ${fmt(got)}, want ${fmt(want)}`);
  assert.equal(BigInt(got.prepare), BigInt(want.prepare), `${what}: prepare ${fmt(got)}, want ${fmt(want)}`);
}

function fmt(p) {
  return p ? `${p.commit}/${p.prepare}` : String(p);
}

async function rejects(promise, check, what) {
  let err;
  try {
    await promise;
  } catch (e) {
    err = e;
  }
  assert.ok(err, `${what}: succeeded, want an error`);
  check(err);
}

// Bytes that are not UTF-8, as a v2 event's protobuf payload is not.
const binary = Uint8Array.from([0x0a, 0x03, 0x00, 0xff, 0xfe, 0x12, 0x00, 0x80, 0xc3, 0x28]);

const checks = [
  async function appendReturnsTheLastEventsPosition() {
    const s = name("append");
    const events = [
      jsonEvent({ type: "nodecheck.a.v1", data: { n: 0 } }),
      jsonEvent({ type: "nodecheck.a.v1", data: { n: 1 } }),
      jsonEvent({ type: "nodecheck.a.v1", data: { n: 2 } }),
    ];
    const res = await client.appendToStream(s, events, { streamState: NO_STREAM });
    assert.equal(res.success, true);
    assert.equal(res.nextExpectedRevision, 2n);
    const read = await collect(client.readStream(s));
    assert.equal(read.length, 3);
    read.forEach((r, i) => assert.equal(BigInt(r.event.revision), BigInt(i), "revisions 0, 1, 2"));
    // The server answers a multi-event append with its last event's position.
    samePosition(res.position, read[2].event.position, "position of a 3-event append");
    const one = await client.appendToStream(s, jsonEvent({ type: "nodecheck.a.v1", data: { n: 3 } }), { streamState: 2n });
    const [fourth] = await collect(client.readStream(s, { fromRevision: 3n, maxCount: 1 }));
    samePosition(one.position, fourth.event.position, "position of a 1-event append");
    assert.ok(BigInt(fourth.event.position.commit) > BigInt(read[2].event.position.commit), "positions grow");
  },

  async function jsonAndBinaryEventsRoundTrip() {
    const s = name("content");
    const json = jsonEvent({ type: "nodecheck.json.v1", data: { text: "héllo", n: 1.5 }, metadata: { source: "nodecheck" } });
    const bin = binaryEvent({ type: "nodecheck.binary.v2", data: binary, metadata: binary });
    const empty = binaryEvent({ type: "nodecheck.binary.v2", data: new Uint8Array(0) });
    await client.appendToStream(s, [json, bin, empty], { streamState: NO_STREAM });
    const [j, b, e] = await collect(client.readStream(s));
    assert.equal(j.event.id, json.id);
    assert.equal(j.event.type, "nodecheck.json.v1");
    assert.equal(j.event.isJson, true);
    assert.deepEqual(j.event.data, { text: "héllo", n: 1.5 });
    assert.deepEqual(j.event.metadata, { source: "nodecheck" });
    assert.equal(b.event.id, bin.id);
    assert.equal(b.event.isJson, false, "a binary event reads back as not JSON");
    assert.deepEqual(Uint8Array.from(b.event.data), binary, "binary data byte for byte");
    assert.deepEqual(Uint8Array.from(b.event.metadata), binary, "binary metadata byte for byte");
    assert.equal(e.event.isJson, false);
    assert.equal(e.event.data.length, 0, "empty binary data");
    // The same events through a subscription (grpc-js, not the native client).
    const sub = client.subscribeToAll({ fromPosition: START, filter: streamNameFilter({ prefixes: [s] }) });
    const got = [];
    for await (const r of sub) {
      got.push(r);
      if (got.length === 3) break;
    }
    await sub.unsubscribe();
    assert.deepEqual(got[0].event.data, { text: "héllo", n: 1.5 });
    assert.equal(got[1].event.isJson, false);
    assert.deepEqual(Uint8Array.from(got[1].event.data), binary, "binary data through a subscription");
  },

  async function expectedRevisions() {
    const s = name("revisions");
    await client.appendToStream(s, [jsonEvent({ type: "nodecheck.r.v1", data: {} }), jsonEvent({ type: "nodecheck.r.v1", data: {} })], {
      streamState: NO_STREAM,
    });
    const wrong = (expected, actual) => (err) => {
      assert.ok(err instanceof WrongExpectedVersionError, `want WrongExpectedVersionError, got ${err && err.constructor.name}: ${err}`);
      assert.equal(err.expectedState, expected);
      assert.equal(err.actualState, actual);
    };
    const ev = () => jsonEvent({ type: "nodecheck.r.v1", data: {} });
    await rejects(client.appendToStream(s, ev(), { streamState: 0n }), wrong(0n, 1n), "stale revision");
    await rejects(client.appendToStream(s, ev(), { streamState: 7n }), wrong(7n, 1n), "future revision");
    await rejects(client.appendToStream(s, ev(), { streamState: NO_STREAM }), wrong("no_stream", 1n), "no-stream on a stream");
    await rejects(client.appendToStream(name("none"), ev(), { streamState: STREAM_EXISTS }), wrong("stream_exists", "no_stream"), "stream-exists on no stream");
    await rejects(client.appendToStream(name("none"), ev(), { streamState: 0n }), wrong(0n, "no_stream"), "a revision on no stream");
    assert.equal((await client.appendToStream(s, ev(), { streamState: 1n })).nextExpectedRevision, 2n);
    assert.equal((await client.appendToStream(s, ev(), { streamState: STREAM_EXISTS })).nextExpectedRevision, 3n);
    assert.equal((await client.appendToStream(s, ev(), { streamState: ANY })).nextExpectedRevision, 4n);
  },

  async function readsBothWays() {
    const s = name("reads");
    const events = Array.from({ length: 5 }, (_, n) => jsonEvent({ type: "nodecheck.read.v1", data: { n } }));
    await client.appendToStream(s, events, { streamState: NO_STREAM });
    const fwd = await collect(client.readStream(s, { fromRevision: 1n, maxCount: 2 }));
    assert.deepEqual(fwd.map((r) => r.event.data.n), [1, 2]);
    const back = await collect(client.readStream(s, { direction: BACKWARDS, fromRevision: END, maxCount: 2 }));
    assert.deepEqual(back.map((r) => r.event.data.n), [4, 3]);
    const backFrom = await collect(client.readStream(s, { direction: BACKWARDS, fromRevision: 2n }));
    assert.deepEqual(backFrom.map((r) => r.event.data.n), [2, 1, 0]);
    await rejects(collect(client.readStream(name("missing"))), (err) => assert.ok(err instanceof StreamNotFoundError, `want StreamNotFoundError, got ${err}`), "a stream never written");

    const all = await collect(client.readAll({ fromPosition: START, maxCount: 100000 }));
    assert.ok(all.length > 5);
    assert.ok(all[0].event.streamId.startsWith("$"), `a fresh server's $all starts with system events, got ${all[0].event.streamId}`);
    for (let i = 1; i < all.length; i++) {
      assert.ok(BigInt(all[i].event.position.commit) > BigInt(all[i - 1].event.position.commit), "$all in position order");
    }
    const mine = all.filter((r) => r.event.streamId === s);
    assert.deepEqual(mine.map((r) => r.event.data.n), [0, 1, 2, 3, 4]);
    const from = await collect(client.readAll({ fromPosition: mine[2].event.position, maxCount: 3 }));
    samePosition(from[0].event.position, mine[2].event.position, "$all forwards from a position starts at it");
    const last = await collect(client.readAll({ direction: BACKWARDS, fromPosition: END, maxCount: 1 }));
    samePosition(last[0].event.position, all[all.length - 1].event.position, "$all backwards from the end");
    const before = await collect(client.readAll({ direction: BACKWARDS, fromPosition: mine[2].event.position, maxCount: 2 }));
    samePosition(before[0].event.position, mine[1].event.position, "$all backwards from a position starts before it");
  },

  async function filteredSubscriptionCatchUpCheckpointsCaughtUpLive() {
    const s = name("sub");
    const other = name("other");
    // 3 count windows of events, a third of them the subscription's.
    const n = 3 * COUNT_WINDOW;
    for (let i = 0; i < n; i++) {
      await client.appendToStream(i % 3 === 0 ? s : other, jsonEvent({ type: "nodecheck.sub.v1", data: { i } }));
    }
    const [head] = await collect(client.readAll({ direction: BACKWARDS, fromPosition: END, maxCount: 1 }));
    const checkpoints = [];
    const sub = client.subscribeToAll({
      fromPosition: START,
      // No maxSearchWindow: a count window, as the client sends by default.
      filter: streamNameFilter({ prefixes: [s], checkpointReached: (_, p) => checkpoints.push(p) }),
    });
    let caughtUp;
    const caught = new Promise((resolve) => sub.once("caughtUp", (info) => resolve((caughtUp = info))));
    const got = [];
    let live;
    const it = sub[Symbol.asyncIterator]();
    while (got.length < n / 3) {
      const { value } = await it.next();
      got.push(value);
    }
    await caught;
    assert.deepEqual(got.map((r) => r.event.data.i), Array.from({ length: n / 3 }, (_, k) => 3 * k), "catch-up in order, filtered");
    assert.ok(checkpoints.length >= 2, `a count-window filter gets a checkpoint every ${COUNT_WINDOW} events scanned: got ${checkpoints.length} over ${n}`);
    assert.ok(caughtUp.date instanceof Date, `caught-up carries the server's time, got ${JSON.stringify(caughtUp, (_, v) => (typeof v === "bigint" ? String(v) : v))}`);
    samePosition(caughtUp.position, head.event.position, "caught-up carries the position it caught up at");
    const appended = await client.appendToStream(s, jsonEvent({ type: "nodecheck.sub.v1", data: { i: "live" } }));
    ({ value: live } = await it.next());
    await sub.unsubscribe();
    assert.equal(live.event.data.i, "live");
    samePosition(live.event.position, appended.position, "live event at its append's position");
  },

  async function maxWindowCheckpoints() {
    const s = name("window");
    for (let i = 0; i < 12; i++) {
      await client.appendToStream(name("noise"), jsonEvent({ type: "nodecheck.noise.v1", data: { i } }));
    }
    await client.appendToStream(s, jsonEvent({ type: "nodecheck.w.v1", data: {} }));
    const checkpoints = [];
    const sub = client.subscribeToAll({
      fromPosition: START,
      filter: streamNameFilter({ prefixes: [s], maxSearchWindow: 2, checkpointInterval: 2, checkpointReached: (_, p) => checkpoints.push(p) }),
    });
    const it = sub[Symbol.asyncIterator]();
    await it.next();
    await sub.unsubscribe();
    assert.ok(checkpoints.length >= 3, `a max-window filter of 2 × 2 gets a checkpoint every 4 events scanned: got ${checkpoints.length}`);
  },

  // The double tombstones as the server does (the privacy key store
  // depends on it): the stream then answers "deleted" to reads, appends
  // and a second tombstone.
  async function tombstone() {
    const s = name("tombstone");
    await client.appendToStream(s, jsonEvent({ type: "nodecheck.t.v1", data: {} }));
    await client.tombstoneStream(s);
    const deleted = (err) => assert.ok(err instanceof StreamDeletedError, `want StreamDeletedError, got ${err}`);
    await rejects(collect(client.readStream(s)), deleted, "readStream after tombstone");
    await rejects(client.appendToStream(s, jsonEvent({ type: "nodecheck.t.v1", data: {} })), deleted, "appendToStream after tombstone");
    await rejects(client.tombstoneStream(s), deleted, "a second tombstone");
  },

  async function unimplementedFailsLoudly() {
    const s = name("unimplemented");
    await client.appendToStream(s, jsonEvent({ type: "nodecheck.u.v1", data: {} }));
    const names = (feature) => (err) => assert.match(String(err && err.message), feature, `the error names what the double lacks: ${err}`);
    await rejects(client.setStreamMetadata(s, { maxCount: 1 }), names(/metadata/i), "setStreamMetadata($maxCount)");
    // A read goes through the native client, which reports UNIMPLEMENTED as
    // "unsupported by the server" without the server's message; what
    // matters is that it fails rather than answer "no metadata".
    await rejects(client.getStreamMetadata(s), names(/metadata|unsupported/i), "getStreamMetadata");
    await rejects(client.deleteStream(s), names(/delet/i), "deleteStream");
    await rejects(collect(client.subscribeToStream(s)), names(/subscri/i), "subscribeToStream");
    // Nothing of the above changed the stream.
    assert.equal((await collect(client.readStream(s))).length, 1);
  },
];

async function main() {
  const deadline = setTimeout(() => {
    console.error("FAIL - the checks took over 60 s");
    process.exit(1);
  }, 60_000);
  for (const check of checks) {
    try {
      await check();
      console.log(`ok - ${check.name}`);
    } catch (err) {
      console.log(`FAIL - ${check.name}: ${err && err.stack ? err.stack : err}`);
      process.exitCode = 1;
    }
  }
  clearTimeout(deadline);
  await client.dispose();
  process.exit(process.exitCode ?? 0);
}

main();
