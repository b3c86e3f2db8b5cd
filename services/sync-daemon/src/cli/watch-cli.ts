/**
 * `ferry watch`: a running daemon's sync events, live, from
 * `ferry.<app>.events`. For people: one readable line per event and a
 * pending/lag line kept at the bottom. `--json`: exactly one SyncEvent per
 * line on stdout (the documented shape, validated), nothing else there.
 * Follows the bus through reconnects; Ctrl-C (or SIGTERM) stops it.
 */
import type { NatsConnection } from '@nats-io/transport-node';
import { decodeWith, syncEventSchema, type StatusReply, type SyncEvent } from '@ferry/contracts';
import {
  BUS_TARGET_FLAGS,
  CliFailure,
  EXIT_OK,
  checkFlags,
  connectNats,
  palette,
  resolveBusTarget,
  runCommand,
  type BusTarget,
} from './common.js';
import { clockTime, describeEvent, statusLine } from './format.js';
import { requestStatus } from './status-cli.js';

export const WATCH_HELP = `usage: ferry watch (--config FILE | --bus-url URL --app NAME) [--json] [--all] [--verbose]

Live sync events of a running daemon (subject ferry.<app>.events), one line
each, with a pending/lag line kept up to date at the bottom. Ctrl-C stops.

  --config FILE     the daemon's config (bus URL, app)            env FERRY_CONFIG
  --bus-url URL     the daemon's local NATS, instead of --config  env FERRY_BUS_URL
  --app NAME        the app the daemon serves, with --bus-url      env FERRY_APP
  --prefix P        bus subject prefix (default "ferry")           env FERRY_BUS_PREFIX
  --json            one SyncEvent JSON object per line on stdout, for machines
                    (the event catalogue is in README.md); notices go to stderr
  --all             also show the downloader's empty heartbeat pulls (every 5 s)
  --verbose         stack traces on failure

Exit status: 0 after Ctrl-C, 1 when the bus is unreachable at start, 2 for a bad
command line or config.`;

/** How often the bottom line is refreshed without events (lag and "last sync" age move on). */
const STATUS_REFRESH_MS = 2000;
/** After an event, the status is asked again at most this often. */
const STATUS_AFTER_EVENT_MS = 250;

export function runWatchCli(argv: readonly string[]): Promise<number> {
  return runCommand('watch', argv, async () => {
    if (argv.includes('--help') || argv.includes('-h')) {
      process.stdout.write(`${WATCH_HELP}\n`);
      return EXIT_OK;
    }
    checkFlags(argv, BUS_TARGET_FLAGS, ['--json', '--all', '--verbose']);
    const target = resolveBusTarget(argv, process.env);
    const nc = await connectNats(target.url, { ...target.auth, name: 'ferry-watch', what: 'the bus', follow: true });
    const printer = argv.includes('--json') ? new JsonPrinter() : new HumanPrinter(target, nc, argv.includes('--all'));
    nc.subscribe(target.subjects.events, {
      callback: (err, msg) => {
        if (err !== null) return;
        const event = decodeWith(syncEventSchema, msg.data, 'event');
        if (event.ok) printer.event(event.value);
        else process.stderr.write(`ferry watch: skipped a malformed event (${event.message})\n`);
      },
    });
    try {
      await nc.flush();
    } catch (err) {
      throw new CliFailure(`cannot subscribe on ${target.url}: ${err instanceof Error ? err.message : String(err)}`);
    }
    process.stderr.write(`watching ${target.subjects.events} on ${target.url} (Ctrl-C to stop)\n`);
    printer.start();
    void (async () => {
      for await (const s of nc.status()) {
        if (s.type === 'disconnect') printer.notice(`bus connection lost; reconnecting to ${target.url}…`);
        else if (s.type === 'reconnect') printer.notice('bus connection back');
      }
    })();
    await new Promise<void>((resolve) => {
      process.once('SIGINT', () => resolve());
      process.once('SIGTERM', () => resolve());
    });
    printer.stop();
    await nc.drain().catch(() => undefined);
    return EXIT_OK;
  });
}

interface Printer {
  start(): void;
  event(e: SyncEvent): void;
  notice(text: string): void;
  stop(): void;
}

class JsonPrinter implements Printer {
  start(): void {}
  event(e: SyncEvent): void {
    process.stdout.write(`${JSON.stringify(e)}\n`);
  }
  notice(text: string): void {
    process.stderr.write(`ferry watch: ${text}\n`);
  }
  stop(): void {}
}

/**
 * On a terminal the status line is redrawn in place at the bottom; otherwise
 * (a pipe, a log file) it is printed as its own line whenever it changes.
 */
class HumanPrinter implements Printer {
  readonly #tty = process.stdout.isTTY === true;
  readonly #c = palette(process.stdout);
  #bottom = '';
  #lastPrinted = '';
  #timer: NodeJS.Timeout | null = null;
  #soon: NodeJS.Timeout | null = null;
  #asking = false;

  constructor(
    private readonly target: BusTarget,
    private readonly nc: NatsConnection,
    private readonly all: boolean,
  ) {}

  start(): void {
    void this.#refresh();
    this.#timer = setInterval(() => void this.#refresh(), STATUS_REFRESH_MS);
  }

  stop(): void {
    if (this.#timer !== null) clearInterval(this.#timer);
    if (this.#soon !== null) clearTimeout(this.#soon);
    if (this.#tty && this.#bottom !== '') process.stdout.write('\n');
  }

  event(e: SyncEvent): void {
    // The downloader pulls every 5 s even without news; those empty pulls are noise to a person.
    if (!this.all && e.type === 'pull-received' && e.count === 0) return;
    const colour =
      e.type === 'conflict' || e.type === 'rejected' || e.type === 'error' || e.type === 'dead-lettered'
        ? this.#c.red
        : e.type === 'offline' || e.type === 'push-failed'
          ? this.#c.yellow
          : e.type === 'applied' || e.type === 'push-acked' || e.type === 'online'
            ? this.#c.green
            : (s: string) => s;
    this.#line(`${this.#c.dim(clockTime(e.at))}  ${colour(e.type.padEnd(17))} ${describeEvent(e)}`);
    this.#soon ??= setTimeout(() => {
      this.#soon = null;
      void this.#refresh();
    }, STATUS_AFTER_EVENT_MS);
  }

  notice(text: string): void {
    this.#line(this.#c.yellow(`-- ${text}`));
  }

  #line(text: string): void {
    if (this.#tty) process.stdout.write(`\r\u001b[K${text}\n${this.#bottom}`);
    else process.stdout.write(`${text}\n`);
  }

  async #refresh(): Promise<void> {
    if (this.#asking) return;
    this.#asking = true;
    let text: string;
    // What counts as a change for a non-terminal (the "last sync … ago" part moves on by itself).
    let key: string;
    try {
      const s: StatusReply = await requestStatus(this.nc, this.target, 1500);
      text = statusLine(s, Date.now());
      text = s.online ? text : this.#c.yellow(text);
      key = `${s.online} ${s.pending} ${s.cursor} ${s.lag}`;
    } catch (err) {
      text = this.#c.red(err instanceof Error ? err.message : String(err));
      key = text;
    } finally {
      this.#asking = false;
    }
    const line = this.#c.bold(`── ${text} ──`);
    if (this.#tty) {
      this.#bottom = line;
      process.stdout.write(`\r\u001b[K${line}`);
    } else if (key !== this.#lastPrinted) {
      this.#lastPrinted = key;
      process.stdout.write(`${line}\n`);
    }
  }
}
