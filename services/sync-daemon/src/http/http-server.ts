/**
 * The daemon's HTTP side (config `http: {host, port}`, loopback by default):
 * `/metrics` (Prometheus), `/healthz`, `/status` (JSON), `/events`
 * (server-sent events) and `/`, the status page (one static HTML file). Fed by
 * the engine's public surface (onEvent, status) and the bus's StateBatches.
 * Read-only: nothing here changes sync state, and no request can crash it.
 */
import { readFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { fileURLToPath } from 'node:url';
import type { Logger } from 'pino';
import {
  type DaemonConfig,
  type EntityState,
  type LoggedConflict,
  type StatusReply,
  type SyncEvent,
} from '@ferry/contracts';
import { SyncMetrics } from './metrics.js';
import { StatusView } from './status-view.js';

/**
 * The page ships as source (no build step): from dist/http and from src/http
 * alike, ../../src/http is the file in the source tree.
 */
const STATUS_PAGE = new URL('../../src/http/status-page.html', import.meta.url);

/** A slow SSE client is dropped once this much is queued for it, instead of buffering without bound. */
const MAX_SSE_BACKLOG_BYTES = 1 << 20;
/** Status pushes to the page at most this often; events themselves go out at once. */
const STATUS_PUSH_MS = 250;
/** Keeps idle SSE connections (and proxies) alive and refreshes lag in seconds. */
const HEARTBEAT_MS = 2000;

export interface ObservedEngine {
  onEvent(listener: (event: SyncEvent) => void): () => void;
  /** Every state batch the app is sent: the page's "recent changes". */
  onState(listener: (entities: readonly EntityState[]) => void): () => void;
  status(): StatusReply;
  readonly clientId: string;
}

export interface DaemonHttpOptions {
  readonly config: Pick<DaemonConfig, 'app' | 'tenant' | 'bus'> & { http: { host: string; port: number } };
  readonly engine: ObservedEngine;
  readonly logger: Logger;
  readonly now?: () => number;
  /** Newest conflicts already in the daemon's log (shown after a restart too). */
  readonly seedConflicts?: readonly LoggedConflict[];
}

export class DaemonHttpServer {
  readonly view: StatusView;
  readonly metrics: SyncMetrics;
  readonly #o: DaemonHttpOptions;
  readonly #page: string;
  readonly #clients = new Set<ServerResponse>();
  readonly #server: Server;
  #unlisten: (() => void) | null = null;
  #heartbeat: NodeJS.Timeout | null = null;
  #statusTimer: NodeJS.Timeout | null = null;
  #url: string | null = null;
  #stopping = false;

  constructor(options: DaemonHttpOptions) {
    this.#o = options;
    const now = options.now ?? Date.now;
    this.view = new StatusView({
      app: options.config.app,
      tenant: options.config.tenant,
      engine: options.engine,
      now,
      ...(options.seedConflicts === undefined ? {} : { seedConflicts: options.seedConflicts }),
    });
    this.metrics = new SyncMetrics({ view: this.view });
    this.#page = readFileSync(fileURLToPath(STATUS_PAGE), 'utf8');
    this.#server = createServer((req, res) => this.#route(req, res));
  }

  /** The base URL once listening, e.g. `http://127.0.0.1:7070`. */
  get url(): string | null {
    return this.#url;
  }

  /** Starts listening (port 0: a free one) and following the engine; resolves with the base URL. */
  async start(): Promise<string> {
    const { host, port } = this.#o.config.http;
    await new Promise<void>((resolve, reject) => {
      const onError = (err: NodeJS.ErrnoException) => {
        this.#server.off('listening', onListening);
        const why =
          err.code === 'EADDRINUSE'
            ? `${host}:${port} is already in use (set http.port to another port, or 0 for a free one)`
            : `cannot listen on ${host}:${port} (${err.message})`;
        reject(new Error(`http: ${why}`, { cause: err }));
      };
      const onListening = () => {
        this.#server.off('error', onError);
        resolve();
      };
      this.#server.once('error', onError);
      this.#server.once('listening', onListening);
      this.#server.listen(port, host);
    });
    const address = this.#server.address() as AddressInfo;
    const shownHost = address.family === 'IPv6' ? `[${address.address}]` : address.address;
    this.#url = `http://${shownHost}:${address.port}`;
    const unlistenEvents = this.#o.engine.onEvent((event) => this.#onEvent(event));
    const unlistenState = this.#o.engine.onState((entities) =>
      this.#broadcast('changes', this.view.recordChanges(entities)),
    );
    this.#unlisten = () => {
      unlistenEvents();
      unlistenState();
    };
    this.#heartbeat = setInterval(() => this.#pushStatus(), HEARTBEAT_MS);
    this.#heartbeat.unref();
    if (!isLoopback(host)) {
      this.#o.logger.warn(
        { host },
        'http listens beyond loopback: /status and the page show entity values and have no authentication',
      );
    }
    return this.#url;
  }

  async stop(): Promise<void> {
    if (this.#stopping) return;
    this.#stopping = true;
    this.#unlisten?.();
    if (this.#heartbeat !== null) clearInterval(this.#heartbeat);
    if (this.#statusTimer !== null) clearTimeout(this.#statusTimer);
    for (const res of this.#clients) res.end();
    this.#clients.clear();
    this.metrics.clear();
    await new Promise<void>((resolve) => {
      this.#server.close(() => resolve());
      this.#server.closeAllConnections();
    });
  }

  #onEvent(event: SyncEvent): void {
    this.view.record(event);
    this.metrics.observe(event);
    this.#broadcast('sync', event);
    this.#statusTimer ??= setTimeout(() => {
      this.#statusTimer = null;
      this.#pushStatus();
    }, STATUS_PUSH_MS);
  }

  #pushStatus(): void {
    if (this.#clients.size > 0) this.#broadcast('status', this.view.current());
  }

  #broadcast(event: string, data: unknown): void {
    if (this.#clients.size === 0) return;
    const frame = sseFrame(event, data);
    for (const res of this.#clients) {
      if (res.writableLength > MAX_SSE_BACKLOG_BYTES) {
        this.#o.logger.debug('dropping a slow status-page client');
        this.#clients.delete(res);
        res.destroy();
        continue;
      }
      res.write(frame);
    }
  }

  #route(req: IncomingMessage, res: ServerResponse): void {
    try {
      const path = new URL(req.url ?? '/', 'http://localhost').pathname;
      if (req.method !== 'GET' && req.method !== 'HEAD') {
        res.writeHead(405, { allow: 'GET, HEAD', 'content-type': 'text/plain' }).end('method not allowed\n');
        return;
      }
      switch (path) {
        case '/':
        case '/index.html':
          send(res, 200, 'text/html; charset=utf-8', this.#page);
          return;
        case '/healthz':
          // Liveness: the process serves and the engine runs. Being offline is a state, not a failure.
          send(
            res,
            this.#stopping ? 503 : 200,
            'application/json',
            JSON.stringify({ status: this.#stopping ? 'stopping' : 'ok' }),
          );
          return;
        case '/status':
          send(res, 200, 'application/json', JSON.stringify(this.view.snapshot()));
          return;
        case '/metrics':
          this.metrics.render().then(
            (body) => send(res, 200, this.metrics.contentType, body),
            (err: unknown) => {
              this.#o.logger.warn({ err }, 'metrics render failed');
              send(res, 500, 'text/plain', 'metrics unavailable\n');
            },
          );
          return;
        case '/events':
          if (req.method === 'HEAD') send(res, 200, 'text/event-stream', '');
          else this.#openStream(res);
          return;
        default:
          send(res, 404, 'text/plain', 'not found\n');
      }
    } catch (err) {
      this.#o.logger.warn({ err }, 'http request failed');
      if (!res.headersSent) send(res, 500, 'text/plain', 'internal error\n');
      else res.destroy();
    }
  }

  #openStream(res: ServerResponse): void {
    res.writeHead(200, {
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-store',
      connection: 'keep-alive',
    });
    // The browser reconnects by itself after 2 s if the daemon restarts.
    res.write('retry: 2000\n\n');
    res.write(sseFrame('snapshot', this.view.snapshot()));
    this.#clients.add(res);
    res.on('close', () => this.#clients.delete(res));
  }
}

function send(res: ServerResponse, status: number, type: string, body: string): void {
  res.writeHead(status, { 'content-type': type, 'cache-control': 'no-store' }).end(body);
}

function sseFrame(event: string, data: unknown): string {
  // JSON.stringify never emits a raw newline, so one data line is a whole message.
  return `event: ${event}\ndata: ${JSON.stringify(data)}\n\n`;
}

function isLoopback(host: string): boolean {
  return host === 'localhost' || host === '::1' || host.startsWith('127.');
}
