/**
 * Every error streamscore raises carries a stable code from this list. Operators grep logs and
 * alert on codes, so a code, once published, keeps its meaning. docs/reference.md documents each one
 * (a unit test checks that it does).
 */
export const ErrorCodes = {
  /** A configuration value is missing, of the wrong type, or outside what is allowed. */
  CONFIG_INVALID: 'Configuration is invalid',
  /** A model folder, its metadata or its file is missing or does not match its metadata. */
  MODEL_INVALID: 'Model failed validation',
  /** The ONNX Runtime execution provider asked for is not available on this machine. */
  EXECUTION_PROVIDER_UNAVAILABLE: 'Execution provider is not available',
  /** ONNX Runtime failed while scoring a batch. */
  INFERENCE_FAILED: 'Inference failed',
  /** The Kafka cluster could not be reached or refused an operation. */
  KAFKA_UNAVAILABLE: 'Kafka is unavailable',
  /** The schema registry could not be reached or answered with an unexpected error. */
  REGISTRY_UNAVAILABLE: 'Schema registry is unavailable',
  /** A schema file in schemas/ could not be read or parsed. */
  SCHEMA_INVALID: 'Schema is invalid',
  /** The metrics HTTP server cannot listen on its address (the port is in use, or not permitted). */
  METRICS_PORT_UNAVAILABLE: 'Metrics port is unavailable',
  /** A command-line argument is unknown or malformed. */
  USAGE: 'Invalid command-line usage',
} as const;

export type ErrorCode = keyof typeof ErrorCodes;

/** Where an error happened; enumerable so that pino prints every field. */
export interface ErrorContext {
  key?: string;
  topic?: string;
  partition?: number;
  offset?: string;
  model?: string;
  version?: string;
  path?: string;
  [field: string]: unknown;
}

export class StreamscoreError extends Error {
  readonly code: ErrorCode;
  /** True when the same operation may succeed if tried again (a broker restart, a network blip). */
  readonly retriable: boolean;
  readonly context: ErrorContext;

  constructor(
    code: ErrorCode,
    message: string,
    options: { cause?: unknown; context?: ErrorContext; retriable?: boolean } = {},
  ) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'StreamscoreError';
    this.code = code;
    this.retriable = options.retriable ?? false;
    this.context = options.context ?? {};
  }
}

export function isStreamscoreError(error: unknown): error is StreamscoreError {
  return error instanceof StreamscoreError;
}

/** A readable one-line description of anything thrown, for logs and dead-letter headers. */
export function describeError(error: unknown): string {
  if (error instanceof Error) return error.message;
  return String(error);
}
