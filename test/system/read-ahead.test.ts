// ReadAhead: each file's bytes as readFileSync gives them, in turn, the next
// file read while the caller holds this one's, errors at the file's turn.
import { spawn, spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import t, { type Test } from 'tap';
import { ReadAhead } from '../../daemon/system/read-ahead';

function files(t: Test, sizes: number[]): string[] {
  const dir = mkdtempSync(path.join(tmpdir(), 'beamedge-read-ahead-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  return sizes.map((n, i) => {
    const f = path.join(dir, `f${i}`);
    // Distinct contents per file, so a buffer overwritten by another file shows.
    writeFileSync(f, Buffer.from(Array.from({ length: n }, (_, k) => (k * 7 + i * 31) & 0xff)));
    return f;
  });
}

/** The read of the file after the one just returned, when there is one (it must not touch the returned bytes). */
async function readAheadDone(r: ReadAhead): Promise<void> {
  await (r as unknown as { next?: { done: Promise<unknown> } }).next?.done;
}

t.test('every file as readFileSync reads it, the buffers grown and reused', async (t) => {
  const fs = files(t, [1000, 0, 5_000_000, 10, 3_000_000, 7_000_000, 1]);
  const r = new ReadAhead(fs, () => true);
  for (const [i, f] of fs.entries()) {
    const bytes = await r.get(i);
    await readAheadDone(r);
    t.ok(Buffer.from(bytes).equals(readFileSync(f)), `file ${i} (${bytes.length} bytes), also once the next file is read`);
  }
});

t.test('files not read ahead are skipped, and the held bytes survive the read that skips them', async (t) => {
  // 0 and 2 would share a buffer if buffers went by index parity (2 fits in 0's: no new one).
  const fs = files(t, [8192, 100, 4096, 50, 2048]);
  const r = new ReadAhead(fs, (i) => i % 2 === 0);
  for (const i of [0, 2, 4]) {
    const bytes = await r.get(i);
    await readAheadDone(r);
    t.ok(Buffer.from(bytes).equals(readFileSync(fs[i]!)), `file ${i}`);
  }
});

t.test('a file that cannot be read fails at its turn, named; the others are read', async (t) => {
  const [a, b] = files(t, [100, 200]);
  const dir = path.join(path.dirname(a!), 'adir');
  mkdirSync(dir);
  const missing = path.join(path.dirname(a!), 'absent');
  const list = [a!, missing, dir, b!];
  const r = new ReadAhead(list, () => true);
  t.equal((await r.get(0)).length, 100);
  await t.rejects(r.get(1), { message: `${missing}: no such file` });
  await t.rejects(r.get(2), { message: `${dir}: is a directory, not a file` });
  t.ok(Buffer.from(await r.get(3)).equals(readFileSync(b!)), 'the file after them');
});

t.test('asked out of turn, it still gives the file asked for', async (t) => {
  const fs = files(t, [300, 400, 500]);
  const r = new ReadAhead(fs, () => true);
  t.equal((await r.get(0)).length, 300);
  // The read ahead of file 1 is under way; file 2 is asked for instead.
  t.ok(Buffer.from(await r.get(2)).equals(readFileSync(fs[2]!)));
});

t.test('a pipe is read to its end (short reads are not the end)', async (t) => {
  const [f] = files(t, [3_000_000]);
  // A FIFO fed by another process (coreutils' mkfifo and cat); opening it waits for the writer.
  const fifo = path.join(path.dirname(f!), 'fifo');
  t.equal(spawnSync('mkfifo', [fifo]).status, 0, 'mkfifo');
  const writer = spawn('sh', ['-c', `cat "$1" > "$2"`, 'sh', f!, fifo]);
  const exited = new Promise((resolve) => writer.on('exit', resolve));
  const r = new ReadAhead([fifo], () => true);
  t.ok(Buffer.from(await r.get(0)).equals(readFileSync(f!)), '3 MB through a 64 KB pipe');
  t.equal(await exited, 0);
});
