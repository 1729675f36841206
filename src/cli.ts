#!/usr/bin/env -S node --max-semi-space-size=8
// The flag above (also in the Dockerfile's entrypoint): V8's young generation of Node 22 and later
// grows to tens of MB per semi-space on this thread, which serve's short-lived records fill; 8 MB
// keeps ~100 MB of resident memory off a replica at the same throughput (BENCHMARKS.md).
import { randomBytes } from 'node:crypto';
import { readFileSync, realpathSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { pathToFileURL } from 'node:url';
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { loadConfig, secretFlags } from './config/load.js';
import { OPTIONS, flagName, type Config, type OptionName, type OptionSpec } from './config/options.js';
import { quietKafkajsTimers } from './kafka/client-log.js';
import { ErrorCodes, SECURITY_CODES, StreamscoreError, isStreamscoreError } from './errors.js';

interface CommandSpec {
  summary: string;
  usage: string;
  /** Command-specific flags (beyond the shared settings), with their help text. */
  flags: Record<string, { type: 'string' | 'boolean'; help: string; default?: string }>;
  run(
    config: Config,
    flags: Record<string, string | boolean | undefined>,
    positionals: string[],
  ): Promise<number>;
}

const COMMANDS: Record<string, CommandSpec> = {
  serve: {
    summary: 'Consume feature events, score them in micro-batches, publish predictions.',
    usage: 'streamscore serve [--model NAME] [--batch-max-rows N] [--batch-linger-ms MS] [...settings]',
    flags: {},
    run: async (config) => (await import('./commands/serve.js')).serve(config),
  },
  produce: {
    summary: 'Write synthetic feature events for the configured model (load generator).',
    usage: 'streamscore produce [--count N] [--rate EVENTS_PER_S] [--keys N] [--seed N] [...settings]',
    flags: {
      count: { type: 'string', help: 'Events to write.', default: '1000' },
      rate: { type: 'string', help: 'Events per second; 0 = as fast as possible.', default: '0' },
      keys: { type: 'string', help: 'Distinct entity keys.', default: '1000' },
      seed: { type: 'string', help: 'Random seed; the same seed writes the same features.', default: '1' },
      'run-id': { type: 'string', help: 'Prefix of request ids (default: random).' },
      spec: { type: 'string', help: 'Feature distribution file (default training/<model>_features.json).' },
      shift: {
        type: 'string',
        help: 'Drift: FEATURE=K[,FEATURE=K] adds K standard deviations to the feature (a mean shift).',
      },
      mix: {
        type: 'string',
        help: 'Drift: FEATURE=P[,FEATURE=P] draws a bernoulli feature with rate P instead.',
      },
      'drift-from': { type: 'string', help: 'Event index from which --shift and --mix apply.', default: '0' },
      'repeat-share': {
        type: 'string',
        help: "Share of events (0-1) repeating an earlier event's features exactly (prediction cache traffic).",
        default: '0',
      },
      outcomes: {
        type: 'boolean',
        help: "After the events, write their outcomes (labels drawn from the spec's label rule) to the outcomes topic.",
      },
      'outcome-share': { type: 'string', help: 'Share of events (0-1) that get an outcome.', default: '1' },
      'outcome-delay-ms': {
        type: 'string',
        help: 'Wait after the last event before writing the outcomes, milliseconds.',
        default: '0',
      },
    },
    run: async (config, flags) =>
      (await import('./commands/produce.js')).produce(config, {
        count: wholeNumber(flags, 'count', 1),
        rate: wholeNumber(flags, 'rate', 0),
        keys: wholeNumber(flags, 'keys', 1),
        seed: wholeNumber(flags, 'seed', 0),
        runId: typeof flags['run-id'] === 'string' ? flags['run-id'] : randomBytes(4).toString('hex'),
        spec: typeof flags.spec === 'string' ? flags.spec : undefined,
        repeatShare: share(flags, 'repeat-share'),
        outcomes:
          flags.outcomes === true
            ? { share: share(flags, 'outcome-share'), delayMs: wholeNumber(flags, 'outcome-delay-ms', 0) }
            : undefined,
        drift:
          typeof flags.shift === 'string' || typeof flags.mix === 'string'
            ? {
                fromEvent: wholeNumber(flags, 'drift-from', 0),
                shifts: assignments(flags, 'shift', -100, 100),
                mixes: assignments(flags, 'mix', 0, 1),
              }
            : undefined,
      }),
  },
  backfill: {
    summary: 'Score a past range of a topic with one model version, into an output topic; resumable.',
    usage:
      'streamscore backfill --from TIME|beginning [--to TIME|now] --model NAME --version V --output TOPIC [...]',
    flags: {
      from: { type: 'string', help: 'Start: ISO-8601 time with a zone, epoch ms, or beginning.' },
      to: {
        type: 'string',
        help: 'End (exclusive): ISO-8601 time, epoch ms, or now (fixed when the job starts).',
      },
      'from-offsets': {
        type: 'string',
        help: 'Start by offsets, PARTITION:OFFSET,...; partitions not listed are left out.',
      },
      'to-offsets': {
        type: 'string',
        help: 'End by offsets (exclusive), PARTITION:OFFSET,...; partitions not listed are read to their end.',
      },
      topic: { type: 'string', help: 'Topic of FeatureEvent records to read (default: the requests topic).' },
      version: { type: 'string', help: "Model version to score with (any on disk, or 'latest')." },
      output: {
        type: 'string',
        help: 'Topic for the Prediction records (route "backfill"); created if missing.',
      },
      'dead-letter-topic': { type: 'string', help: "The job's dead-letter topic (default: OUTPUT.dlq)." },
      job: {
        type: 'string',
        help: 'Job id: the same id resumes the job, or shares it between processes (default: from the arguments).',
      },
      'compare-with': {
        type: 'string',
        help: 'A predictions topic serve wrote over the same range: report how the two versions agree.',
      },
      report: { type: 'string', help: 'Where the comparison report goes (default: JOB.compare.json).' },
      'compare-max-events': {
        type: 'string',
        help: 'Events compared at most; beyond, a fixed sample of request ids.',
        default: '2000000',
      },
    },
    run: async (config, flags) => {
      const text = (name: string) => (typeof flags[name] === 'string' ? flags[name] : undefined);
      const version = text('version');
      const output = text('output');
      if (version === undefined || output === undefined) {
        throw new StreamscoreError('USAGE', 'a backfill needs --version V and --output TOPIC');
      }
      return (await import('./commands/backfill.js')).backfill(config, {
        topic: text('topic') ?? config.requestsTopic,
        version,
        output,
        deadLetterTopic: text('dead-letter-topic'),
        job: text('job'),
        range: {
          from: text('from'),
          to: text('to'),
          fromOffsets: text('from-offsets'),
          toOffsets: text('to-offsets'),
        },
        compareWith: text('compare-with'),
        report: text('report'),
        compareMaxEvents: wholeNumber(flags, 'compare-max-events', 1),
        terminal: process.stderr.isTTY,
      });
    },
  },
  drift: {
    summary: 'Watch requests, predictions and shadow outputs; report drift per window and model version.',
    usage: 'streamscore drift [--drift-window-events N] [--drift-window-ms MS] [...settings]',
    flags: {},
    run: async (config) => (await import('./commands/drift.js')).drift(config),
  },
  tail: {
    summary: 'Print records of a topic as JSON lines, decoded (predictions by default).',
    usage: 'streamscore tail [--topic NAME] [--count N] [--timeout-ms MS] [...settings]',
    flags: {
      topic: { type: 'string', help: 'Topic to read (default: the predictions topic).' },
      count: { type: 'string', help: 'Stop after this many records.', default: '10' },
      'timeout-ms': { type: 'string', help: 'Stop after this long, milliseconds.', default: '10000' },
    },
    run: async (config, flags) =>
      (await import('./commands/tail.js')).tail(config, {
        topic: typeof flags.topic === 'string' ? flags.topic : config.predictionsTopic,
        count: wholeNumber(flags, 'count', 1),
        timeoutMs: wholeNumber(flags, 'timeout-ms', 1),
      }),
  },
  cost: {
    summary: "What a million predictions cost, per model version, from a replica's metrics and your prices.",
    usage:
      'streamscore cost --core-hour-price P [--gpu-hour-price P] [--metrics-url URL] [--inference-threads N] [--json]',
    flags: {
      'metrics-url': {
        type: 'string',
        help: "A serve replica's metrics.",
        default: 'http://127.0.0.1:9464/metrics',
      },
      'core-hour-price': { type: 'string', help: 'Price of one CPU core for one hour (any currency).' },
      'gpu-hour-price': {
        type: 'string',
        help: 'Price of one GPU for one hour, charged on runtime time, when inference runs on a GPU.',
        default: '0',
      },
      json: { type: 'boolean', help: 'Print the report as JSON.' },
    },
    run: async (config, flags) => {
      const price = (name: string) => {
        const value = Number(flags[name]);
        if (typeof flags[name] !== 'string' || flags[name] === '' || !Number.isFinite(value) || value < 0)
          throw new StreamscoreError(
            'USAGE',
            `--${name}: ${JSON.stringify(flags[name] ?? '')} is not a price >= 0`,
          );
        return value;
      };
      return (await import('./commands/cost.js')).cost({
        url: String(flags['metrics-url']),
        prices: {
          coreHour: price('core-hour-price'),
          gpuHour: price('gpu-hour-price'),
          // The replica's own setting (0: one a core, the runtime's choice): a second of runtime
          // call is that many core-seconds.
          inferenceThreads: config.inferenceThreads === 0 ? availableParallelism() : config.inferenceThreads,
        },
        json: flags.json === true,
      });
    },
  },
  models: {
    summary: 'Model repository: list versions, validate a version folder, describe a model.',
    usage: 'streamscore models list | validate <models/NAME/VERSION> | describe <NAME>',
    flags: {},
    run: async (config, _flags, positionals) => {
      const [sub, argument] = positionals;
      const commands = await import('./commands/models.js');
      if (sub === 'list') return commands.listModels(config);
      if (sub === 'validate') return commands.validateModel(config, argument);
      if (sub === 'describe') return commands.describeModel(config, argument);
      throw new StreamscoreError(
        'USAGE',
        `unknown models subcommand ${JSON.stringify(sub ?? '')}; expected list, validate <path> or describe <name>`,
      );
    },
  },
  rollout: {
    summary:
      'Progressive canary: step its share up on the routing topic, judge each step, promote or roll back.',
    usage:
      'streamscore rollout start --canary V [--steps 5%:10m,25%:10m,50%:10m,100%:10m] [...] | status [--json]',
    flags: {
      canary: { type: 'string', help: '`start`: the version to roll out (on disk, valid).' },
      steps: {
        type: 'string',
        help: 'SHARE[:HOLD],... rising to 100%; a step without HOLD is held --hold.',
        default: '5%,25%,50%,100%',
      },
      hold: { type: 'string', help: 'Default hold of a step (500ms, 30s, 10m, 1h).', default: '10m' },
      'check-every': { type: 'string', help: "How often a step's evidence is judged.", default: '5s' },
      'max-holds': {
        type: 'string',
        help: 'A step without enough canary events after this many holds is rolled back.',
        default: '3',
      },
      'min-events': {
        type: 'string',
        help: 'Canary events a window needs before it is judged.',
        default: '500',
      },
      'max-failure-rate': {
        type: 'string',
        help: 'Largest share of canary events it may fail on.',
        default: '0.01',
      },
      'max-score-psi': {
        type: 'string',
        help: "Largest PSI of the canary's scores against the primary's in a window.",
        default: '0.2',
      },
      'metrics-urls': {
        type: 'string',
        help: "Serve replicas' /metrics URLs, comma-separated, for the latency gate (without: not judged).",
      },
      json: { type: 'boolean', help: '`status`: print the decisions as JSON.' },
    },
    run: async (config, flags, positionals) => {
      const [sub = 'status', ...extra] = positionals;
      if (extra.length > 0)
        throw new StreamscoreError('USAGE', `rollout ${sub}: unexpected ${JSON.stringify(extra)}`);
      const commands = await import('./commands/rollout.js');
      if (sub === 'status') return commands.rolloutStatus(config, flags.json === true);
      if (sub !== 'start')
        throw new StreamscoreError(
          'USAGE',
          `unknown rollout subcommand ${JSON.stringify(sub)}; expected start or status`,
        );
      const { DEFAULT_GATES, parseDuration, parseSteps } = await import('./rollout/plan.js');
      if (typeof flags.canary !== 'string' || flags.canary === '')
        throw new StreamscoreError('USAGE', 'rollout start needs --canary V');
      const fraction = (name: string) => {
        const value = Number(flags[name]);
        if (!(value >= 0 && value <= 1) || flags[name] === '')
          throw new StreamscoreError(
            'USAGE',
            `--${name}: ${JSON.stringify(flags[name])} is not a number from 0 to 1`,
          );
        return value;
      };
      const steps = parseSteps(String(flags.steps), parseDuration(String(flags.hold), '--hold'));
      return commands.startRollout(config, {
        canary: flags.canary,
        plan: {
          steps,
          gates: {
            ...DEFAULT_GATES,
            minEvents: wholeNumber(flags, 'min-events', 1),
            maxFailureRate: fraction('max-failure-rate'),
            maxScorePsi:
              Number(flags['max-score-psi']) >= 0
                ? Number(flags['max-score-psi'])
                : fraction('max-score-psi'),
          },
        },
        checkEveryMs: parseDuration(String(flags['check-every']), '--check-every'),
        maxHolds: wholeNumber(flags, 'max-holds', 1),
        metricsUrls:
          typeof flags['metrics-urls'] === 'string'
            ? flags['metrics-urls']
                .split(',')
                .map((url) => url.trim())
                .filter((url) => url !== '')
            : [],
      });
    },
  },
  route: {
    summary: "Show or change a model's routing on the routing topic, which serve replicas follow.",
    usage:
      'streamscore route [show] | set [--primary V] [--canary V --share S] [--shadows V,V] [--fallback V] | promote | rollback [--reason TEXT]',
    flags: {
      primary: { type: 'string', help: "Primary version: a version or 'latest'." },
      canary: { type: 'string', help: "Canary version; 'none' removes the canary." },
      share: { type: 'string', help: 'Share of event keys (0 to 1) routed to the canary.' },
      shadows: { type: 'string', help: "Comma-separated shadow versions; 'none' for none." },
      fallback: { type: 'string', help: "Fallback version; 'none' removes it." },
      reason: { type: 'string', help: 'Why the routing changes, kept in the record.', default: '' },
      by: { type: 'string', help: 'Who changes it (default: user@host).' },
      json: { type: 'boolean', help: '`route show`: print the record as JSON.' },
    },
    run: async (config, flags, positionals) => {
      const [sub = 'show', extra] = positionals;
      const commands = await import('./commands/route.js');
      const text = (name: string) => (typeof flags[name] === 'string' ? flags[name] : undefined);
      if (extra !== undefined)
        throw new StreamscoreError('USAGE', `route ${sub}: unexpected ${JSON.stringify(extra)}`);
      if (sub === 'show') return commands.showRoute(config, flags.json === true);
      const options = { reason: String(flags.reason ?? ''), by: text('by') };
      if (sub === 'promote' || sub === 'rollback')
        return commands.changeRoute(config, { kind: sub }, options);
      if (sub === 'set') {
        const changes = {
          primary: text('primary'),
          canary: text('canary'),
          share: text('share') === undefined ? undefined : share(flags, 'share'),
          shadows: text('shadows'),
          fallback: text('fallback'),
        };
        if (Object.values(changes).every((value) => value === undefined))
          throw new StreamscoreError(
            'USAGE',
            'route set needs at least one of --primary, --canary, --share, --shadows, --fallback',
          );
        return commands.changeRoute(config, { kind: 'set', changes }, options);
      }
      throw new StreamscoreError(
        'USAGE',
        `unknown route subcommand ${JSON.stringify(sub)}; expected show, set, promote or rollback`,
      );
    },
  },
};

function wholeNumber(flags: Record<string, unknown>, name: string, min: number): number {
  const value = Number(flags[name]);
  if (!Number.isInteger(value) || value < min) {
    throw new StreamscoreError(
      'USAGE',
      `--${name}: ${JSON.stringify(flags[name])} is not a whole number >= ${min}`,
    );
  }
  return value;
}

/** A number from 0 to 1. */
function share(flags: Record<string, unknown>, name: string): number {
  const value = Number(flags[name]);
  if (flags[name] === '' || !Number.isFinite(value) || value < 0 || value > 1) {
    throw new StreamscoreError(
      'USAGE',
      `--${name}: ${JSON.stringify(flags[name])} is not a number from 0 to 1`,
    );
  }
  return value;
}

/** FEATURE=NUMBER[,FEATURE=NUMBER...] with each number in [min, max]. */
function assignments(
  flags: Record<string, unknown>,
  name: string,
  min: number,
  max: number,
): Record<string, number> {
  const text = flags[name];
  const result: Record<string, number> = {};
  if (typeof text !== 'string') return result;
  for (const part of text.split(',')) {
    const [feature, value] = part.split('=');
    const number = Number(value);
    if (!feature || value === undefined || !Number.isFinite(number) || number < min || number > max) {
      throw new StreamscoreError(
        'USAGE',
        `--${name}: "${part}" is not FEATURE=NUMBER with NUMBER from ${min} to ${max}`,
      );
    }
    result[feature.trim()] = number;
  }
  return result;
}

function settingsHelp(): string {
  const lines = (Object.keys(OPTIONS) as OptionName[]).map((name) => {
    const spec: OptionSpec = OPTIONS[name];
    const shown =
      spec.secret === true || spec.default === undefined ? '' : ` (default: ${String(spec.default)})`;
    return `  --${flagName(name)}, ${spec.env}\n      ${spec.description}${shown}`;
  });
  return `Settings (flag, or environment variable, or key in --config FILE):\n${lines.join('\n')}`;
}

function help(command?: string): string {
  if (command !== undefined && command in COMMANDS) {
    const spec = COMMANDS[command]!;
    const own = Object.entries(spec.flags).map(
      ([flag, f]) =>
        `  --${flag}\n      ${f.help}${f.default !== undefined ? ` (default: ${f.default})` : ''}`,
    );
    return [
      `${spec.summary}\n\nUsage: ${spec.usage}`,
      own.length > 0 ? `Options:\n${own.join('\n')}` : '',
      '  --config FILE\n      JSON file of settings (camelCase keys).',
      settingsHelp(),
    ]
      .filter(Boolean)
      .join('\n\n');
  }
  const list = Object.entries(COMMANDS).map(([name, spec]) => `  ${name.padEnd(8)} ${spec.summary}`);
  return `streamscore: event-streaming inference on Kafka with ONNX models.\n\nUsage: streamscore <command> [options]\n\nCommands:\n${list.join('\n')}\n\nRun \`streamscore <command> --help\` for its options and settings; \`streamscore --version\` prints the version.`;
}

/** The version in the package.json beside dist/ (the same file in a checkout and an installed package). */
export function packageVersion(): string {
  const text = readFileSync(new URL('../../package.json', import.meta.url), 'utf8');
  return String((JSON.parse(text) as { version?: unknown }).version);
}

export async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  if (command === '--version' || command === '-v' || command === 'version') {
    process.stdout.write(`streamscore ${packageVersion()} (Node ${process.versions.node})\n`);
    return 0;
  }
  if (command === undefined || command === '--help' || command === '-h' || command === 'help') {
    process.stdout.write(`${help(rest[0])}\n`);
    return command === undefined ? 2 : 0;
  }
  const spec = COMMANDS[command];
  if (spec === undefined) {
    throw new StreamscoreError(
      'USAGE',
      `unknown command ${JSON.stringify(command)}; expected one of ${Object.keys(COMMANDS).join(', ')}`,
    );
  }
  const options: NonNullable<ParseArgsConfig['options']> = {
    help: { type: 'boolean', short: 'h' },
    config: { type: 'string' },
  };
  for (const [flag, f] of Object.entries(spec.flags))
    options[flag] = { type: f.type, ...(f.default !== undefined ? { default: f.default } : {}) };
  for (const name of Object.keys(OPTIONS)) options[flagName(name)] = { type: 'string' };
  let parsed;
  try {
    parsed = parseArgs({ args: rest, options, allowPositionals: true, strict: true });
  } catch (error) {
    throw new StreamscoreError(
      'USAGE',
      `${(error as Error).message}\nRun \`streamscore ${command} --help\`.`,
    );
  }
  const values = parsed.values as Record<string, string | boolean | undefined>;
  if (values.help === true) {
    process.stdout.write(`${help(command)}\n`);
    return 0;
  }
  const flags: Partial<Record<OptionName, string>> = {};
  for (const name of Object.keys(OPTIONS) as OptionName[]) {
    const value = values[flagName(name)];
    if (typeof value === 'string') flags[name] = value;
  }
  for (const name of secretFlags(flags)) {
    const spec: OptionSpec = OPTIONS[name];
    const file = (Object.keys(OPTIONS) as OptionName[]).find(
      (other) => (OPTIONS[other] as OptionSpec).secretFile === name,
    );
    process.stderr.write(
      `streamscore: warning: --${flagName(name)} puts a secret on the command line, where other users of this host can read it (ps, /proc); set ${spec.env}${file === undefined ? '' : ` or ${OPTIONS[file].env}`} instead\n`,
    );
  }
  const config = loadConfig({
    ...(typeof values.config === 'string' ? { file: values.config } : {}),
    flags,
  });
  return spec.run(config, values, parsed.positionals);
}

/**
 * Exit codes: 0 ok, 1 runtime failure, 2 usage, configuration or routing refused, 3 nothing found (tail, route show),
 * 4 credentials or trust refused (SASL, TLS certificate, registry authorisation).
 */
export function exitCodeFor(error: unknown): number {
  if (!isStreamscoreError(error)) return 1;
  if (error.code === 'USAGE' || error.code === 'CONFIG_INVALID' || error.code === 'ROUTING_INVALID') return 2;
  return SECURITY_CODES.has(error.code) ? 4 : 1;
}

function isEntryPoint(): boolean {
  const script = process.argv[1];
  if (script === undefined) return false;
  try {
    return pathToFileURL(realpathSync(script)).href === import.meta.url;
  } catch {
    return false;
  }
}

if (isEntryPoint()) {
  quietKafkajsTimers();
  main(process.argv.slice(2)).then(
    // Exit explicitly: a client library's lingering timer must not keep a finished command alive.
    (code) => process.exit(code),
    (error: unknown) => {
      if (isStreamscoreError(error)) {
        const cause = error.cause instanceof Error ? `\n  cause: ${error.cause.message}` : '';
        process.stderr.write(
          `streamscore: ${error.code} (${ErrorCodes[error.code]}): ${error.message}${cause}\n`,
        );
      } else {
        process.stderr.write(
          `streamscore: unexpected error: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`,
        );
      }
      process.exit(exitCodeFor(error));
    },
  );
}
