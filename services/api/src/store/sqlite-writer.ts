/**
 * The SqliteStore's writer thread: runs a `Writer` (writer.ts) on the store
 * file named in workerData, fed by and answering to the store's WriterClient.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { Writer } from './writer.js';
import type { WriterData, WriterRequest } from './writer-protocol.js';

const port = parentPort;
if (port === null) throw new Error('sqlite-writer: must run as a worker thread');
const writer = new Writer(workerData as WriterData, { post: (reply) => port.postMessage(reply) });
port.on('message', (message: WriterRequest) => writer.receive(message));
