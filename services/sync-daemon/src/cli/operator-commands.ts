/**
 * The operator commands served by the sync-daemon package besides `daemon`:
 * status, watch, doctor (about a daemon), start and demo (a local stack).
 * Returns null for a role it does not serve.
 */
import { runDemoCli } from './demo-cli.js';
import { runDoctorCli } from './doctor-cli.js';
import { runStartCli } from './start-cli.js';
import { runStatusCli } from './status-cli.js';
import { runWatchCli } from './watch-cli.js';

const COMMANDS: Readonly<Record<string, (argv: readonly string[]) => Promise<number>>> = {
  status: runStatusCli,
  watch: runWatchCli,
  doctor: runDoctorCli,
  start: runStartCli,
  demo: runDemoCli,
};

export function runOperatorCli(role: string, argv: readonly string[]): Promise<number> | null {
  const command = COMMANDS[role];
  return command === undefined ? null : command(argv);
}
