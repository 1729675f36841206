import { randomUUID } from 'node:crypto';
import { hostname, userInfo } from 'node:os';
import type { Consumer, Kafka } from 'kafkajs';
import type { Prediction, ShadowPrediction } from '../codec/predictions.js';
import { RecordDecoder } from '../codec/records.js';
import { RegistrySchemas } from '../codec/schemas.js';
import type { Config } from '../config/options.js';
import { describeError } from '../errors.js';
import { connectAdmin, createKafka, createProducer, ensureTopics } from '../kafka/client.js';
import { readToEnd } from '../kafka/read-to-end.js';
import { ModelRepository } from '../models/repository.js';
import { readRouting, type RoutingSpec } from '../models/routing.js';
import { parsePrometheus } from './cost.js';
import { runRollout, type RolloutDecision, type RolloutOutcome } from '../rollout/controller.js';
import { StepWindow } from '../rollout/evidence.js';
import type { RolloutPlan } from '../rollout/plan.js';
import { createLogger, type Logger } from '../telemetry/logger.js';
import { registryClient } from './connect.js';
import { readCurrent, validateRouting, writeRoutingEntry } from './route.js';
import { Shutdown } from './shutdown.js';

export interface RolloutStartOptions {
  canary: string;
  plan: RolloutPlan;
  checkEveryMs: number;
  maxHolds: number;
  /** Serve replicas' /metrics, for the latency gate (none: the gate is not judged). */
  metricsUrls: readonly string[];
}

/** Runtime seconds and predictions per version, summed over the replicas' metrics. */
async function runtimeTotals(
  urls: readonly string[],
): Promise<Map<string, { seconds: number; predictions: number }>> {
  const totals = new Map<string, { seconds: number; predictions: number }>();
  for (const url of urls) {
    const response = await fetch(url, { signal: AbortSignal.timeout(5_000) });
    for (const sample of parsePrometheus(await response.text())) {
      const version = sample.labels.version;
      if (version === undefined) continue;
      const entry = totals.get(version) ?? { seconds: 0, predictions: 0 };
      if (sample.name === 'streamscore_inference_seconds_sum') entry.seconds += sample.value;
      else if (sample.name === 'streamscore_predictions_published_total') entry.predictions += sample.value;
      else continue;
      totals.set(version, entry);
    }
  }
  return totals;
}

/** Key of the rollout topic's records, and what `rollout status` reads. */
function headersOf(headers: Record<string, unknown> | undefined): Record<string, string> {
  const result: Record<string, string> = {};
  for (const [name, value] of Object.entries(headers ?? {})) result[name] = String(value);
  return result;
}

/**
 * A consumer of a topic from its end (a throw-away group that commits nothing), handing each
 * record to `onRecord`; stopped with close().
 */
async function follow(
  kafka: Kafka,
  topic: string,
  onRecord: (value: Buffer | null, headers: Record<string, string>) => Promise<void>,
): Promise<Consumer> {
  const consumer = kafka.consumer({ groupId: `streamscore-rollout-${randomUUID()}`, maxWaitTimeInMs: 250 });
  await consumer.connect();
  await consumer.subscribe({ topic, fromBeginning: false });
  await consumer.run({
    autoCommit: false,
    eachMessage: async ({ message }) => onRecord(message.value, headersOf(message.headers)),
  });
  return consumer;
}

/**
 * `streamscore rollout start`: runs the controller for the configured model until the canary is
 * promoted (0), rolled back (1) or the rollout is superseded (1). Serve replicas must follow the
 * routing topic (STREAMSCORE_ROUTING_SOURCE=topic) for its steps to take effect.
 */
export async function startRollout(config: Config, options: RolloutStartOptions): Promise<number> {
  const logger = createLogger(config.logLevel, 'stdout');
  const kafka = createKafka(config, logger);
  const admin = await connectAdmin(kafka, config);
  try {
    await ensureTopics(admin, [config.rolloutTopic], 1);
  } finally {
    await admin.disconnect();
  }
  const decoder = new RecordDecoder(new RegistrySchemas(registryClient(config)), config.maxValueBytes);
  // Each version's decision threshold, for the shadow agreement.
  const repository = ModelRepository.of(config);
  const thresholds = new Map<string, number>();
  for (const version of await repository.listVersions(config.model)) {
    const loaded = await repository.load(config.model, version).catch(() => undefined);
    thresholds.set(version, loaded?.metadata.threshold ?? 0.5);
  }
  const by = `rollout ${userInfo().username}@${hostname()}`;
  const shutdown = new Shutdown(logger, config.shutdownTimeoutMs);
  const producer = createProducer(kafka);
  await producer.connect();
  const outcome = new Promise<RolloutOutcome>((resolve, reject) => {
    runRollout(
      {
        model: config.model,
        now: () => Date.now(),
        sleep: (ms) => new Promise((done) => setTimeout(done, ms)),
        readRouting: async () => tokenOf(await readCurrent(config), config),
        writeRouting: async (spec, expected, reason) => {
          const current = await tokenOf(await readCurrent(config), config);
          if (current.token !== expected) return undefined;
          await validateRouting(config, spec);
          const offset = await writeRoutingEntry(config, kafka, {
            model: config.model,
            spec,
            rollout: { steps: options.plan.steps.map((s) => ({ ...s })) },
            updatedAt: Date.now(),
            updatedBy: by,
            reason,
          });
          return `offset ${offset}`;
        },
        openWindow: (primary, canary) =>
          openWindow(kafka, config, decoder, logger, primary, canary, {
            thresholds,
            metricsUrls: options.metricsUrls,
            everyMs: options.checkEveryMs,
          }),
        record: async (decision) => {
          logDecision(logger, decision);
          await producer.send({
            topic: config.rolloutTopic,
            acks: -1,
            messages: [{ key: config.model, value: JSON.stringify(decision) }],
          });
        },
      },
      options,
    ).then(resolve, reject);
  });
  try {
    const result = await Promise.race([outcome, shutdown.requested.then(() => undefined)]);
    if (result === undefined) {
      logger.warn(
        { model: config.model },
        'rollout stopped by a signal; the routing stays as it is (run `streamscore route rollback` to take the canary out)',
      );
      return 1;
    }
    return result === 'promoted' ? 0 : 1;
  } finally {
    shutdown.dispose();
    await producer.disconnect().catch(() => undefined);
    logger.flush();
  }
}

/** The routing the rollout starts from and its token (the record's offset, or the settings). */
async function tokenOf(
  update: Awaited<ReturnType<typeof readCurrent>>,
  config: Config,
): Promise<{ spec: RoutingSpec; token: string }> {
  if (update?.entry !== undefined) return { spec: update.entry.spec, token: `offset ${update.offset}` };
  return { spec: await readRouting(config), token: 'settings' };
}

/** Evidence of one step, from the predictions and dead-letter topics as serve writes them from now on. */
function openWindow(
  kafka: Kafka,
  config: Config,
  decoder: RecordDecoder,
  logger: Logger,
  primary: string,
  canary: string,
  extra: { thresholds: ReadonlyMap<string, number>; metricsUrls: readonly string[]; everyMs: number },
): { evidence(): ReturnType<StepWindow['evidence']>; close(): Promise<void> } {
  const window = new StepWindow(config.model, primary, canary, {
    primary: extra.thresholds.get(primary) ?? 0.5,
    canary: extra.thresholds.get(canary) ?? 0.5,
  });
  const decoded =
    (handle: (record: unknown, headers: Record<string, string>) => void) =>
    async (value: Buffer | null, headers: Record<string, string>) => {
      const result = await decoder.decode(value);
      if (result.ok) handle(result.record, headers);
    };
  // Runtime time per event of each side since the window opened, from the replicas' counters.
  let timer: NodeJS.Timeout | undefined;
  if (extra.metricsUrls.length > 0) {
    const baseline = runtimeTotals(extra.metricsUrls);
    timer = setInterval(() => {
      void Promise.all([baseline, runtimeTotals(extra.metricsUrls)]).then(
        ([before, now]) => {
          const perEvent = (version: string) => {
            const a = before.get(version) ?? { seconds: 0, predictions: 0 };
            const b = now.get(version);
            if (b === undefined || b.predictions - a.predictions <= 0) return undefined;
            return (b.seconds - a.seconds) / (b.predictions - a.predictions);
          };
          window.set({
            canaryInferencePerEvent: perEvent(canary),
            primaryInferencePerEvent: perEvent(primary),
          });
        },
        (error: unknown) => logger.warn({ err: error }, `rollout: replica metrics: ${describeError(error)}`),
      );
    }, extra.everyMs);
  }
  // A topic that cannot be read leaves its figures out: the gates it feeds are not judged, and a
  // window without predictions ends in a rollback for too few events, never in a promotion.
  const optional = (topic: string, consumer: Promise<Consumer>) =>
    consumer.catch((error: unknown) => {
      logger.warn({ err: error, topic }, `rollout evidence: cannot read ${topic}: ${describeError(error)}`);
      return undefined;
    });
  const consumers = Promise.all([
    optional(
      config.predictionsTopic,
      follow(
        kafka,
        config.predictionsTopic,
        decoded((record, headers) => window.addPrediction(record as Prediction, headers)),
      ),
    ),
    optional(
      config.deadLetterTopic,
      follow(kafka, config.deadLetterTopic, (_value, headers) => {
        window.addDeadLetter(headers);
        return Promise.resolve();
      }),
    ),
    optional(
      config.shadowTopic,
      follow(
        kafka,
        config.shadowTopic,
        decoded((record) => window.addShadow(record as ShadowPrediction)),
      ),
    ),
    optional(
      config.outcomesTopic,
      follow(
        kafka,
        config.outcomesTopic,
        decoded((record) => {
          const { request_id: id, observed } = record as { request_id?: unknown; observed?: unknown };
          if (typeof id === 'string' && typeof observed === 'number') window.addOutcome(id, observed);
        }),
      ),
    ),
  ]);
  return {
    evidence: () => window.evidence(),
    close: async () => {
      clearInterval(timer);
      for (const consumer of await consumers) await consumer?.disconnect().catch(() => undefined);
    },
  };
}

function logDecision(logger: Logger, decision: RolloutDecision): void {
  const fields = {
    model: decision.model,
    canary: decision.canary,
    step: decision.step,
    share: decision.share,
    decision: decision.decision,
    gates: Object.fromEntries(decision.verdicts.map((v) => [v.gate, v.value])),
  };
  const line = `rollout ${decision.decision}: ${decision.reason}`;
  if (decision.decision === 'rollback' || decision.decision === 'superseded') logger.warn(fields, line);
  else logger.info(fields, line);
}

/** `streamscore rollout status`: the decisions of the model's last rollout, oldest first. */
export async function rolloutStatus(config: Config, json: boolean): Promise<number> {
  const logger = createLogger(config.logLevel === 'info' ? 'warn' : config.logLevel, 'stderr');
  const kafka = createKafka(config, logger);
  const admin = await connectAdmin(kafka, config);
  try {
    if (!(await admin.listTopics()).includes(config.rolloutTopic)) {
      process.stdout.write(`no rollout has run yet (${config.rolloutTopic} does not exist)\n`);
      return 3;
    }
  } finally {
    await admin.disconnect();
  }
  const decisions: RolloutDecision[] = [];
  await readToEnd(kafka, config.rolloutTopic, (message) => {
    if (message.key?.toString() === config.model && message.value !== null) {
      try {
        decisions.push(JSON.parse(message.value.toString()) as RolloutDecision);
      } catch {
        // Not a decision: skipped.
      }
    }
    return Promise.resolve();
  });
  const lastStart = decisions.map((d) => d.decision).lastIndexOf('start');
  const last = lastStart < 0 ? [] : decisions.slice(lastStart);
  if (last.length === 0) {
    process.stdout.write(`model ${config.model}: no rollout recorded on ${config.rolloutTopic}\n`);
    return 3;
  }
  if (json) {
    process.stdout.write(`${JSON.stringify(last)}\n`);
    return 0;
  }
  for (const d of last) {
    process.stdout.write(
      `${new Date(d.at).toISOString()}  step ${d.step} (${d.share * 100}%)  ${d.decision.padEnd(10)} ${d.reason}\n`,
    );
  }
  return 0;
}
