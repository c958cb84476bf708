/**
 * Command-line parsing shared by every subcommand: a strict wrapper around
 * node:util's parseArgs that turns every mistake into a usage error, and the
 * process selectors (--comm, --pid, --user, --cgroup, --unit, --container,
 * --pod, --k8s-namespace, --image, --compose-project, --all).
 *
 * @module
 */
import { parseArgs, type ParseArgsConfig } from "node:util";
import { messageOf, usageError } from "../errors.ts";
import { type DocumentedOptions, optionHelp } from "./options.ts";

/** Option specs in node:util parseArgs form. */
export type OptionSpecs = NonNullable<ParseArgsConfig["options"]>;

/** The selector options every process-selecting subcommand accepts. */
export const SELECTOR_OPTIONS = {
  comm: {
    type: "string",
    multiple: true,
    arg: "NAME",
    help: "exact command name, as in 'pgrep -x NAME' (repeatable)",
  },
  pid: {
    type: "string",
    multiple: true,
    arg: "PID[,PID]",
    help: "process ids (repeatable, or a comma list)",
  },
  user: {
    type: "string",
    multiple: true,
    arg: "USER|UID",
    help: "every process of this user (repeatable)",
  },
  cgroup: {
    type: "string",
    multiple: true,
    arg: "PATH",
    help: "every process of a cgroup v2 and its children\n" +
      "(e.g. system.slice/apache2.service; repeatable)",
  },
  unit: {
    type: "string",
    multiple: true,
    arg: "NAME",
    help: "every process of a systemd unit, through its cgroup\n" +
      "(apache2 means apache2.service; repeatable)",
  },
  container: {
    type: "string",
    multiple: true,
    arg: "NAME|ID",
    help: "every process of a container: podman or Docker name,\n" +
      "id or id prefix, nspawn or LXC machine (repeatable)",
  },
  pod: {
    type: "string",
    multiple: true,
    arg: "NAME",
    help: "every process of a pod: Kubernetes NAME or NS/NAME,\n" +
      "podman pod name, or pod UID prefix (repeatable)",
  },
  "k8s-namespace": {
    type: "string",
    multiple: true,
    arg: "NS",
    help: "every process of the Kubernetes pods of namespace NS\n" +
      "(from the kubelet's /var/log/pods; repeatable)",
  },
  image: {
    type: "string",
    multiple: true,
    arg: "IMAGE",
    help: "every process of the containers running IMAGE (with or\n" +
      "without tag; through podman or docker; repeatable)",
  },
  "compose-project": {
    type: "string",
    multiple: true,
    arg: "NAME",
    help: "every process of a Docker Compose or podman-compose\n" +
      "project's containers (repeatable)",
  },
  all: { type: "boolean", help: "every process the caller may read" },
} as const satisfies DocumentedOptions;

/** Help text for the selector options. */
export const SELECTOR_HELP =
  `Process selection (combine freely; a process matching any is selected):
${optionHelp(SELECTOR_OPTIONS)}`;

/** Parsed selectors, in the shape the library's Selection takes. */
export interface SelectorArgs {
  comms: string[];
  pids: number[];
  users: (string | number)[];
  all: boolean;
  cgroups: string[];
  units: string[];
  containers: string[];
  pods: string[];
  k8sNamespaces: string[];
  images: string[];
  composeProjects: string[];
}

/**
 * Parses argv strictly: unknown options, missing values and stray
 * positionals are usage errors (exit 2), never stack traces.
 */
export function parseStrict<T extends OptionSpecs>(
  args: string[],
  options: T,
  allowPositionals = false,
) {
  try {
    return parseArgs({ args, options, strict: true, allowPositionals });
  } catch (err) {
    const msg = messageOf(err);
    // node's messages span lines and mention internals; keep the first line.
    throw usageError(msg.split("\n")[0].replace(/\.$/, ""));
  }
}

/**
 * Takes the options declared with `optionalValue` out of argv, since
 * parseArgs has no options with an optional value: `--name=VALUE` and
 * `--name VALUE` give VALUE, a bare `--name` (at the end, or before a word
 * starting with "-") gives true. The last occurrence wins; nothing after
 * "--" is taken. The rest goes to parseStrict.
 */
export function takeOptionalValues(
  args: string[],
  options: DocumentedOptions,
): { rest: string[]; optional: Record<string, string | true> } {
  const names = new Set(
    Object.entries(options).filter(([, o]) => o.optionalValue).map(([n]) => n),
  );
  const rest: string[] = [];
  const optional: Record<string, string | true> = {};
  for (let i = 0; i < args.length; i++) {
    const a = args[i];
    if (a === "--") {
      rest.push(...args.slice(i));
      break;
    }
    const eq = a.indexOf("=");
    const name = a.startsWith("--") ? a.slice(2, eq < 0 ? undefined : eq) : "";
    if (!names.has(name)) rest.push(a);
    else if (eq >= 0) optional[name] = a.slice(eq + 1);
    else if (args[i + 1] !== undefined && !args[i + 1].startsWith("-")) {
      optional[name] = args[++i];
    } else optional[name] = true;
  }
  return { rest, optional };
}

/** Parses a decimal integer option value, with bounds. */
export function parseIntOption(
  name: string,
  value: string | undefined,
  fallback: number,
  min = 0,
  max = Number.MAX_SAFE_INTEGER,
): number {
  if (value === undefined) return fallback;
  if (!/^\d+$/.test(value)) {
    throw usageError(`--${name}: expected a whole number, got '${value}'`);
  }
  const n = Number(value);
  if (n < min || n > max) {
    throw usageError(`--${name}: ${n} is out of range ${min}..${max}`);
  }
  return n;
}

/** Parses a number of seconds (decimals allowed). */
export function parseSecondsOption(
  name: string,
  value: string | undefined,
  fallback: number,
): number {
  if (value === undefined) return fallback;
  if (!/^\d+(\.\d+)?$/.test(value) || Number(value) <= 0) {
    throw usageError(`--${name}: expected seconds > 0, got '${value}'`);
  }
  return Number(value);
}

/** Checks a value against a fixed set of choices. */
export function parseChoice<C extends string>(
  name: string,
  value: string | undefined,
  choices: readonly C[],
  fallback: C,
): C {
  if (value === undefined) return fallback;
  if (!(choices as readonly string[]).includes(value)) {
    throw usageError(
      `--${name}: '${value}' is not one of ${choices.join(", ")}`,
    );
  }
  return value as C;
}

/** Validates and normalises --comm, --pid, --user and --all. */
export function parseSelectors(values: {
  comm?: string[];
  pid?: string[];
  user?: string[];
  all?: boolean;
  cgroup?: string[];
  unit?: string[];
  container?: string[];
  pod?: string[];
  "k8s-namespace"?: string[];
  image?: string[];
  "compose-project"?: string[];
}): SelectorArgs {
  const pids: number[] = [];
  for (const item of values.pid ?? []) {
    for (const part of item.split(",")) {
      const p = part.trim();
      if (!/^\d+$/.test(p) || Number(p) < 1 || Number(p) > 4194304) {
        throw usageError(`--pid: '${p}' is not a process id`);
      }
      pids.push(Number(p));
    }
  }
  const comms = values.comm ?? [];
  for (const c of comms) {
    // The kernel truncates comm to 15 bytes; a longer name can never match.
    if (c.length === 0 || new TextEncoder().encode(c).length > 15) {
      throw usageError(
        `--comm: '${c}' cannot match: a comm is 1 to 15 bytes (see /proc/PID/comm)`,
      );
    }
  }
  const users: (string | number)[] = (values.user ?? []).map((u) =>
    /^\d+$/.test(u) ? Number(u) : u
  );
  for (const u of values.unit ?? []) {
    if (!/^[\w:.@\\-]+$/.test(u)) {
      throw usageError(`--unit: '${u}' is not a unit name`);
    }
  }
  const named = (flag: string, xs: string[] | undefined, re: RegExp) => {
    for (const x of xs ?? []) {
      if (!re.test(x)) throw usageError(`--${flag}: '${x}' is not a name`);
    }
    return xs ?? [];
  };
  return {
    comms,
    pids,
    users,
    all: values.all ?? false,
    cgroups: values.cgroup ?? [],
    units: values.unit ?? [],
    containers: named("container", values.container, /^[\w][\w.-]*$/),
    pods: named("pod", values.pod, /^[\w][\w.-]*(\/[\w][\w.-]*)?$/),
    k8sNamespaces: named(
      "k8s-namespace",
      values["k8s-namespace"],
      /^[a-z0-9]([a-z0-9-]*[a-z0-9])?$/,
    ),
    images: named(
      "image",
      values.image,
      /^[\w][\w.-]*(:\d+)?(\/[\w][\w.-]*)*(:[\w][\w.-]*)?(@sha256:[0-9a-f]{64})?$/,
    ),
    composeProjects: named(
      "compose-project",
      values["compose-project"],
      /^[a-z0-9][a-z0-9_-]*$/,
    ),
  };
}

/** The library's Selection of parsed selectors. */
export function selectionOf(s: SelectorArgs) {
  return {
    comms: s.comms,
    pids: s.pids,
    users: s.users,
    all: s.all,
    cgroups: s.cgroups,
    units: s.units,
    containers: s.containers,
    pods: s.pods,
    k8sNamespaces: s.k8sNamespaces,
    images: s.images,
    composeProjects: s.composeProjects,
  };
}

/** True when no selector was given at all. */
export function noSelector(s: SelectorArgs): boolean {
  return !s.all && s.comms.length === 0 && s.pids.length === 0 &&
    s.users.length === 0 && s.cgroups.length === 0 && s.units.length === 0 &&
    s.containers.length === 0 && s.pods.length === 0 &&
    s.k8sNamespaces.length === 0 && s.images.length === 0 &&
    s.composeProjects.length === 0;
}
