// Cold start of the official @signalwire/js 4.0.0-beta.12 in Node, for benchmarks/run.py.
//
// Usage: node official_v4_coldstart.cjs '{"rest_url", "relay_url", "token", "bob_token",
//        "bob_address_id", "group_id", "text", "deadline"}'   (see benchmarks/coldstart.py)
// The SDK is required before the clock starts (as `import signalwire_chat` is for ours). From
// just before `new SignalWire(...)`: subscribed_ms when `textMessages$` of bob's address (found
// with `directory.get$`) emitted its collection; then bob posts `text` over REST (Node's own
// fetch) and live_ms is when it appears in the collection. Prints one JSON line.
// Modules resolve from tests/conformance/sdk-js-4.0.0-beta.12/node_modules (`npm ci` there);
// v4's CommonJS entry is the one that runs in Node, hence .cjs. The shims are the minimum it
// needs (tests/conformance/README.md): REST and the socket pointed at the emulator (here, without
// the conformance harnesses' checks and reports), and web storage and the ES2025 iterator helpers
// Node 20 lacks (tests/conformance/shims.cjs, shared with the harnesses).
'use strict'

const path = require('node:path')
const { createRequire } = require('node:module')
const { Console } = require('node:console')

const conformanceDir = path.join(__dirname, '..', 'tests', 'conformance')
const sdkDir = path.join(conformanceDir, 'sdk-js-4.0.0-beta.12')
const shims = require(path.join(conformanceDir, 'shims.cjs'))
const sdkRequire = createRequire(path.join(sdkDir, 'package.json'))

// The SDK logs through console.*: keep stdout for the result line.
globalThis.console = new Console({ stdout: process.stderr, stderr: process.stderr })

const params = JSON.parse(process.argv[2])

shims.installIteratorHelpers()

// REST: the SDK builds https://fabric.<domain>/...; anything not on the emulator goes there.
const restBase = params.rest_url.replace(/\/+$/, '')
const restOrigin = new URL(params.rest_url).origin
const realFetch = globalThis.fetch
globalThis.fetch = (input, init) => {
  const url = new URL(typeof input === 'string' ? input : input.url ?? String(input))
  const target = url.origin === restOrigin ? url.toString() : restBase + url.pathname + url.search
  return realFetch(target, init)
}

shims.installWebStorage()

const { WebSocket: NodeWebSocket } = sdkRequire('ws')
class EmulatorWebSocket extends NodeWebSocket {
  constructor(_url, protocols) {
    super(params.relay_url, protocols)
  }
}
globalThis.WebSocket = EmulatorWebSocket

const { firstValueFrom, filter } = sdkRequire('rxjs')
const { SignalWire, StaticCredentialProvider } = sdkRequire('@signalwire/js')

const deadline = setTimeout(() => {
  process.stderr.write(`official v4 cold start: deadline of ${params.deadline} s passed\n`)
  process.exit(1)
}, params.deadline * 1000)

async function postAsBob() {
  const reply = await realFetch(`${restBase}/api/fabric/messages`, {
    method: 'POST',
    headers: { Authorization: `Bearer ${params.bob_token}`, 'Content-Type': 'application/json' },
    body: JSON.stringify({
      group_id: params.group_id,
      from_fabric_address_id: params.bob_address_id,
      text: params.text,
    }),
  })
  if (!reply.ok) throw new Error(`bob's post: ${reply.status} ${await reply.text()}`)
}

async function main() {
  const cpu0 = process.cpuUsage()
  const t0 = performance.now()
  const client = new SignalWire(new StaticCredentialProvider({ token: params.token }), {
    webSocketConstructor: EmulatorWebSocket,
    skipDeviceMonitoring: true,
    logLevel: 'error',
    webRTCApiProvider: {
      RTCPeerConnection: class {},
      mediaDevices: { enumerateDevices: async () => [], addEventListener() {}, removeEventListener() {} },
    },
  })
  await firstValueFrom(client.isConnected$.pipe(filter(Boolean)))
  const directory = await firstValueFrom(client.directory$.pipe(filter(Boolean)))
  const address = await firstValueFrom(directory.get$(params.bob_address_id))
  const collection = await firstValueFrom(address.textMessages$)
  const t1 = performance.now()
  const cpu = process.cpuUsage(cpu0)
  const arrived = firstValueFrom(
    collection.values$.pipe(filter((values) => values.some((m) => m.text === params.text))),
  )
  await postAsBob()
  await arrived
  const t2 = performance.now()
  clearTimeout(deadline)
  process.stdout.write(
    JSON.stringify({
      subscribed_ms: t1 - t0,
      live_ms: t2 - t0,
      cpu_ms: (cpu.user + cpu.system) / 1000,
    }) + '\n',
  )
  process.exit(0)
}

main().catch((error) => {
  process.stderr.write(`official v4 cold start failed: ${error && error.stack ? error.stack : error}\n`)
  process.exit(1)
})
