/**
 * The pino root logger of the API process: structured JSON on stdout.
 * Components never create loggers; they receive a child of this one.
 */
import { pino, type DestinationStream, type Logger } from 'pino';

export interface LoggerOptions {
  readonly level?: string;
  /** A sink for tests; stdout (synchronous, so lines survive a crash) otherwise. */
  readonly destination?: DestinationStream;
}

export function createLogger(options: LoggerOptions = {}): Logger {
  const destination = options.destination ?? pino.destination({ dest: 1, sync: true });
  return pino({ level: options.level ?? 'info', base: { service: 'ferry-api', pid: process.pid } }, destination);
}
