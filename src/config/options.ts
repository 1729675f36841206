/**
 * The one list of settings. Each is read, in increasing precedence, from its default, the JSON
 * config file (`--config`, camelCase keys), the environment (the `env` name) and the command line
 * (`--kebab-case`). docs/reference.md's settings table is checked against this list by a unit test.
 */
export type OptionKind = 'string' | 'integer' | 'number' | 'boolean' | 'list';

export interface OptionSpec {
  kind: OptionKind;
  env: string;
  default?: string | number | boolean | readonly string[];
  /** Allowed values for a string option. */
  choices?: readonly string[];
  min?: number;
  max?: number;
  secret?: boolean;
  /** A file whose contents are the value of this secret (the Kubernetes-secret convention). */
  secretFile?: string;
  /** A path that must name a readable file when given (checked at start-up). */
  file?: boolean;
  description: string;
}

export const OPTIONS = {
  kafkaBrokers: {
    kind: 'list',
    env: 'KAFKA_BROKERS',
    default: ['127.0.0.1:9092'],
    min: 1,
    description: 'Comma-separated bootstrap brokers, host:port.',
  },
  kafkaClientId: {
    kind: 'string',
    env: 'KAFKA_CLIENT_ID',
    default: 'streamscore',
    description: 'Kafka client id.',
  },
  kafkaSsl: {
    kind: 'boolean',
    env: 'KAFKA_SSL',
    default: false,
    description: "Connect to the brokers over TLS (verified against the system's CAs, or KAFKA_SSL_CA_FILE).",
  },
  kafkaSslCaFile: {
    kind: 'string',
    env: 'KAFKA_SSL_CA_FILE',
    default: '',
    file: true,
    description:
      "PEM file of the CA certificates that sign the brokers' certificates (replaces the system's CAs).",
  },
  kafkaSslCertFile: {
    kind: 'string',
    env: 'KAFKA_SSL_CERT_FILE',
    default: '',
    file: true,
    description: 'PEM client certificate (chain) for mutual TLS; needs KAFKA_SSL_KEY_FILE.',
  },
  kafkaSslKeyFile: {
    kind: 'string',
    env: 'KAFKA_SSL_KEY_FILE',
    default: '',
    file: true,
    description: 'PEM private key of the client certificate.',
  },
  kafkaSslKeyPassword: {
    kind: 'string',
    env: 'KAFKA_SSL_KEY_PASSWORD',
    default: '',
    secret: true,
    description: 'Passphrase of an encrypted KAFKA_SSL_KEY_FILE.',
  },
  kafkaSslKeyPasswordFile: {
    kind: 'string',
    env: 'KAFKA_SSL_KEY_PASSWORD_FILE',
    default: '',
    secretFile: 'kafkaSslKeyPassword',
    description: 'File holding KAFKA_SSL_KEY_PASSWORD.',
  },
  kafkaSslServername: {
    kind: 'string',
    env: 'KAFKA_SSL_SERVERNAME',
    default: '',
    description:
      "Host name the brokers' certificates must name (and sent as SNI), when it differs from the address connected to.",
  },
  kafkaSaslMechanism: {
    kind: 'string',
    env: 'KAFKA_SASL_MECHANISM',
    default: 'none',
    choices: ['none', 'plain', 'scram-sha-256', 'scram-sha-512'],
    description: 'SASL mechanism; none disables SASL.',
  },
  kafkaSaslPlainWithoutTls: {
    kind: 'boolean',
    env: 'KAFKA_SASL_PLAIN_WITHOUT_TLS',
    default: false,
    description:
      'Allow SASL PLAIN without KAFKA_SSL, which sends the password in clear text; refused unless true.',
  },
  kafkaSaslUsername: {
    kind: 'string',
    env: 'KAFKA_SASL_USERNAME',
    default: '',
    description: 'SASL user name.',
  },
  kafkaSaslPassword: {
    kind: 'string',
    env: 'KAFKA_SASL_PASSWORD',
    default: '',
    secret: true,
    description: 'SASL password.',
  },
  kafkaSaslPasswordFile: {
    kind: 'string',
    env: 'KAFKA_SASL_PASSWORD_FILE',
    default: '',
    secretFile: 'kafkaSaslPassword',
    description: 'File holding KAFKA_SASL_PASSWORD (a trailing newline is ignored).',
  },
  kafkaConnectTimeoutMs: {
    kind: 'integer',
    env: 'KAFKA_CONNECT_TIMEOUT_MS',
    default: 10_000, // ten seconds
    min: 100,
    description: 'How long to wait for the cluster at start-up before giving up, milliseconds.',
  },
  schemaRegistryUrl: {
    kind: 'string',
    env: 'SCHEMA_REGISTRY_URL',
    default: 'http://127.0.0.1:8081/apis/ccompat/v7',
    description: 'Base URL of the Confluent-compatible schema registry API.',
  },
  schemaRegistryUsername: {
    kind: 'string',
    env: 'SCHEMA_REGISTRY_USERNAME',
    default: '',
    description: 'Basic-auth user for the registry.',
  },
  schemaRegistryPassword: {
    kind: 'string',
    env: 'SCHEMA_REGISTRY_PASSWORD',
    default: '',
    secret: true,
    description: 'Basic-auth password for the registry.',
  },
  schemaRegistryPasswordFile: {
    kind: 'string',
    env: 'SCHEMA_REGISTRY_PASSWORD_FILE',
    default: '',
    secretFile: 'schemaRegistryPassword',
    description: 'File holding SCHEMA_REGISTRY_PASSWORD.',
  },
  schemaRegistryBearerToken: {
    kind: 'string',
    env: 'SCHEMA_REGISTRY_BEARER_TOKEN',
    default: '',
    secret: true,
    description: 'Bearer token sent to the registry (instead of basic auth).',
  },
  schemaRegistryBearerTokenFile: {
    kind: 'string',
    env: 'SCHEMA_REGISTRY_BEARER_TOKEN_FILE',
    default: '',
    secretFile: 'schemaRegistryBearerToken',
    description: 'File holding SCHEMA_REGISTRY_BEARER_TOKEN.',
  },
  schemaRegistrySslCaFile: {
    kind: 'string',
    env: 'SCHEMA_REGISTRY_SSL_CA_FILE',
    default: '',
    file: true,
    description: "PEM file of the CA certificates that sign an https registry's certificate.",
  },
  schemaRegistrySslCertFile: {
    kind: 'string',
    env: 'SCHEMA_REGISTRY_SSL_CERT_FILE',
    default: '',
    file: true,
    description:
      'PEM client certificate for mutual TLS with the registry; needs SCHEMA_REGISTRY_SSL_KEY_FILE.',
  },
  schemaRegistrySslKeyFile: {
    kind: 'string',
    env: 'SCHEMA_REGISTRY_SSL_KEY_FILE',
    default: '',
    file: true,
    description: 'PEM private key (unencrypted) of the registry client certificate.',
  },
  requestsTopic: {
    kind: 'string',
    env: 'STREAMSCORE_REQUESTS_TOPIC',
    default: 'streamscore.requests',
    description: 'Topic of FeatureEvent records to score.',
  },
  predictionsTopic: {
    kind: 'string',
    env: 'STREAMSCORE_PREDICTIONS_TOPIC',
    default: 'streamscore.predictions',
    description: 'Topic the Prediction records are written to.',
  },
  deadLetterTopic: {
    kind: 'string',
    env: 'STREAMSCORE_DLQ_TOPIC',
    default: 'streamscore.dlq',
    description: 'Topic for events that cannot be scored, with the reason in headers.',
  },
  groupId: {
    kind: 'string',
    env: 'STREAMSCORE_GROUP_ID',
    default: 'streamscore-serve',
    description: 'Consumer group shared by all serve replicas.',
  },
  sessionTimeoutMs: {
    kind: 'integer',
    env: 'STREAMSCORE_SESSION_TIMEOUT_MS',
    default: 30_000, // thirty seconds
    min: 6_000, // the broker's default group.min.session.timeout.ms
    max: 300_000,
    description:
      "A replica silent this long is dropped from the group and its partitions move; a crashed replica's partitions wait this long.",
  },
  createTopics: {
    kind: 'boolean',
    env: 'STREAMSCORE_CREATE_TOPICS',
    default: true,
    description: 'Create missing topics at start-up (with topicPartitions partitions).',
  },
  topicPartitions: {
    kind: 'integer',
    env: 'STREAMSCORE_TOPIC_PARTITIONS',
    default: 6,
    min: 1,
    max: 10_000,
    description: 'Partitions for topics that serve or produce creates.',
  },
  fromBeginning: {
    kind: 'boolean',
    env: 'STREAMSCORE_FROM_BEGINNING',
    default: true,
    description: 'Where a new consumer group starts: the earliest offset (true) or the latest.',
  },
  modelsDir: {
    kind: 'string',
    env: 'STREAMSCORE_MODELS_DIR',
    default: 'models',
    description: 'Model repository folder: <name>/<version>/model.onnx + model.json.',
  },
  modelMaxMb: {
    kind: 'integer',
    env: 'STREAMSCORE_MODEL_MAX_MB',
    default: 2_048, // 2 GiB, the most one ONNX protobuf file can hold
    min: 1,
    max: 1_048_576,
    description:
      "The most a model version's files (model.onnx and the files model.json lists) may take together, MiB; a larger version is refused before it is read.",
  },
  model: {
    kind: 'string',
    env: 'STREAMSCORE_MODEL',
    default: 'fraud',
    description: 'Name of the model to serve.',
  },
  modelVersion: {
    kind: 'string',
    env: 'STREAMSCORE_MODEL_VERSION',
    default: 'latest',
    description: 'Primary version: latest (highest valid version on disk) or a version folder name.',
  },
  canaryVersion: {
    kind: 'string',
    env: 'STREAMSCORE_CANARY_VERSION',
    default: '',
    description: 'Version that takes canaryShare of the keys; empty for none.',
  },
  canaryShare: {
    kind: 'number',
    env: 'STREAMSCORE_CANARY_SHARE',
    default: 0,
    min: 0,
    max: 1,
    description: 'Share of event keys (0 to 1) routed to the canary, by a stable hash of the key.',
  },
  shadowVersions: {
    kind: 'list',
    env: 'STREAMSCORE_SHADOW_VERSIONS',
    default: [],
    description: 'Comma-separated versions that score every batch into the shadow topic.',
  },
  fallbackVersion: {
    kind: 'string',
    env: 'STREAMSCORE_FALLBACK_VERSION',
    default: '',
    description:
      'Version that scores a batch the primary or canary fails on (route fallback) before anything is dead-lettered; empty for none.',
  },
  routingFile: {
    kind: 'string',
    env: 'STREAMSCORE_ROUTING_FILE',
    default: '',
    description:
      'JSON routing file (primary, canary, shadows per model), re-read while running; overrides the four settings above.',
  },
  routingSource: {
    kind: 'string',
    env: 'STREAMSCORE_ROUTING_SOURCE',
    default: 'auto',
    choices: ['auto', 'settings', 'file', 'topic'],
    description:
      'Where serve takes routing from: the routing file, the settings, or the routing topic (the latest record for the model, followed while running); auto is the file when STREAMSCORE_ROUTING_FILE is set, else the settings.',
  },
  rolloutTopic: {
    kind: 'string',
    env: 'STREAMSCORE_ROLLOUT_TOPIC',
    default: 'streamscore.rollouts',
    description:
      'Topic the rollout controller writes its decisions to (JSON, keyed by model); `rollout status` reads it.',
  },
  routingTopic: {
    kind: 'string',
    env: 'STREAMSCORE_ROUTING_TOPIC',
    default: 'streamscore.routing',
    description:
      'Compacted topic of RoutingRecord values keyed by model name, which `route` writes and serve follows with STREAMSCORE_ROUTING_SOURCE=topic.',
  },
  reloadIntervalMs: {
    kind: 'integer',
    env: 'STREAMSCORE_RELOAD_INTERVAL_MS',
    default: 2_000, // two seconds
    min: 0,
    description:
      'How often the model folder and routing file are checked for changes, milliseconds; 0 disables hot reload.',
  },
  shadowTopic: {
    kind: 'string',
    env: 'STREAMSCORE_SHADOW_TOPIC',
    default: 'streamscore.predictions.shadow',
    description: 'Topic the ShadowPrediction records are written to.',
  },
  shadowMaxPendingBatches: {
    kind: 'integer',
    env: 'STREAMSCORE_SHADOW_MAX_PENDING_BATCHES',
    default: 32,
    min: 1,
    description:
      'Batches waiting for shadow scoring beyond which shadow work is dropped (and counted), never delaying predictions.',
  },
  batchMaxRows: {
    kind: 'integer',
    env: 'STREAMSCORE_BATCH_MAX_ROWS',
    default: 256,
    min: 1,
    max: 100_000,
    description: 'A batch is scored as soon as it holds this many events.',
  },
  batchLingerMs: {
    kind: 'integer',
    env: 'STREAMSCORE_BATCH_LINGER_MS',
    default: 5,
    min: 0,
    max: 60_000,
    description:
      'A batch is scored at most this long after its first event arrived, milliseconds; 0 scores whatever was decoded as soon as the runtime is free.',
  },
  maxPendingEvents: {
    kind: 'integer',
    env: 'STREAMSCORE_MAX_PENDING_EVENTS',
    default: 4_096, // four batches of 1,024 in flight; each decoded event is held until published
    min: 1,
    description: 'Fetching stops while this many consumed events are not yet published (backpressure).',
  },
  maxValueBytes: {
    kind: 'integer',
    env: 'STREAMSCORE_MAX_VALUE_BYTES',
    default: 1_048_576, // 1 MiB, about what a broker takes by default
    min: 64,
    max: 100 * 1_048_576,
    description:
      'Request values larger than this are dead-lettered (VALUE_TOO_LARGE) without being decoded, bytes.',
  },
  maxFeatures: {
    kind: 'integer',
    env: 'STREAMSCORE_MAX_FEATURES',
    default: 10_000,
    min: 1,
    max: 1_000_000,
    description:
      'Feature maps with more entries than this are dead-lettered (TOO_MANY_FEATURES) before they are built.',
  },
  cacheEntries: {
    kind: 'integer',
    env: 'STREAMSCORE_CACHE_ENTRIES',
    default: 0,
    min: 0,
    max: 100_000_000,
    description:
      'Prediction cache: feature rows (per version) whose outputs are kept and reused when the identical row comes again; 0 turns the cache off.',
  },
  cacheTtlMs: {
    kind: 'integer',
    env: 'STREAMSCORE_CACHE_TTL_MS',
    default: 600_000, // ten minutes
    min: 1,
    description: 'A cached prediction older than this is scored again, milliseconds.',
  },
  cacheMaxMb: {
    kind: 'integer',
    env: 'STREAMSCORE_CACHE_MAX_MB',
    default: 64,
    min: 1,
    max: 65_536,
    description: 'Memory the prediction cache of one version may hold (keys are whole feature rows), MiB.',
  },
  inferenceThreads: {
    kind: 'integer',
    env: 'STREAMSCORE_INFERENCE_THREADS',
    default: 0,
    min: 0,
    max: 256,
    description: 'ONNX Runtime intra-op threads; 0 lets the runtime choose (one per core).',
  },
  inferenceWorker: {
    kind: 'boolean',
    env: 'STREAMSCORE_INFERENCE_WORKER',
    default: true,
    description:
      'Run each model session in a worker thread, so inference does not stop Kafka I/O and decoding.',
  },
  kafkaClient: {
    kind: 'string',
    env: 'STREAMSCORE_KAFKA_CLIENT',
    default: 'platformatic',
    choices: ['kafkajs', 'platformatic'],
    description:
      "Kafka client for serve's and backfill's consumer and producer: kafkajs or @platformatic/kafka (docs/operations.md).",
  },
  delivery: {
    kind: 'string',
    env: 'STREAMSCORE_DELIVERY',
    default: 'at-least-once',
    choices: ['at-least-once', 'exactly-once'],
    description:
      "serve's and backfill's delivery: at-least-once, or exactly-once (outputs and offsets in one Kafka transaction; needs the platformatic client; docs/delivery.md).",
  },
  transactionTimeoutMs: {
    kind: 'integer',
    env: 'STREAMSCORE_TRANSACTION_TIMEOUT_MS',
    default: 10_000,
    min: 1_000,
    max: 900_000,
    description:
      'Exactly-once: how long the broker lets a transaction stay open before aborting it (bounds how long a killed replica holds up read_committed readers).',
  },
  producerThread: {
    kind: 'boolean',
    env: 'STREAMSCORE_PRODUCER_THREAD',
    default: true,
    description:
      'Encode and send produce requests from a worker thread, so they do not hold back fetching and decoding.',
  },
  executionProvider: {
    kind: 'string',
    env: 'STREAMSCORE_EXECUTION_PROVIDER',
    default: 'cpu',
    choices: ['cpu', 'cuda'],
    description: 'ONNX Runtime execution provider; cuda needs the CUDA binaries (docs/operations.md, GPU).',
  },
  commitIntervalMs: {
    kind: 'integer',
    env: 'STREAMSCORE_COMMIT_INTERVAL_MS',
    default: 500,
    min: 0,
    max: 60_000,
    description: 'At most one offset commit per this interval, milliseconds; 0 commits after every batch.',
  },
  metricsPort: {
    kind: 'integer',
    env: 'STREAMSCORE_METRICS_PORT',
    default: 9464,
    min: 0,
    max: 65_535,
    description: 'HTTP port for /metrics, /healthz and /readyz; 0 picks a free port.',
  },
  metricsHost: {
    kind: 'string',
    env: 'STREAMSCORE_METRICS_HOST',
    default: '0.0.0.0',
    description: 'Address the metrics server listens on.',
  },
  metricsTlsCertFile: {
    kind: 'string',
    env: 'STREAMSCORE_METRICS_TLS_CERT_FILE',
    default: '',
    file: true,
    description:
      'PEM certificate (chain) to serve /metrics, /healthz and /readyz over https; needs STREAMSCORE_METRICS_TLS_KEY_FILE.',
  },
  metricsTlsKeyFile: {
    kind: 'string',
    env: 'STREAMSCORE_METRICS_TLS_KEY_FILE',
    default: '',
    file: true,
    description: 'PEM private key (unencrypted) of the metrics certificate.',
  },
  metricsUsername: {
    kind: 'string',
    env: 'STREAMSCORE_METRICS_USERNAME',
    default: '',
    description: 'Basic-auth user that /metrics requires (the probes stay open); needs a password.',
  },
  metricsPassword: {
    kind: 'string',
    env: 'STREAMSCORE_METRICS_PASSWORD',
    default: '',
    secret: true,
    description: 'Basic-auth password that /metrics requires.',
  },
  metricsPasswordFile: {
    kind: 'string',
    env: 'STREAMSCORE_METRICS_PASSWORD_FILE',
    default: '',
    secretFile: 'metricsPassword',
    description: 'File holding STREAMSCORE_METRICS_PASSWORD.',
  },
  shutdownTimeoutMs: {
    kind: 'integer',
    env: 'STREAMSCORE_SHUTDOWN_TIMEOUT_MS',
    default: 30_000, // thirty seconds
    min: 0,
    description: 'On SIGTERM, how long in-flight work may take to finish before the process exits anyway.',
  },
  driftTopic: {
    kind: 'string',
    env: 'STREAMSCORE_DRIFT_TOPIC',
    default: 'streamscore.drift',
    description: 'Topic the DriftReport records are written to.',
  },
  driftGroupId: {
    kind: 'string',
    env: 'STREAMSCORE_DRIFT_GROUP_ID',
    default: 'streamscore-drift',
    description: 'Consumer group shared by all drift replicas.',
  },
  driftWindowEvents: {
    kind: 'integer',
    env: 'STREAMSCORE_DRIFT_WINDOW_EVENTS',
    default: 2_000,
    min: 10,
    description: 'A drift window closes after this many outputs of a model version.',
  },
  driftWindowMs: {
    kind: 'integer',
    env: 'STREAMSCORE_DRIFT_WINDOW_MS',
    default: 300_000, // five minutes
    min: 1_000,
    description:
      'A drift window closes this long after it opened, if the event count was not reached first, milliseconds.',
  },
  driftPsiWarn: {
    kind: 'number',
    env: 'STREAMSCORE_DRIFT_PSI_WARN',
    default: 0.1,
    min: 0,
    description: 'PSI at or above which a distribution is warn (when the test is also significant).',
  },
  driftPsiAlert: {
    kind: 'number',
    env: 'STREAMSCORE_DRIFT_PSI_ALERT',
    default: 0.25,
    min: 0,
    description: 'PSI at or above which a distribution is alert (when the test is also significant).',
  },
  driftPValue: {
    kind: 'number',
    env: 'STREAMSCORE_DRIFT_P_VALUE',
    default: 0.05,
    min: 0,
    max: 1,
    description: 'Family-wise level for the Holm-adjusted chi-square p-values.',
  },
  driftAgreementWarn: {
    kind: 'number',
    env: 'STREAMSCORE_DRIFT_AGREEMENT_WARN',
    default: 0.95,
    min: 0,
    max: 1,
    description: 'Primary-shadow decision agreement below which the comparison is warn.',
  },
  driftAgreementAlert: {
    kind: 'number',
    env: 'STREAMSCORE_DRIFT_AGREEMENT_ALERT',
    default: 0.9,
    min: 0,
    max: 1,
    description: 'Primary-shadow decision agreement below which the comparison is alert.',
  },
  driftJoinMs: {
    kind: 'integer',
    env: 'STREAMSCORE_DRIFT_JOIN_MS',
    default: 30_000, // thirty seconds
    min: 100,
    description:
      'How long a request waits for its prediction and shadow records; must exceed the lag between the topics.',
  },
  outcomesTopic: {
    kind: 'string',
    env: 'STREAMSCORE_OUTCOMES_TOPIC',
    default: 'streamscore.outcomes',
    description:
      'Topic of Outcome records (observed labels by request id) the drift monitor joins with the predictions.',
  },
  outcomesJoinMs: {
    kind: 'integer',
    env: 'STREAMSCORE_OUTCOMES_JOIN_MS',
    default: 600_000, // ten minutes
    min: 100,
    description:
      'How long a prediction waits for its outcome (and an outcome for its prediction) before it counts as unmatched, milliseconds.',
  },
  outcomesJoinEntries: {
    kind: 'integer',
    env: 'STREAMSCORE_OUTCOMES_JOIN_ENTRIES',
    default: 200_000,
    min: 1,
    description:
      'Request ids the outcome join holds at most; the oldest is settled first. Size it above event rate x STREAMSCORE_OUTCOMES_JOIN_MS.',
  },
  driftMetricsPort: {
    kind: 'integer',
    env: 'STREAMSCORE_DRIFT_METRICS_PORT',
    default: 9465,
    min: 0,
    max: 65_535,
    description: 'HTTP port of the drift monitor for /metrics, /healthz and /readyz; 0 picks a free port.',
  },
  logLevel: {
    kind: 'string',
    env: 'STREAMSCORE_LOG_LEVEL',
    default: 'info',
    choices: ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'],
    description: 'pino log level.',
  },
} as const satisfies Record<string, OptionSpec>;

export type OptionName = keyof typeof OPTIONS;

type ValueOf<S extends OptionSpec> = S['kind'] extends 'list'
  ? readonly string[]
  : S['kind'] extends 'boolean'
    ? boolean
    : S['kind'] extends 'integer' | 'number'
      ? number
      : S extends { choices: readonly (infer C extends string)[] }
        ? C
        : string;

export type Config = { readonly [K in OptionName]: ValueOf<(typeof OPTIONS)[K]> };

export function flagName(name: string): string {
  return name.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`);
}
