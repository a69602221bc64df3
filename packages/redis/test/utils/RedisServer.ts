/**
 * Starting and stopping throwaway `redis-server` processes on loopback ports: used by
 * `test/globalSetup.ts` for the server the whole run shares, and by `RedisTest.privateServer`
 * for a server one test may stop, pause and restart. Plain promises: the global setup runs
 * outside Effect.
 */
import * as ChildProcess from "node:child_process"
import * as Fs from "node:fs"
import * as Net from "node:net"
import * as Os from "node:os"
import * as Path from "node:path"

/** Every server is bound to this loopback address only. */
export const host = "127.0.0.1"

const startAttempts = 3
const readyTimeoutMillis = 10_000
const stopTimeoutMillis = 5_000

/** The path of an executable on `PATH`, or `undefined`. */
export const findOnPath = (name: string): string | undefined => {
  for (const dir of (process.env.PATH ?? "").split(Path.delimiter)) {
    if (dir === "") continue
    const candidate = Path.join(dir, name)
    try {
      Fs.accessSync(candidate, Fs.constants.X_OK)
      return candidate
    } catch {
      // not here
    }
  }
  return undefined
}

/** A running server. */
export interface RunningServer {
  readonly port: number
  readonly process: ChildProcess.ChildProcess
  /** Stops the server (SIGTERM, SIGKILL after 5 s) and removes its directory. */
  readonly stop: () => Promise<void>
}

/**
 * Starts a server on a free port. The free port is released before redis-server binds it, so
 * another process can take it in between; redis-server then exits and we try again on a new port.
 */
export const startOnFreePort = async (executable: string): Promise<RunningServer> => {
  let lastError: unknown
  for (let attempt = 1; attempt <= startAttempts; attempt++) {
    try {
      return await start(executable, await freePort())
    } catch (error) {
      lastError = error
    }
  }
  throw lastError
}

/** A port nobody listens on at the moment it is returned. */
export const freePort = (): Promise<number> =>
  new Promise((resolve, reject) => {
    const probe = Net.createServer()
    probe.once("error", reject)
    probe.listen(0, host, () => {
      const address = probe.address()
      const port = typeof address === "object" && address !== null ? address.port : undefined
      probe.close(() => port === undefined ? reject(new Error("could not read the probe port")) : resolve(port))
    })
  })

/**
 * Starts a server on `port` (loopback only, no persistence, protected mode) and waits until it
 * answers PING. `extraArgs` are added to the command line (the cluster nodes' settings).
 */
export const start = async (
  executable: string,
  port: number,
  extraArgs: ReadonlyArray<string> = []
): Promise<RunningServer> => {
  const dir = Fs.mkdtempSync(Path.join(Os.tmpdir(), "stalewise-redis-"))
  const child = ChildProcess.spawn(
    executable,
    [
      "--port",
      String(port),
      "--bind",
      host,
      "--save",
      "",
      "--appendonly",
      "no",
      "--protected-mode",
      "yes",
      "--dir",
      dir,
      ...extraArgs
    ],
    { cwd: dir, stdio: ["ignore", "pipe", "pipe"] }
  )
  let output = ""
  const collect = (chunk: Buffer) => {
    output = (output + chunk.toString("utf8")).slice(-8_192)
  }
  child.stdout.on("data", collect)
  child.stderr.on("data", collect)
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()))
  // A run that ends without teardown (crash, Ctrl-C) must not leave the server behind.
  const killOnExit = () => child.kill("SIGKILL")
  process.once("exit", killOnExit)

  const stop = async () => {
    process.off("exit", killOnExit)
    if (child.exitCode === null && child.signalCode === null) {
      // a paused (SIGSTOP) server would not act on SIGTERM until continued
      child.kill("SIGCONT")
      child.kill("SIGTERM")
      const timer = setTimeout(() => child.kill("SIGKILL"), stopTimeoutMillis)
      await exited
      clearTimeout(timer)
    }
    Fs.rmSync(dir, { recursive: true, force: true })
  }

  try {
    await waitForPong(port, exited)
  } catch (error) {
    await stop()
    throw new Error(`[stalewise] redis-server did not start on ${host}:${port}: ${String(error)}\n${output}`)
  }
  return { port, process: child, stop }
}

const waitForPong = async (port: number, exited: Promise<void>): Promise<void> => {
  let hasExited = false
  void exited.then(() => {
    hasExited = true
  })
  const deadline = Date.now() + readyTimeoutMillis
  while (Date.now() < deadline) {
    if (hasExited) throw new Error("redis-server exited")
    if (await ping(port)) return
    await new Promise((resolve) => setTimeout(resolve, 20))
  }
  throw new Error(`no PONG within ${readyTimeoutMillis} ms`)
}

const ping = (port: number): Promise<boolean> =>
  new Promise((resolve) => {
    const socket = Net.connect({ host, port })
    let reply = ""
    const done = (ok: boolean) => {
      socket.destroy()
      resolve(ok)
    }
    socket.setTimeout(1_000, () => done(false))
    socket.once("error", () => done(false))
    socket.once("connect", () => socket.write("PING\r\n"))
    socket.on("data", (chunk) => {
      reply += chunk.toString("utf8")
      if (reply.includes("\r\n")) done(reply.startsWith("+PONG"))
    })
  })
