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
  /** The brokers refused the SASL credentials (the message names the mechanism and the user). */
  KAFKA_AUTH_FAILED: 'Kafka refused the credentials',
  /** A TLS peer's certificate is not trusted: the message names the peer and the check that failed. */
  TLS_UNTRUSTED: 'Certificate is not trusted',
  /** A TLS peer's certificate does not name the host connected to. */
  TLS_HOSTNAME_MISMATCH: 'Certificate does not name the host',
  /** The schema registry answered 401 or 403 to the credentials given. */
  REGISTRY_UNAUTHORIZED: 'Schema registry refused the credentials',
  /** The schema registry could not be reached or answered with an unexpected error. */
  REGISTRY_UNAVAILABLE: 'Schema registry is unavailable',
  /** A schema file in schemas/ could not be read or parsed. */
  SCHEMA_INVALID: 'Schema is invalid',
  /** The metrics HTTP server cannot listen on its address (the port is in use, or not permitted). */
  METRICS_PORT_UNAVAILABLE: 'Metrics port is unavailable',
  /**
   * A routing change names a version that is not on disk or does not load and validate, or breaks
   * a routing rule: `route` refuses to write it, and a replica given it keeps its last good routing.
   */
  ROUTING_INVALID: 'Routing is invalid',
  /** A command-line argument is unknown or malformed. */
  USAGE: 'Invalid command-line usage',
} as const;

export type ErrorCode = keyof typeof ErrorCodes;

/** Failures of credentials or trust: the configuration must change, so nothing waits or retries. */
export const SECURITY_CODES: ReadonlySet<ErrorCode> = new Set([
  'KAFKA_AUTH_FAILED',
  'TLS_UNTRUSTED',
  'TLS_HOSTNAME_MISMATCH',
  'REGISTRY_UNAUTHORIZED',
]);

/**
 * TLS verification failures by Node's error code: which check failed, in words. A retry will not
 * change any of them.
 */
export const TLS_UNTRUSTED_REASONS: Readonly<Record<string, string>> = {
  UNABLE_TO_VERIFY_LEAF_SIGNATURE: 'its certificate is not signed by a trusted CA',
  UNABLE_TO_GET_ISSUER_CERT: 'the issuer of its certificate is not known',
  UNABLE_TO_GET_ISSUER_CERT_LOCALLY: 'the issuer of its certificate is not trusted',
  SELF_SIGNED_CERT_IN_CHAIN: 'its certificate chain ends in a self-signed CA that is not trusted',
  DEPTH_ZERO_SELF_SIGNED_CERT: 'its certificate is self-signed and not trusted',
  CERT_SIGNATURE_FAILURE: 'the signature of its certificate does not verify',
  CERT_HAS_EXPIRED: 'its certificate has expired',
  CERT_NOT_YET_VALID: 'its certificate is not valid yet',
  CERT_REVOKED: 'its certificate is revoked',
  INVALID_CA: 'a CA certificate in its chain is not valid as a CA',
  CERT_UNTRUSTED: 'its certificate is not trusted for this purpose',
  CERT_REJECTED: 'its certificate is rejected',
};

/** Node's code for a certificate that does not name the host connected to. */
export const TLS_HOSTNAME_CODE = 'ERR_TLS_CERT_ALTNAME_INVALID';

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
