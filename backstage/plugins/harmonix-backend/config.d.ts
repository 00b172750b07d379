export interface Config {
  /** Harmonix. */
  harmonix?: {
    /**
     * The spec files the environments were applied from (paths relative to
     * the backend's working directory). The router finds the spec of an
     * entity here: a provider of the entity's name (`AWSEnvironmentProvider`)
     * or an environment (`AWSEnvironment`).
     */
    specs?: string[];
    /** AWS endpoint for every service, e.g. a local emulator. */
    endpointUrl?: string;
    /** Region of the base credentials. */
    region?: string;
    /** Role assumed before each environment's `environmentRole`. */
    pipelineRole?: string;
    /** Who is calling, in role session names. Default `backstage`. */
    caller?: string;
    /** AWS requests per second per account/region (default 10). */
    apiRate?: number;
    /** Requests allowed at once before the rate applies (default 20). */
    apiBurst?: number;
  };
}
