// The SharedArrayBuffer queues: ordering, capacity, wrap-around, and a real
// producer thread writing while the main thread reads.
import { Worker } from 'node:worker_threads';
import t from 'tap';
import { IndexQueue } from '../../daemon/rings/index-queue';
import { RecordRing } from '../../daemon/rings/record-ring';

t.test('IndexQueue keeps order, refuses when full, survives counter wrap', async (t) => {
  const q = IndexQueue.create(5);
  t.equal(q.capacity, 8, 'rounded up to a power of two');
  for (let i = 0; i < 8; i++) t.ok(q.push(i));
  t.notOk(q.push(99), 'full');
  t.equal(q.length, 8);
  for (let i = 0; i < 8; i++) t.equal(q.pop(), i);
  t.equal(q.pop(), undefined, 'empty');
  // Counters near INT32_MAX: the length arithmetic must wrap correctly.
  const words = new Int32Array(q.buffer);
  words[0] = words[1] = 2147483645;
  for (let i = 0; i < 8; i++) t.ok(q.push(100 + i), `push ${i} across the wrap`);
  t.notOk(q.push(1));
  for (let i = 0; i < 8; i++) t.equal(q.pop(), 100 + i);
});

t.test('RecordRing: variable records wrap around the end intact', async (t) => {
  const ring = RecordRing.create(4096);
  let next = 0;
  let expect = 0;
  for (let round = 0; round < 500; round++) {
    const size = 1 + ((round * 97) % 700);
    const wrote = ring.tryWrite(size, (b) => b.fill(next & 0xff));
    if (wrote) next++;
    if (!wrote || round % 3 === 0) {
      for (let r = ring.read(); r; r = ring.read()) {
        if (!r.every((x) => x === (expect & 0xff))) return t.fail(`record ${expect} corrupted`);
        expect++;
      }
    }
  }
  for (let r = ring.read(); r; r = ring.read()) expect++;
  t.equal(expect, next, `${next} records written and read back in order`);
  t.throws(() => ring.tryWrite(4000, () => {}), /too large/);
});

t.test('RecordRing across threads: a worker writes 20,000 records, all arrive in order', async (t) => {
  const ring = RecordRing.create(1 << 16);
  const code = `
    const { workerData } = require('node:worker_threads');
    const { RecordRing } = require(${JSON.stringify(require.resolve('../../daemon/rings/record-ring'))});
    const ring = new RecordRing(workerData);
    for (let i = 0; i < 20000; i++) {
      const size = 8 + (i % 300);
      while (!ring.tryWrite(size, (b) => { new DataView(b.buffer, b.byteOffset).setUint32(0, i, true); b.fill(i & 0xff, 4); })) ring.waitForSpace(50);
    }`;
  const w = new Worker(code, { eval: true, workerData: ring.buffer });
  const exited = new Promise((r) => w.once('exit', r));
  // Atomics.waitAsync does not keep the event loop alive by itself (the daemon has its timers and sockets).
  const keepAlive = setInterval(() => {}, 1000);
  let n = 0;
  let bad = 0;
  while (n < 20000) {
    await ring.waitForRecord(200);
    for (let r = ring.read(); r; r = ring.read()) {
      const i = new DataView(r.buffer, r.byteOffset).getUint32(0, true);
      if (i !== n || r.length !== 8 + (n % 300) || !r.subarray(4).every((x) => x === (n & 0xff))) bad++;
      n++;
    }
  }
  await exited;
  clearInterval(keepAlive);
  t.equal(bad, 0, '20,000 records, in order and intact');
});
