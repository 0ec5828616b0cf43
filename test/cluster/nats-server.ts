/** The nats-server harness lives with the bench suite that ships it (bench/nats-server.ts). */
export * from '../../bench/nats-server.js';
