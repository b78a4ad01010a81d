// Dark-run frames received over beamedge's TCP framing (ingest/tcp-framing.ts):
// raw uint16 frames of one shape, from one or more connections, until the
// wanted number arrived. Each payload is copied straight into one reused
// frame buffer and handed on before the next is read.
import net from 'node:net';
import { checkHeader, FramingError, MAGIC, MAX_HEADER, parseSize } from '../ingest/tcp-framing';
import type { Shape } from './raw-frames';

export interface ListenOptions {
  host: string;
  port: number;
  frames: number;
  shape: Shape;
  /** Called once the server listens (port 0: the port the system chose). */
  onListening?: (port: number) => void;
  /** Called for every frame, with the reused buffer. */
  each: (frame: Uint16Array) => void;
}

/** Resolves with the address listened on once `frames` frames arrived; rejects on the first unusable frame. */
export function receiveFrames(o: ListenOptions): Promise<string> {
  const frameBytes = o.shape[0] * o.shape[1] * 2;
  const frame = new Uint16Array(o.shape[0] * o.shape[1]);
  const bytes = new Uint8Array(frame.buffer);
  let received = 0;
  const sockets = new Set<net.Socket>();
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    let address = `${o.host}:${o.port}`;
    const end = (err?: Error) => {
      server.close();
      for (const s of sockets) s.destroy();
      if (err) reject(err);
      else resolve(address);
    };
    server.on('error', (e: NodeJS.ErrnoException) => end(new Error(`cannot listen on ${address}: ${e.code ?? e.message}`)));
    server.on('connection', (socket) => {
      sockets.add(socket);
      socket.on('close', () => sockets.delete(socket));
      socket.on('error', () => {});
      // Per connection: the prefix and header gather in `head`; the payload goes into `bytes`.
      let head = Buffer.alloc(0);
      let headerLen = -1;
      let payloadAt = -1;
      socket.on('data', (chunk: Buffer) => {
        try {
          let at = 0;
          while (at < chunk.length && received < o.frames) {
            if (payloadAt >= 0) {
              const n = Math.min(frameBytes - payloadAt, chunk.length - at);
              bytes.set(chunk.subarray(at, at + n), payloadAt);
              payloadAt += n;
              at += n;
              if (payloadAt === frameBytes) {
                o.each(frame);
                received++;
                payloadAt = -1;
                headerLen = -1;
                head = Buffer.alloc(0);
              }
              continue;
            }
            const want = headerLen < 0 ? 8 : 8 + headerLen;
            const n = Math.min(want - head.length, chunk.length - at);
            head = Buffer.concat([head, chunk.subarray(at, at + n)]);
            at += n;
            if (head.length < want) continue;
            if (headerLen < 0) {
              if (!head.subarray(0, 4).equals(MAGIC)) throw new FramingError('not beamedge TCP framing (no BEF1 magic)');
              headerLen = head.readUInt32LE(4);
              if (headerLen > MAX_HEADER) throw new FramingError(`header of ${headerLen} bytes exceeds ${MAX_HEADER}`);
              continue;
            }
            const h = JSON.parse(head.subarray(8).toString('utf8')) as Record<string, unknown>;
            const size = parseSize(h);
            const problem = checkHeader(h);
            if (problem) throw new FramingError(problem);
            if (h.encoding !== 'raw' || h.dtype !== 'uint16') throw new FramingError(`frame ${String(h.frame)}: a dark run needs raw uint16 frames (got ${String(h.encoding)} ${String(h.dtype ?? '')})`);
            const shape = h.shape as Shape;
            if (shape[0] !== o.shape[0] || shape[1] !== o.shape[1]) throw new FramingError(`frame ${String(h.frame)}: shape ${shape.join('x')}, expected ${o.shape.join('x')} (--shape)`);
            if (size !== frameBytes) throw new FramingError(`frame ${String(h.frame)}: ${size} payload bytes, a ${o.shape.join('x')} uint16 frame has ${frameBytes}`);
            payloadAt = 0;
          }
          if (received >= o.frames) end();
        } catch (e) {
          end(new Error(`from ${socket.remoteAddress ?? '?'}: ${(e as Error).message}`));
        }
      });
    });
    server.listen(o.port, o.host, () => {
      const a = server.address() as net.AddressInfo;
      address = `${o.host}:${a.port}`;
      o.onListening?.(a.port);
    });
  });
}
