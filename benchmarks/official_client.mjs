// Realtime throughput of the official @signalwire/js 3.28.0 client in Node, for benchmarks/run.py.
//
// Usage: node official_client.mjs '{"token", "address_id", "warmup", "count", "deadline"}'
// The token's header names the load server (ch = "ws://127.0.0.1:<port>"), so the SDK connects
// there by itself. Counts chat.subscribe onMessage calls; measures process.cpuUsage() and wall
// time between the warmup-th and the (warmup + count)-th call; prints one JSON line.
// Modules resolve from tests/conformance/js/node_modules (installed by `npm ci` there).

import { createRequire } from 'node:module'
import { Console } from 'node:console'
import { fileURLToPath } from 'node:url'
import path from 'node:path'

const here = path.dirname(fileURLToPath(import.meta.url))
const jsDir = path.join(here, '..', 'tests', 'conformance', 'js')
const require = createRequire(path.join(jsDir, 'package.json'))

// The SDK logs through console.*: keep stdout for the result line.
globalThis.console = new Console({ stdout: process.stderr, stderr: process.stderr })

const params = JSON.parse(process.argv[2])

// Shims for a browser SDK in Node 20: WebSocket (from ws) and window.sessionStorage.
globalThis.WebSocket = require('ws').WebSocket
const store = new Map()
globalThis.window = globalThis
globalThis.sessionStorage = {
  getItem: (key) => (store.has(key) ? store.get(key) : null),
  setItem: (key, value) => void store.set(key, String(value)),
  removeItem: (key) => void store.delete(key),
  clear: () => store.clear(),
}

const sdkPath = path.join(jsDir, 'node_modules', '@signalwire', 'js', 'dist', 'index.esm.js')
const { SignalWire } = await import(sdkPath)

const deadline = setTimeout(() => {
  process.stderr.write(`official client: deadline of ${params.deadline} s passed\n`)
  process.exit(1)
}, params.deadline * 1000)

let seen = 0
let startCpu = null
let startWall = 0
const total = params.warmup + params.count

const client = await SignalWire({ token: params.token, logLevel: 'error' })
if (params.warmup === 0) {
  startCpu = process.cpuUsage()
  startWall = performance.now()
}
await client.chat.subscribe({
  addressId: params.address_id,
  onMessage: () => {
    seen += 1
    if (seen === params.warmup) {
      startCpu = process.cpuUsage()
      startWall = performance.now()
    } else if (seen === total) {
      const cpu = process.cpuUsage(startCpu)
      const wall = (performance.now() - startWall) / 1000
      const cpuSeconds = (cpu.user + cpu.system) / 1e6
      process.stdout.write(
        JSON.stringify({
          cpu_us: (cpuSeconds / params.count) * 1e6,
          wall_us: (wall / params.count) * 1e6,
          per_s: params.count / wall,
          count: params.count,
        }) + '\n',
      )
      clearTimeout(deadline)
      process.exit(0)
    }
  },
})
