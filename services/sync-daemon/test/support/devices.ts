// A small two-device stack for the operator tests (watch, status, HTTP):
// one upstream nats-server with the API process, and per device its own bus
// (JetStream) with a daemon; each app is a plain NATS client.
import { join } from 'node:path';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { busSubjects, type EntityState, type StatusReply } from '@ferry/contracts';
import {
  startNatsServer,
  type NatsServerHandle,
  type ProcessGroup,
  type ServiceProcess,
  type TempDir,
} from '@ferry/testing';
import { dec, enc, spawnDaemon, writeDaemonConfig } from './e2e.js';

export const subjects = busSubjects('notes');

export interface Device {
  readonly name: string;
  readonly configPath: string;
  readonly bus: NatsServerHandle;
  readonly app: NatsConnection;
  daemon: ServiceProcess;
}

export async function startDevice(
  procs: ProcessGroup,
  dir: TempDir,
  upstream: NatsServerHandle,
  name: string,
  extra: Record<string, unknown> = {},
): Promise<Device> {
  const bus = await startNatsServer({ jetstream: true });
  const configPath = writeDaemonConfig(
    dir.path,
    name,
    { bus: bus.url, upstream: upstream.url },
    { collections: { notes: { policy: 'lww' } }, retry: { initialMs: 20, maxMs: 200 }, ...extra },
  );
  const daemon = await spawnDaemon(procs, name, configPath);
  const app = await connect({ servers: bus.url });
  return { name, configPath, bus, app, daemon };
}

export async function stopDevice(d: Device | undefined): Promise<void> {
  if (d === undefined) return;
  await d.app.close().catch(() => undefined);
  await d.daemon.stop();
  await d.bus.stop();
}

/** Publishes a ChangeEvent as a request, so it is durably captured when this resolves. */
export async function change(d: Device, event: Record<string, unknown>): Promise<void> {
  await d.app.request(subjects.changes, enc(event), { timeout: 5000 });
}

export async function query(d: Device, id: string): Promise<EntityState | undefined> {
  const reply = await d.app.request(subjects.query, enc({ collection: 'notes', id }), { timeout: 5000 });
  return dec<{ entities: EntityState[] }>(reply.data).entities[0];
}

export async function statusOf(d: Device): Promise<StatusReply> {
  return dec<StatusReply>((await d.app.request(subjects.status, enc({}), { timeout: 5000 })).data);
}

export const dataDirOf = (dir: TempDir, name: string): string => join(dir.path, name);
