/**
 * `@harmonix/node`: validate, plan and provision AWS environments and
 * describe them to Backstage, from Node.js.
 *
 * ```ts
 * import { Engine, loadSpecs } from '@harmonix/node';
 *
 * const specs = loadSpecs('envs/dev.yaml');
 * const engine = await Engine.create({ concurrency: 4 });
 * const plan = await engine.plan(specs, { onEvent: (e) => console.log(e) });
 * console.log(plan.diff());
 * const report = await engine.apply(plan, { catalogPath: 'catalog-info.yaml', signal });
 * ```
 *
 * A thin typed layer over the native addon (`native/index.js`, generated
 * by napi-rs): parsing, validation, planning and applying are the Rust
 * core's. Errors are {@link HarmonixError}s with a stable `code`.
 */

import * as native from '../native/index.js';

// ---------------------------------------------------------------- errors --

/** Stable error codes. */
export type ErrorCode =
  | 'HARMONIX_VALIDATION'
  | 'HARMONIX_PLAN_STALE'
  | 'HARMONIX_INVALID_PLAN'
  | 'HARMONIX_LOCK_HELD'
  | 'HARMONIX_LOCK'
  | 'HARMONIX_STACK_FAILED'
  | 'HARMONIX_STACK_NOT_READY'
  | 'HARMONIX_AWS'
  | 'HARMONIX_CREDENTIALS'
  | 'HARMONIX_INVALID_INPUT'
  | 'HARMONIX_TIMEOUT'
  | 'HARMONIX_CATALOG'
  | 'HARMONIX_IO'
  | 'HARMONIX_CANCELLED'
  | 'HARMONIX_PRECONDITION'
  | 'HARMONIX_INTERNAL';

/** One problem in a spec, located by its field path. */
export interface Issue {
  /** e.g. `providers[0].vpc.cidr`; empty for the whole input. */
  path: string;
  /** The value as written, when there is one. */
  value?: string | null;
  /** What is wrong and what is allowed. */
  message: string;
}

/** Every error of this package. */
export class HarmonixError extends Error {
  /** The stable code. */
  readonly code: ErrorCode;
  /** Validation problems (`HARMONIX_VALIDATION`). */
  readonly issues: Issue[];
  /** The stack that failed (`HARMONIX_STACK_FAILED`, `HARMONIX_PLAN_STALE`). */
  readonly stackName?: string;
  /** Why it failed (`HARMONIX_STACK_FAILED`). */
  readonly reason?: string;
  /** Lock details (`HARMONIX_LOCK_HELD`). */
  readonly lockId?: string;
  readonly holder?: string;
  readonly expiresAt?: string;
  /** The apply report (`HARMONIX_STACK_FAILED` raised by {@link Engine.apply}). */
  readonly report?: ApplyReport;

  constructor(
    code: ErrorCode,
    message: string,
    details: {
      issues?: Issue[];
      stackName?: string;
      reason?: string;
      lockId?: string;
      holder?: string;
      expiresAt?: string;
      report?: ApplyReport;
    } = {},
  ) {
    super(message);
    this.name = 'HarmonixError';
    this.code = code;
    this.issues = details.issues ?? [];
    this.stackName = details.stackName;
    this.reason = details.reason;
    this.lockId = details.lockId;
    this.holder = details.holder;
    this.expiresAt = details.expiresAt;
    this.report = details.report;
  }
}

interface NativeDetails {
  message?: string;
  code?: string;
  stack?: string | null;
  errors?: Issue[];
  lockId?: string;
  holder?: string;
  expiresAt?: string;
}

/** The HarmonixError of a native error (its message is a JSON object). */
function translate(e: unknown): unknown {
  if (e instanceof HarmonixError) return e;
  if (!(e instanceof Error)) return e;
  let d: NativeDetails;
  try {
    d = JSON.parse(e.message) as NativeDetails;
  } catch {
    return new HarmonixError('HARMONIX_INTERNAL', e.message);
  }
  const code = (d.code ?? 'HARMONIX_INTERNAL') as ErrorCode;
  return new HarmonixError(code, d.message ?? e.message, {
    issues: d.errors,
    stackName: d.stack ?? undefined,
    lockId: d.lockId,
    holder: d.holder,
    expiresAt: d.expiresAt,
  });
}

function call<T>(f: () => T): T {
  try {
    return f();
  } catch (e) {
    throw translate(e);
  }
}

async function callAsync<T>(f: () => Promise<T>): Promise<T> {
  try {
    return await f();
  } catch (e) {
    throw translate(e);
  }
}

// ----------------------------------------------------------------- specs --

/** Validated specs: what the engine plans, applies and describes. */
export class Specs {
  /** @internal the specs' JSON form (as a plan file embeds them). */
  readonly json: string;

  /** @internal */
  constructor(json: string) {
    this.json = json;
  }

  /** Where each spec came from. */
  get origins(): string[] {
    return (JSON.parse(this.json) as Array<{ origin: string }>).map((s) => s.origin);
  }

  /** The number of specs. */
  get length(): number {
    return this.origins.length;
  }

  /** These specs and `other` together. */
  concat(other: Specs): Specs {
    const all = [...(JSON.parse(this.json) as unknown[]), ...(JSON.parse(other.json) as unknown[])];
    return new Specs(JSON.stringify(all));
  }

  /** Every stack the specs render to, with its template. */
  stacks(): Stack[] {
    return JSON.parse(call(() => native.specsStacks(this.json))) as Stack[];
  }

  /** Write templates, parameters and a manifest into `outDir`; the files. */
  render(outDir: string): Promise<string[]> {
    return callAsync(() => native.specsRender(this.json, outDir));
  }

  /** The catalog entities before deployment (derived names only). */
  entities(): Entity[] {
    return JSON.parse(call(() => native.specsEntities(this.json))) as Entity[];
  }
}

/** A rendered stack. */
export interface Stack {
  name: string;
  provider: string;
  account: string;
  region: string;
  hash: string;
  parameters: Record<string, string>;
  tags: Record<string, string>;
  dependsOn: string[];
  capabilities: string[];
  template: Record<string, unknown>;
}

/** A Backstage entity. */
export interface Entity {
  apiVersion: string;
  kind: string;
  metadata: Record<string, unknown> & { name: string };
  spec?: Record<string, unknown>;
}

/** Load and validate spec files (YAML). */
export function loadSpecs(...paths: string[]): Specs {
  return new Specs(call(() => native.specsFromPaths(paths)));
}

/** Parse and validate a spec from YAML text. */
export function parseSpecs(text: string, origin = '<string>'): Specs {
  return new Specs(call(() => native.specsFromYaml(text, origin)));
}

/** Validate a spec given as an object (the YAML document's structure). */
export function specsFromObject(spec: object, origin = '<object>'): Specs {
  return new Specs(call(() => native.specsFromJson(JSON.stringify(spec), origin)));
}

/** The problems of a spec (YAML text or an object); empty when valid. */
export function validate(spec: string | object, origin?: string): Issue[] {
  const list =
    typeof spec === 'string'
      ? native.problems(spec, origin ?? '<string>')
      : native.problemsJson(JSON.stringify(spec), origin ?? '<object>');
  return list.map((i) => ({ path: i.path, value: i.value ?? null, message: i.message }));
}

/** The JSON Schema of the spec format (for editors and forms). */
export function schema(): Record<string, unknown> {
  return JSON.parse(native.schemaJson()) as Record<string, unknown>;
}

/** The Harmonix version. */
export function version(): string {
  return native.version();
}

// ------------------------------------------------------------------ plans --

/** What happens to one resource. */
export interface ResourceChange {
  action: 'add' | 'modify' | 'remove' | 'import' | 'dynamic';
  logicalId: string;
  resourceType: string;
  replacement?: 'true' | 'conditional' | 'false';
  properties?: string[];
  /** How an update policy replaces the resource's instances (Auto Scaling groups). */
  rollout?: string;
}

/** What a plan does with one stack. */
export interface PlannedStack {
  name: string;
  action: 'noOp' | 'create' | 'update' | 'delete' | 'recreate' | 'resumeRollback';
  dependsOn: string[];
  hash: string;
  observed?: { stackId: string; status: string; lastUpdated?: string; hash?: string };
  changeSetId?: string;
  changes: ResourceChange[];
}

/** The plan of one target (account, region, role). */
export interface TargetPlan {
  roleArn: string;
  providers: string[];
  plan: { account: string; region: string; stacks: PlannedStack[]; contentHash: string };
}

/** Counts of a plan. */
export interface PlanSummary {
  stacksToChange: number;
  stacksUnchanged: number;
  add: number;
  change: number;
  destroy: number;
}

/** A reviewed plan (`JSON.stringify(plan)` is the plan file). */
export class Plan {
  /** The plan file's text. */
  readonly text: string;
  private readonly data: {
    kind: 'deploy' | 'destroy';
    contentHash: string;
    targets: TargetPlan[];
  };

  /** @internal */
  constructor(text: string) {
    this.text = text;
    this.data = JSON.parse(text) as Plan['data'];
  }

  /** Read a plan file's text (refused when modified). */
  static fromJSON(text: string): Plan {
    return new Plan(call(() => native.planCheck(text)));
  }

  /** `deploy` or `destroy`. */
  get kind(): 'deploy' | 'destroy' {
    return this.data.kind;
  }

  get contentHash(): string {
    return this.data.contentHash;
  }

  get targets(): TargetPlan[] {
    return this.data.targets;
  }

  /** Every planned stack. */
  get stacks(): PlannedStack[] {
    return this.data.targets.flatMap((t) => t.plan.stacks);
  }

  get summary(): PlanSummary {
    return (JSON.parse(native.planSummary(this.text)) as { summary: PlanSummary }).summary;
  }

  /** Whether nothing would change. */
  get isNoop(): boolean {
    return this.stacks.every((s) => s.action === 'noOp');
  }

  /** A Terraform-like diff (ANSI colors with `color`). */
  diff(color = false): string {
    return native.planDiff(this.text, color);
  }

  /** The plan file's content, for `JSON.stringify`. */
  toJSON(): unknown {
    return JSON.parse(this.text);
  }
}

// ----------------------------------------------------------------- events --

/** A progress event of the engine. */
export type HarmonixEvent =
  | { event: 'planned'; stack: string; action: PlannedStack['action']; changes: number }
  | { event: 'waiting'; stack: string; status: string }
  | { event: 'changeSetReady'; stack: string; changeSetId: string }
  | { event: 'started'; stack: string; action: PlannedStack['action'] }
  | {
      event: 'resourceProgress';
      stack: string;
      logicalId: string;
      resourceType: string;
      status: string;
      reason?: string;
    }
  | { event: 'stackDone'; stack: string; status: string }
  | { event: 'stackFailed'; stack: string; status?: string; reason: string }
  | { event: 'skipped'; stack: string; because: string }
  | { event: 'locked'; lock: string }
  | { event: 'catalogWritten'; path: string; outcome: 'created' | 'updated' | 'unchanged' }
  | { event: 'warning'; message: string }
  | { event: 'finished'; succeeded: number; failed: number; skipped: number };

/** Receives progress events (called on the event loop, in order). */
export type OnEvent = (event: HarmonixEvent) => void;

function forward(onEvent?: OnEvent): ((text: string) => void) | undefined {
  if (!onEvent) return undefined;
  return (text: string) => {
    try {
      onEvent(JSON.parse(text) as HarmonixEvent);
    } catch (e) {
      // A throwing callback never stops the engine.
      process.emitWarning(`harmonix onEvent callback threw: ${String(e)}`);
    }
  };
}

// ---------------------------------------------------------------- results --

/** What happened to one stack. */
export interface StackResult {
  name: string;
  action: PlannedStack['action'];
  outcome: 'created' | 'updated' | 'deleted' | 'unchanged' | 'failed' | 'skipped' | 'cancelled';
  status?: string;
  /** `failed`: why. */
  reason?: string;
  /** `skipped`: the stack that did not succeed. */
  because?: string;
}

/** The result of an apply or destroy. */
export interface ApplyReport {
  succeeded: boolean;
  kind: 'deploy' | 'destroy';
  targets: Array<{ account: string; region: string; roleArn: string; stacks: StackResult[] }>;
  /** Every stack's result. */
  stacks: StackResult[];
  outputs: Record<string, Record<string, string>>;
  entities: Entity[];
  catalog?: { path: string; outcome: 'created' | 'updated' | 'unchanged' };
  warnings: string[];
  catalogError?: string;
  requests: Record<string, number>;
  /** What the deleted stacks kept (`policy`: `Retain`, or `Snapshot`: a
   * final snapshot of the resource is kept). */
  kept?: KeptResource[];
}

/** A resource a destroyed stack kept (its template's DeletionPolicy). */
export interface KeptResource {
  stack: string;
  logicalId: string;
  resourceType: string;
  physicalId: string;
  policy: 'Retain' | 'Snapshot';
}

/** A defined stack's deployed state. */
export interface StackStatus {
  name: string;
  state?: {
    name: string;
    stackId: string;
    status: string;
    statusReason?: string;
    hash?: string;
    lastUpdated?: string;
    outputs: Record<string, string>;
  } | null;
  drift: 'inSync' | 'drifted' | 'missing';
  lastUpdated?: string | null;
}

/** The stacks of one account/region. */
export interface TargetStatus {
  account: string;
  region: string;
  stacks: StackStatus[];
}

/** A defined stack's outputs. */
export interface StackOutputs {
  name: string;
  /** The provider that defines the stack. */
  provider: string;
  account: string;
  region: string;
  /** Whether the stack is deployed (no outputs when not). */
  deployed: boolean;
  outputs: Record<string, string>;
}

/** One audit record (see harmonix-core's `engine::audit`). */
export interface AuditItem {
  id: string;
  createdAt: string;
  origin: string;
  actionType: string;
  actionName: string;
  initiatedBy: string;
  owner: string;
  assumedRole: string;
  targetAccount: string;
  targetRegion: string;
  prefix: string;
  providerName: string;
  /** The request as redacted JSON text. */
  request: string;
  status: 'STARTED' | 'SUCCESS' | 'FAILED';
  message: string;
  [attribute: string]: unknown;
}

/** The latest audit records of one environment provider. */
export interface ProviderAudit {
  provider: string;
  account: string;
  region: string;
  /** The provider's audit table. */
  table: string;
  /** False when the table does not exist (never deployed). */
  tableFound: boolean;
  /** Newest first. */
  items: AuditItem[];
}

// ----------------------------------------------------------------- engine --

/** Options of {@link Engine.create}. */
export type EngineOptions = native.EngineOptions;

/** Options of {@link Engine.plan}. */
export interface PlanOptions {
  /** Plan the deletion of the environments instead. */
  destroy?: boolean;
  /** With `destroy`: delete what the templates keep too (see {@link DestroyOptions}). */
  deleteData?: boolean;
  /** With `deleteData`: allow it for production environments. */
  deleteProductionData?: boolean;
  /** Progress events. */
  onEvent?: OnEvent;
}

/** Options of {@link Engine.destroy}. */
export interface DestroyOptions extends Omit<ApplyOptions, 'catalogPath'> {
  /** Delete the data the templates keep, with the stacks. */
  deleteData?: boolean;
  /** With `deleteData`: allow it for production environments. */
  deleteProductionData?: boolean;
}

/** Options of {@link Engine.apply}. */
export interface ApplyOptions {
  /** Merge the catalog entities into this file after a successful apply. */
  catalogPath?: string;
  /** Progress events. */
  onEvent?: OnEvent;
  /**
   * Cancels the apply: no new stack starts, running ones finish, locks are
   * released, then the promise rejects with `HARMONIX_CANCELLED`.
   */
  signal?: AbortSignal;
  /** Reject with `HARMONIX_STACK_FAILED` when a stack failed (default). */
  rejectOnFailure?: boolean;
}

function parseReport(text: string): ApplyReport {
  const top = JSON.parse(text) as { succeeded: boolean; report: Omit<ApplyReport, 'succeeded' | 'stacks'> };
  const r = top.report;
  return { ...r, succeeded: top.succeeded, stacks: r.targets.flatMap((t) => t.stacks) };
}

function checked(report: ApplyReport, reject: boolean): ApplyReport {
  if (!reject || report.succeeded) return report;
  const failed = report.stacks.find((s) => s.outcome === 'failed');
  if (failed) {
    throw new HarmonixError('HARMONIX_STACK_FAILED', `stack \`${failed.name}\` failed: ${failed.reason ?? ''}`, {
      stackName: failed.name,
      reason: failed.reason,
      report,
    });
  }
  if (report.stacks.some((s) => s.outcome === 'cancelled')) {
    throw new HarmonixError('HARMONIX_CANCELLED', 'the apply was cancelled; run it again to continue', {
      report,
    });
  }
  if (report.catalogError) {
    throw new HarmonixError('HARMONIX_CATALOG', report.catalogError, { reason: report.catalogError, report });
  }
  const other = report.stacks.find((s) => !['created', 'updated', 'deleted', 'unchanged'].includes(s.outcome));
  throw new HarmonixError('HARMONIX_STACK_FAILED', `stack \`${other?.name}\` was ${other?.outcome}`, {
    stackName: other?.name,
    reason: other?.because,
    report,
  });
}

/** Plans and applies environments. All long calls are Promises on the
 * addon's own runtime: the event loop is never blocked. */
export class Engine {
  private constructor(private readonly inner: native.Engine) {}

  /** Make an engine: AWS access (endpoint, role chain, API budget) and
   * engine options (concurrency, lock, audit, timeouts). */
  static async create(options: EngineOptions = {}): Promise<Engine> {
    return new Engine(await callAsync(() => native.Engine.create(options)));
  }

  /** Plan the specs' environments (or their deletion). */
  async plan(specs: Specs, options: PlanOptions = {}): Promise<Plan> {
    const text = await callAsync(() =>
      this.inner.plan(
        specs.json,
        options.destroy ?? false,
        forward(options.onEvent),
        options.deleteData ?? false,
        options.deleteProductionData ?? false,
      ),
    );
    return new Plan(text);
  }

  /** Apply a reviewed plan (or plan and apply specs without review). */
  async apply(plan: Plan | Specs, options: ApplyOptions = {}): Promise<ApplyReport> {
    if (options.signal?.aborted) {
      throw new HarmonixError('HARMONIX_CANCELLED', 'aborted before the apply started');
    }
    const reviewed = plan instanceof Plan ? plan : await this.plan(plan, { onEvent: options.onEvent });
    const token = new native.CancelToken();
    const abort = () => token.cancel();
    options.signal?.addEventListener('abort', abort, { once: true });
    try {
      const text = await callAsync(() =>
        this.inner.apply(reviewed.text, options.catalogPath ?? null, forward(options.onEvent), token),
      );
      return checked(parseReport(text), options.rejectOnFailure ?? true);
    } finally {
      options.signal?.removeEventListener('abort', abort);
    }
  }

  /** Delete the specs' stacks, dependents first. What the templates keep
   * (audit table, key, log groups, buckets, secrets, the database's final
   * snapshot) stays and is listed in `report.kept`; `deleteData` deletes it
   * too (production environments also need `deleteProductionData`). */
  async destroy(specs: Specs, options: DestroyOptions = {}): Promise<ApplyReport> {
    const plan = await this.plan(specs, {
      destroy: true,
      deleteData: options.deleteData,
      deleteProductionData: options.deleteProductionData,
      onEvent: options.onEvent,
    });
    return this.apply(plan, options);
  }

  /** Delete the change sets of a plan that will not be applied. */
  discard(plan: Plan): Promise<number> {
    return callAsync(() => this.inner.discard(plan.text));
  }

  /** Each stack's state and whether it matches its spec. */
  async status(specs: Specs): Promise<TargetStatus[]> {
    return JSON.parse(await callAsync(() => this.inner.status(specs.json))) as TargetStatus[];
  }

  /** The deployed environments' entities, merged into `path` when given. */
  async writeCatalog(
    specs: Specs,
    path?: string,
    options: { onEvent?: OnEvent } = {},
  ): Promise<{ entities: Entity[]; catalog?: { path: string; outcome: string } | null }> {
    const text = await callAsync(() => this.inner.writeCatalog(specs.json, path ?? null, forward(options.onEvent)));
    return JSON.parse(text) as { entities: Entity[]; catalog?: { path: string; outcome: string } | null };
  }

  /** Create the lock table in every target account/region. */
  bootstrap(specs: Specs): Promise<string[]> {
    return callAsync(() => this.inner.bootstrap(specs.json));
  }

  /** Every stack's outputs, deployed or not. */
  async outputs(specs: Specs): Promise<StackOutputs[]> {
    return JSON.parse(await callAsync(() => this.inner.outputs(specs.json))) as StackOutputs[];
  }

  /** The newest `limit` (1 to 1000, default 20) audit records of each
   * provider, newest first (from the audit table's index by time, which is
   * eventually consistent). */
  async auditItems(specs: Specs, options: { limit?: number } = {}): Promise<ProviderAudit[]> {
    const limit = options.limit ?? 20;
    if (!Number.isInteger(limit) || limit < 1 || limit > 1000) {
      throw new HarmonixError('HARMONIX_INVALID_INPUT', `limit = ${limit}: an integer from 1 to 1000`);
    }
    return JSON.parse(await callAsync(() => this.inner.auditItems(specs.json, limit))) as ProviderAudit[];
  }

  /** AWS requests sent so far, by operation. */
  requestCounts(): Record<string, number> {
    return JSON.parse(this.inner.requestCounts()) as Record<string, number>;
  }
}
