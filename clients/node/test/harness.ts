/**
 * Starting and stopping clients/conformance/harness.py from a test: a real sidecar, two local collectors, and with
 * `up --outcomes` a disk spool and a restart URL.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { createInterface } from "node:readline";

// dist/test/harness.js -> the repository root is four levels up from dist/test.
const REPO_ROOT = resolve(__dirname, "..", "..", "..", "..");
const HARNESS = join(REPO_ROOT, "clients", "conformance", "harness.py");
const START_TIMEOUT_MS = 90_000;

/** The interpreter the conformance contract names: SIDECAR_PYTHON, the repository's venv, or python3. */
function harnessPython(): string {
  if (process.env.SIDECAR_PYTHON) return process.env.SIDECAR_PYTHON;
  const venv = join(REPO_ROOT, ".venv", "bin", "python");
  return existsSync(venv) ? venv : "python3";
}

export interface Harness {
  process: ChildProcess;
  address: string;
  checkUrl: string;
  /** With `up --outcomes`: POST here to SIGKILL and restart the sidecar (same address, same spool). */
  restartUrl: string;
  scenario: { steps: unknown[] };
}

/** Start the harness (`up`, plus `args`) and read its one JSON line; reject with a reason if it cannot start. */
export function startHarness(...args: string[]): Promise<Harness> {
  return new Promise((resolvePromise, reject) => {
    const child = spawn(harnessPython(), [HARNESS, "up", ...args], { cwd: REPO_ROOT, stdio: ["pipe", "pipe", "inherit"] });
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      reject(new Error(`the harness did not start within ${START_TIMEOUT_MS} ms`));
    }, START_TIMEOUT_MS);
    child.on("error", (error) => {
      clearTimeout(timer);
      reject(new Error(`cannot run ${harnessPython()}: ${error.message}`));
    });
    child.on("exit", (code) => {
      clearTimeout(timer);
      reject(new Error(`the harness exited with status ${code} before it was ready (see stderr)`));
    });
    createInterface({ input: child.stdout! }).once("line", (line) => {
      clearTimeout(timer);
      const info = JSON.parse(line);
      const scenario = JSON.parse(readFileSync(info.scenario, "utf8")) as { steps: unknown[] };
      resolvePromise({
        process: child,
        address: info.sidecar_address,
        checkUrl: info.check_url,
        restartUrl: info.restart_url ?? "",
        scenario,
      });
    });
  });
}

/** Close the harness's stdin and wait for it to stop everything it started. */
export function stopHarness(harness: Harness): Promise<void> {
  return new Promise((resolvePromise) => {
    if (harness.process.exitCode !== null) return resolvePromise();
    const timer = setTimeout(() => harness.process.kill("SIGKILL"), 30_000);
    harness.process.once("exit", () => {
      clearTimeout(timer);
      resolvePromise();
    });
    harness.process.stdin!.end();
  });
}
