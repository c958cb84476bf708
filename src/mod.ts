/**
 * mergemem as a library: the typed API the `mergemem` command is built on.
 *
 * ```ts
 * import { merge, scan } from "./src/mod.ts";
 * const r = await scan({ selection: { comms: ["httpd"] } });
 * console.log(`${r.totals.saveable_bytes} bytes saveable`);
 * const m = await merge({ pids: r.processes.map((p) => p.pid) });
 * console.log(`${m.achieved_pages} of ${m.predicted_saveable_pages} pages`);
 * ```
 *
 * - Scanning: {@link scan}, {@link selectProcesses}, the result types
 *   ("mergemem.scan/1", docs/json-schema.md) and the page-hash back-ends
 *   ({@link createUserBackend}, {@link createKernelBackend}).
 * - The kernel module: {@link openModule} (handshake, PAGEINFO, MERGE,
 *   UNMERGE), {@link openProcMem} and {@link openProcMemForMarking}.
 * - KSM: {@link readKsm} and the ksmd burst {@link runBurst}, which
 *   restores ksmd's settings exactly; {@link withKsmLock}, the lock that
 *   runBurst(), merge() and unmerge() hold (one run at a time), for
 *   programs that mark memory or change KSM settings themselves.
 * - Marking: the engines behind merge ({@link Marker}): the module's, and
 *   ptrace's, which makes the target call madvise itself: from a tracer
 *   process that outlives the caller ({@link createTracerMarker}, what
 *   merge uses), or from the calling process ({@link createPtraceMarker},
 *   {@link PtraceSession}, {@link injectSyscall}).
 * - Merging: {@link planMerge}, {@link merge}, {@link unmerge}; state:
 *   {@link status} and {@link formatPrometheus}.
 *
 * Errors meant for users are {@link MergememError}s of an {@link ErrorKind};
 * the CLI maps each kind to its exit code.
 *
 * @module
 */
export * from "./scan/mod.ts";
export * from "./errors.ts";
export { VERSION } from "./version.ts";
export type { MappingKind } from "./pages/maps.ts";
export type { MappingRef } from "./dedup/analyze.ts";
export type { Checksum } from "./hash/mod.ts";
export type { SelectionResult, SkippedProcess } from "./proc/select.ts";
export type { ProcInfo } from "./proc/info.ts";
export { createKernelBackend } from "./kmod/backend.ts";
export {
  closeProcMem,
  DEVICE_PATH,
  type ModuleHandle,
  openModule,
  type OpenModuleOptions,
  openProcMem,
  openProcMemForMarking,
  type PageInfoBatch,
  type RangeResult,
} from "./kmod/client.ts";
export { ksmAvailable, type KsmState, readKsm } from "./ksm/sysfs.ts";
export {
  type BurstEnd,
  type BurstOptions,
  type BurstResult,
  DEFAULT_BURST_TIMEOUT_SECONDS,
  runBurst,
} from "./ksm/burst.ts";
export {
  DEFAULT_LOCK_TIMEOUT_SECONDS,
  type KsmLockHeld,
  type KsmLockOptions,
  withKsmLock,
} from "./ksm/lock.ts";
export type { JournalRecovery } from "./ksm/journal.ts";
export type { RestoreMismatch } from "./ksm/settings.ts";
export {
  mergingPages,
  type ProcessKsm,
  readProcessKsm,
} from "./ksm/process.ts";
export {
  type ChooseOptions,
  choosePlan,
  DEFAULT_MIN_SAVING,
  type MergePlan,
  planMerge,
  type PlannedVma,
  type PlanOptions,
  type PlanScan,
  type PlanScanOptions,
  type ProcessPlan,
  scanForPlan,
} from "./merge/plan.ts";
export {
  chooseDomain,
  DEFAULT_TRUST_LEVEL,
  type DomainChoice,
  domainOf,
  type DomainPolicy,
  type DomainRules,
  type DomainSaving,
  type HeldDomain,
  TRUST_LEVELS,
  type TrustDomain,
  type TrustLevel,
} from "./merge/trust.ts";
export {
  type ContainerRef,
  type PodRef,
  type Tenancy,
  TenancyReader,
} from "./proc/tenant.ts";
export { readTenancies, type TenantSelectors } from "./proc/containers.ts";
export { type KsmHolder, ksmHolders } from "./ksm/holders.ts";
export {
  type MarkAdvice,
  type MarkEngine,
  type Marker,
  type MarkOutcome,
  ProcessSkipped,
  type VmaRange,
} from "./engine/marker.ts";
export { createModuleMarker } from "./kmod/marker.ts";
export {
  type BackendChoice,
  type EngineChoice,
  openMarker,
  resolveBackend,
} from "./compose/engines.ts";
export {
  createPtraceMarker,
  type PtraceMarkerOptions,
} from "./ptrace/marker.ts";
export {
  createTracerMarker,
  tracerCommand,
  type TracerMarker,
  type TracerMarkerOptions,
} from "./ptrace/tracer_client.ts";
export { runTracer } from "./ptrace/tracer.ts";
export {
  injectSyscall,
  PtraceSession,
  type SessionOptions,
  TargetGone,
} from "./ptrace/session.ts";
export {
  merge,
  MERGE_SCHEMA,
  type MergeOptions,
  type MergeProcessReport,
  type MergeProgress,
  type MergeReport,
  type TrustDomainReport,
} from "./merge/merge.ts";
export {
  unmerge,
  UNMERGE_SCHEMA,
  type UnmergeOptions,
  type UnmergeProcessReport,
  type UnmergeReport,
} from "./merge/unmerge.ts";
export {
  type JournalStaleReason,
  type JournalStatus,
  type ModuleStatus,
  type ProcessStatus,
  status,
  STATUS_SCHEMA,
  type StatusOptions,
  type StatusReport,
} from "./status/status.ts";
export { formatPrometheus, writeAtomic } from "./status/prometheus.ts";
