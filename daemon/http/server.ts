// The daemon's HTTP server (fastify): the live page and its event stream, the
// Prometheus metrics, health and readiness probes, and the running status and
// configuration as JSON. It serves and reads; it never changes the daemon.
import { readFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import Fastify, { type FastifyInstance } from 'fastify';
import type { Registry } from 'prom-client';
import type { LiveHub } from './live';

/** The page's files, served from the package (dist/daemon/http -> <root>/daemon/http/page): no CDN, works offline. */
export const PAGE_DIR = path.resolve(__dirname, '..', '..', '..', 'daemon', 'http', 'page');
const PAGE_FILES: Record<string, string> = {
  '/': 'index.html',
  '/app.js': 'app.js',
  '/style.css': 'style.css',
};
const TYPES: Record<string, string> = { '.html': 'text/html; charset=utf-8', '.js': 'text/javascript; charset=utf-8', '.css': 'text/css; charset=utf-8' };

export interface HttpView {
  hub: LiveHub;
  metrics: Registry;
  status(): Record<string, unknown>;
  /** Running and connected to the broker; otherwise why not. */
  ready(): { ready: boolean; why: string };
  /** The running configuration with credentials redacted. */
  config(): Record<string, unknown>;
}

export class HttpServer {
  private constructor(
    private readonly app: FastifyInstance,
    readonly host: string,
    readonly port: number,
    private readonly hub: LiveHub,
  ) {}

  static async start(opts: { host: string; port: number; view: HttpView }): Promise<HttpServer> {
    const { view } = opts;
    // Read once at start: a page that changes under a running daemon would not match its server.
    const files = new Map(Object.entries(PAGE_FILES).map(([route, file]) => [route, { body: readFileSync(path.join(PAGE_DIR, file)), type: TYPES[path.extname(file)]! }]));
    const app = Fastify({ logger: false, forceCloseConnections: true, bodyLimit: 1024 });
    for (const [route, f] of files) app.get(route, (_req, reply) => reply.type(f.type).header('cache-control', 'no-cache').send(f.body));
    app.get('/events', (_req, reply) => {
      if (!view.hub.attach(reply.raw)) return reply.code(503).send({ error: 'too many live pages open' });
      // The hub writes to the raw response from now on.
      reply.hijack();
      return reply;
    });
    app.get('/metrics', async (_req, reply) => reply.type(view.metrics.contentType).send(await view.metrics.metrics()));
    app.get('/health', (_req, reply) => reply.send({ status: 'alive' }));
    app.get('/ready', (_req, reply) => {
      const r = view.ready();
      return reply.code(r.ready ? 200 : 503).send({ status: r.ready ? 'ready' : 'not ready', why: r.why });
    });
    app.get('/api/status', (_req, reply) => reply.send(view.status()));
    app.get('/api/config', (_req, reply) => reply.send(view.config()));
    await app.listen({ host: opts.host, port: opts.port });
    const addr = app.server.address() as AddressInfo;
    return new HttpServer(app, opts.host, addr.port, view.hub);
  }

  /** The page's address (an IPv6 host in brackets; a wildcard host as the loopback address a local browser reaches). */
  get url(): string {
    const host = this.host === '0.0.0.0' ? '127.0.0.1' : this.host === '::' ? '[::1]' : this.host.includes(':') ? `[${this.host}]` : this.host;
    return `http://${host}:${this.port}/`;
  }

  async close(): Promise<void> {
    // Event streams never end by themselves: end them first, or close() would wait for them.
    this.hub.close();
    await this.app.close();
  }
}
