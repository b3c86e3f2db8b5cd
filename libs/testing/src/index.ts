/**
 * @ferry/testing: helpers for integration tests and benchmarks only — a real
 * nats-server launcher (testcontainers or the local binary), child-process
 * control and temp dirs. Never a runtime dependency of a service.
 */
export { startNatsServer, findNatsServerBinary, type NatsServerHandle, type NatsServerOptions } from './nats-server.js';
export { dockerAvailable } from './docker.js';
export { ServiceProcess, ProcessGroup, REPO_ROOT, FERRY_BIN, type SpawnServiceOptions, type Exit } from './process.js';
export { makeTempDir, type TempDir } from './temp.js';
