/**
 * The per-record work every transport relay does, whatever its Kafka client: decode a requests
 * value with serve's RequestDecoder (straight into a row where it can, as serve does) and encode a
 * Prediction-shaped record for it with serve's RecordEncoder. Schemas are fetched once at start;
 * after that a record costs no await.
 *
 * Configured by the same environment as serve (loadConfig), so the brokers, registry, topics and
 * group are serve's; BENCH_RELAY_OUTPUTS names the outputs to write (the model's, so records are
 * the same size as serve's), BENCH_RELAY_FEATURES the features read into a row, as serve reads
 * them for the model.
 */
import type { EventIdentity } from '../../src/codec/feature-rows.js';
import { RecordEncoder, type Prediction } from '../../src/codec/predictions.js';
import { readSchemaFile, registerValueSchema } from '../../src/codec/registry.js';
import { RequestDecoder } from '../../src/codec/requests.js';
import { RegistrySchemas } from '../../src/codec/schemas.js';
import { registryClient } from '../../src/commands/connect.js';
import { loadConfig } from '../../src/config/load.js';
import type { Config } from '../../src/config/options.js';
import { createLogger, type Logger } from '../../src/telemetry/logger.js';

export interface RelaySetup {
  config: Config;
  logger: Logger;
  codec: RelayCodec;
}

export async function setUpRelay(component: string): Promise<RelaySetup & { log: Logger }> {
  const config = loadConfig({ env: process.env });
  const outputNames = (process.env.BENCH_RELAY_OUTPUTS ?? 'score').split(',');
  const featureNames = (process.env.BENCH_RELAY_FEATURES ?? '').split(',').filter((name) => name !== '');
  const logger = createLogger(config.logLevel);
  const registry = registryClient(config);
  const schemas = new RegistrySchemas(registry);
  const schemaId = await registerValueSchema(
    registry,
    config.predictionsTopic,
    await readSchemaFile('prediction.avsc'),
  );
  const decoder = new RequestDecoder(schemas, config, featureNames);
  decoder.setRowLayout(featureNames);
  const encoder = new RecordEncoder<Prediction>(schemas, schemaId);
  await encoder.prepare();
  return {
    config,
    logger,
    log: logger.child({ component }),
    codec: new RelayCodec(decoder, encoder, outputNames),
  };
}

export class RelayCodec {
  readonly #decoder: RequestDecoder;
  readonly #encoder: RecordEncoder<Prediction>;
  readonly #outputNames: readonly string[];

  constructor(decoder: RequestDecoder, encoder: RecordEncoder<Prediction>, outputNames: readonly string[]) {
    this.#decoder = decoder;
    this.#encoder = encoder;
    this.#outputNames = outputNames;
  }

  /** The prediction record for a requests value; undefined when its schema must be looked up first. */
  encodeNow(value: Buffer | null): Buffer | undefined {
    // serve's decode: straight into the row when it can, else the decoded map.
    let event: EventIdentity | undefined = this.#decoder.readRowNow(value)?.event;
    if (event === undefined) {
      const decoded = this.#decoder.decodeNow(value);
      if (decoded === undefined) return undefined;
      if (!decoded.ok) throw new Error(`relay: undecodable record: ${decoded.message}`);
      event = decoded.event;
    }
    return this.#encoder.encodeNow(this.#prediction(event));
  }

  /** encodeNow(), looking the record's schema up first where needed. */
  async encode(value: Buffer | null): Promise<Buffer> {
    const now = this.encodeNow(value);
    if (now !== undefined) return now;
    const decoded = await this.#decoder.decode(value);
    if (!decoded.ok) throw new Error(`relay: undecodable record: ${decoded.message}`);
    return this.#encoder.encodeNow(this.#prediction(decoded.event));
  }

  #prediction(event: EventIdentity): Prediction {
    const outputs: Record<string, number> = {};
    for (const name of this.#outputNames) outputs[name] = 0.5;
    return {
      request_id: event.request_id,
      entity_key: event.entity_key,
      model_name: 'transport',
      model_version: '0',
      route: 'primary',
      outputs,
      event_time: event.event_time,
      scored_at: Date.now(),
    };
  }
}

/** SIGTERM or SIGINT: the bench stops a relay with SIGTERM once its outputs arrived. */
export class StopSignal {
  readonly received: Promise<void>;
  #stopped = false;

  constructor() {
    this.received = new Promise<void>((resolve) => {
      const stop = () => {
        this.#stopped = true;
        resolve();
      };
      process.once('SIGTERM', stop);
      process.once('SIGINT', stop);
    });
  }

  get stopped(): boolean {
    return this.#stopped;
  }
}

/** Runs a relay's main and exits with its code; a throw is printed and exits 1. */
export function runRelay(name: string, main: () => Promise<number>): void {
  main().then(
    (code) => process.exit(code),
    (error: unknown) => {
      process.stderr.write(
        `${name}: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`,
      );
      process.exit(1);
    },
  );
}
